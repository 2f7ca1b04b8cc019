"""The journaled moves of one model: archive, trash, delete, restore; and the recovery of interrupted ones.

Each function below is one journaled step (see ``journal``). The order of the writes is what makes a kill
at any point recoverable; ``recover`` reads the journal and, for each step left behind, looks at the disk and
finishes or rolls back:

- archive: journal -> temp archive written + fsynced -> renamed -> verified (re-read, hashes compared) -> ledger
  entry -> journal "archived" (with the archive's sha256) -> folder renamed to a tombstone under ``.mlrepo`` (atomic)
  -> tombstone deleted. Before "archived", recovery deletes the archive and keeps the folder; after, it checks the
  archive's sha256 and finishes (or, if the archive is damaged, renames the tombstone back).
- trash: journal (with the trash entry's predicted name) -> one rename into the trash -> ledger entry. Recovery looks at
  which of the folder and the trash entry exists.
- delete: journal -> rename to a tombstone -> tombstone deleted. Recovery deletes a leftover tombstone.
- restore from an archive: journal -> extract into a staging folder on the target's file system (files fsynced,
  archive sha256 checked) -> journal "extracted" -> rename into place -> ledger entry and archive removed.
- restore from the trash: journal -> rename back -> .trashinfo and ledger entry removed.

A model is therefore always whole in its folder, its archive or the trash; the tombstone and staging folders are
never the only copy once their step says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from mlrepo.commands.operations import tarzst, trash, trust
from mlrepo.commands.operations.durable import (
    now_iso,
    remove_tree,
    rename_durably,
    unlink_durably,
)
from mlrepo.commands.operations.faults import fault
from mlrepo.commands.operations.fingerprint import footprint
from mlrepo.commands.operations.journal import Step, leftovers, pending
from mlrepo.commands.operations.mlflow_moves import recover_stage
from mlrepo.commands.operations.moved import Moved, Refused
from mlrepo.commands.operations.paths import model_path_problem, scratch_dir
from mlrepo.commands.operations.steps import (
    ArchiveStep,
    DeleteStep,
    JournalStep,
    RestoreArchiveStep,
    RestoreTrashStep,
    TrashStep,
)
from mlrepo.commands.operations.trust import Untrusted
from mlrepo.repo_index import archived as ledger
from mlrepo.repo_index.state import state_dir

ARCHIVE_DIR = "archive"


def default_archive_dir(root: str) -> str:
    return os.path.join(state_dir(root), ARCHIVE_DIR)  # created as a real folder by trust.mark_archive_dir


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000_000:09d}"


def _slug(rel: str) -> str:
    text = "".join(c if c.isalnum() or c in "-_." else "_" for c in rel.replace(os.sep, "__"))
    return text.strip("._")[:120] or "model"


def _entry(model: dict, kind: ledger.Kind) -> ledger.LedgerEntry:
    """The ledger entry of a model being moved, before the fields of where it goes."""
    return ledger.LedgerEntry(kind=kind, id=model["id"], rel=model["row"].get("_rel"), path=model["path"],
                              moved_at=now_iso(), row=model["row"], metrics=model.get("metrics") or {})


def _rename_or_fail(step: Step, src: str, dst: str) -> None:
    """A step's one rename; refused by the kernel, nothing has moved and the step ends as failed."""
    try:
        rename_durably(src, dst)
    except OSError as exc:
        step.done("failed")
        raise Refused(str(exc)) from None


def check_unchanged(path: str, expected: str | None) -> None:
    """Refused unless the folder still looks as the plan saw it (``fingerprint``): a late writer's files stay."""
    if expected is None:
        return
    try:
        now = footprint(path, time.time_ns())
    except OSError as exc:
        raise Refused(f"cannot be read again before moving it: {exc.strerror or exc}") from None
    if now.digest != expected:
        raise Refused(f"changed since the plan was made (now {now.entries} files and folders); kept")


# -- archive ----------------------------------------------------------------------------------------------------
def _movable(root: str, model: dict) -> str:
    """The model's folder, or Refused when it may not be moved (outside ROOT, behind a symlink...)."""
    problem = model_path_problem(model["path"], root)
    if problem:
        raise Refused(problem)
    return model["path"]


def archive_model(root: str, model: dict, archive_dir: str, on_bytes=None) -> Moved:
    """Archive one model folder (``model``: id, path, row, metrics - a plan decision's ``ledger_model()``)."""
    path = _movable(root, model)
    archive_dir = trust.mark_archive_dir(root, archive_dir)  # recovery trusts only archives in such folders
    stamp = _stamp()
    stem = f"{_slug(model['row'].get('_rel') or model['id'])}-{model['id']}-{stamp}"
    final = os.path.join(archive_dir, stem + tarzst.SUFFIX)
    tmp = os.path.join(archive_dir, f".tmp-{stem}{tarzst.SUFFIX}")
    tomb = os.path.join(scratch_dir(root, os.path.dirname(path), "tomb"), f"{stamp}-{model['id']}")
    entry_path = os.path.join(ledger.ledger_dir(root), f"{model['id']}-{stamp}.json")
    size = int(model["row"].get("size_bytes") or 0)
    data = ArchiveStep(id=model["id"], path=path, tmp=tmp, archive=final, tomb=tomb, ledger=entry_path)
    step = Step.start(root, data)
    fault("archive:journaled")
    try:
        written = tarzst.write_archive(path, tmp, on_bytes)
        fault("archive:written")
        if os.path.lexists(final):
            raise tarzst.ArchiveError(f"{final} exists already")
        rename_durably(tmp, final)
        fault("archive:renamed")
        sha, nbytes = tarzst.verify(final, written.listing, folder=path)
        digest = tarzst.stat_digest(path)
        fault("archive:verified")
        ledger.write_entry(root, os.path.basename(entry_path)[:-5], replace(
            _entry(model, "archive"), archive=final, archive_sha256=sha, archive_bytes=nbytes,
            members=len(written.listing), content_bytes=written.content_bytes))
        fault("archive:ledger")
    except BaseException as exc:
        _rollback_archive(step, data)
        if isinstance(exc, (tarzst.ArchiveError, OSError)):
            raise Refused(str(exc)) from None
        raise
    data = replace(data, phase="archived", sha256=sha, digest=digest)
    step.advance(data)
    fault("archive:journal-archived")
    try:
        _finish_archive(step, data)
    except OSError as exc:
        if os.path.lexists(path) and not os.path.lexists(tomb):  # the folder could not be moved: undo
            _rollback_archive(step, data, f"rolled back: {exc}")
            raise Refused(f"could not remove the folder ({exc}); the archive was discarded") from None
        raise Refused(f"could not finish removing the folder ({exc}); the next run will finish it") from None
    return Moved(model["id"], path, "archived", final, size, nbytes)


def _rollback_archive(step: Step, data: ArchiveStep, outcome: str = "rolled back") -> None:
    """Undo an archive step that had not reached "archived": the folder is untouched; remove what was written."""
    if not os.path.isdir(data.path) and os.path.lexists(data.archive):
        # never the last copy: the folder is gone (not by us), so the archive stays as the model's only place
        step.done("kept archive: folder missing")
        return
    for leftover in (data.tmp, data.archive):
        if leftover and os.path.lexists(leftover):
            unlink_durably(leftover)
    ledger.remove_entry(data.ledger)
    step.done(outcome)


def _finish_archive(step: Step, data: ArchiveStep) -> None:
    """Complete an archive step past "archived": the folder goes to a tombstone, then the tombstone is deleted."""
    path, tomb = data.path, data.tomb
    if os.path.lexists(path) and not os.path.lexists(tomb):
        if tarzst.stat_digest(path) != data.digest:  # written to after it was verified: keep it
            _rollback_archive(step, data, "rolled back: folder changed after archiving")
            raise Refused(f"{path} changed after it was archived; left in place")
        os.makedirs(os.path.dirname(tomb), exist_ok=True)
        rename_durably(path, tomb)
        fault("archive:tombstoned")
    if os.path.lexists(tomb):
        remove_tree(tomb, "archive:tomb-partial")
        fault("archive:removed")
    step.done("archived", archive=data.archive)


def _recover_archive(step: Step, data: ArchiveStep) -> str:
    if data.phase != "archived":
        _rollback_archive(step, data)
        return f"rolled back the archiving of {data.path} (the folder was kept)"
    archive, tomb, path = data.archive, data.tomb, data.path
    ok = os.path.isfile(archive) and tarzst.file_sha256(archive) == data.sha256
    if not ok:  # the verified archive is gone or damaged: the model must stay (or go back) in its folder
        if os.path.lexists(tomb) and not os.path.lexists(path):
            whole = tarzst.stat_digest(tomb) == data.digest
            rename_durably(tomb, path)
            if not whole:  # its removal had begun: keep the folder and what is left of the archive, and say so
                step.done("failed: archive damaged, folder partly removed")
                return f"error: {path}: the archive is damaged and the folder partly removed; both were kept"
        if os.path.lexists(path):
            _rollback_archive(step, data, "rolled back: archive damaged")
            return f"archive of {path} was damaged; the folder was kept"
        step.done("failed: archive damaged, folder gone")
        return f"error: {path}: archive damaged and folder gone"
    try:
        _finish_archive(step, data)
    except Refused as exc:
        return str(exc)
    return f"finished archiving {path}"


# -- trash ------------------------------------------------------------------------------------------------------
def trash_model(root: str, model: dict, expect: str | None = None) -> Moved:
    path = _movable(root, model)
    try:
        target = trash.prepare(path)
    except (trash.TrashError, OSError) as exc:
        raise Refused(str(exc)) from None
    entry_path = os.path.join(ledger.ledger_dir(root), f"{model['id']}-{_stamp()}.json")
    entry = replace(_entry(model, "trash"), trash_files=target.files_path, trash_info=target.info_path,
                    trash_dir=target.trash_dir, trash_topdir=target.topdir)
    data = TrashStep(id=model["id"], path=path, ledger=entry_path, entry=entry)
    step = Step.start(root, data)
    fault("trash:journaled")
    try:
        where = trash.move(path, target, fault)
    except BaseException as exc:
        _recover_trash(step, data)
        if isinstance(exc, (trash.TrashError, OSError)):
            raise Refused(str(exc)) from None
        raise
    fault("trash:moved")
    if expect is not None and footprint(where.files_path, time.time_ns()).digest != expect:
        rename_durably(where.files_path, path)  # written to just before the move: put back, keep it
        unlink_durably(where.info_path)
        step.done("rolled back: changed")
        raise Refused("changed while it was being trashed; put back and kept")
    entry = replace(entry, trash_files=where.files_path, trash_info=where.info_path)
    ledger.write_entry(root, os.path.basename(entry_path)[:-5], entry)
    fault("trash:ledger")
    step.done("trashed", trash_info=where.info_path)
    return Moved(model["id"], path, "trashed", where.files_path, int(model["row"].get("size_bytes") or 0),
                 extra={"trash_info": where.info_path})


def _recover_trash(step: Step, data: TrashStep) -> str:
    entry, path = data.entry, data.path
    files, info = str(entry.trash_files), str(entry.trash_info)
    if os.path.lexists(files) and os.path.lexists(info):  # moved: finish
        ledger.write_entry(step.root, os.path.basename(data.ledger)[:-5], entry)
        step.done("trashed", trash_info=info)
        return f"finished trashing {path}"
    if os.path.lexists(info) and not os.path.lexists(files) and \
            trash.original_path(info, entry.trash_topdir or None) == os.path.normpath(path):
        unlink_durably(info)  # the entry was written, the folder not moved: it stays where it is
    step.done("rolled back")
    return f"rolled back the trashing of {path} (the folder was kept)"


# -- delete -----------------------------------------------------------------------------------------------------
def delete_model(root: str, model: dict, expect: str | None = None) -> Moved:
    path = _movable(root, model)
    tomb = os.path.join(scratch_dir(root, os.path.dirname(path), "tomb"), f"{_stamp()}-{model['id']}")
    step = Step.start(root, DeleteStep(id=model["id"], path=path, tomb=tomb))
    fault("delete:journaled")
    _rename_or_fail(step, path, tomb)
    fault("delete:tombstoned")
    if expect is not None and footprint(tomb, time.time_ns()).digest != expect:  # written to just before
        rename_durably(tomb, path)
        step.done("rolled back: changed")
        raise Refused("changed while it was being deleted; put back and kept")
    remove_tree(tomb, "delete:tomb-partial")
    fault("delete:removed")
    step.done("deleted")
    return Moved(model["id"], path, "deleted", None, int(model["row"].get("size_bytes") or 0))


def _recover_delete(step: Step, data: DeleteStep) -> str:
    if os.path.lexists(data.tomb):
        remove_tree(data.tomb)
        step.done("deleted")
        return f"finished deleting {data.path}"
    step.done("deleted" if not os.path.lexists(data.path) else "rolled back")
    return f"checked the deletion of {data.path}"


# -- restore ----------------------------------------------------------------------------------------------------
def restore_entry(root: str, entry_path: str, entry: dict, on_bytes=None) -> Moved:
    """Bring one archived or trashed model back to its folder (``entry``: its ledger entry's JSON object, checked
    here before anything is done)."""
    try:
        checked = trust.ledger_entry(entry, root)
    except Untrusted as exc:
        raise Refused(f"its ledger entry is refused: {exc}") from None
    path = os.path.normpath(checked.path)
    if os.path.lexists(path):
        raise Refused(f"something is already at {path}; move it away first")
    if checked.kind == "trash":
        return _restore_trashed(root, entry_path, checked)
    return _restore_archived(root, entry_path, checked, on_bytes)


def _restore_archived(root: str, entry_path: str, entry: ledger.LedgerEntry, on_bytes=None) -> Moved:
    path, archive = entry.path, str(entry.archive)
    if not os.path.isfile(archive):
        raise Refused(f"the archive {archive} is missing")
    staging = os.path.join(scratch_dir(root, os.path.dirname(path), "staging"), f"{_stamp()}-{entry.id}")
    data = RestoreArchiveStep(id=entry.id, path=path, archive=archive, staging=staging, ledger=entry_path)
    step = Step.start(root, data)
    fault("restore:journaled")
    try:
        os.mkdir(staging)
        top = tarzst.extract(archive, staging, entry.archive_sha256, on_bytes)
        if os.path.basename(top) != os.path.basename(path):
            raise tarzst.ArchiveError(f"{archive} holds {os.path.basename(top)!r}, not {os.path.basename(path)!r}")
        digest = tarzst.stat_digest(top)
    except BaseException as exc:
        remove_tree(staging)
        step.done("rolled back")
        if isinstance(exc, (tarzst.ArchiveError, OSError)):
            raise Refused(str(exc)) from None
        raise
    data = replace(data, phase="extracted", top=top, digest=digest)
    step.advance(data)
    fault("restore:extracted")
    _finish_restore_archive(step, data)
    return Moved(entry.id, path, "restored", archive, entry.archive_bytes or 0, _size(entry.row))


def _size(row: dict) -> int:
    """The size the index recorded for a moved model."""
    return int(row.get("size_bytes") or 0)


def _finish_restore_archive(step: Step, data: RestoreArchiveStep) -> str:
    path, top, staging = data.path, str(data.top), data.staging
    if os.path.lexists(top) and not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rename_durably(top, path)
        fault("restore:placed")
    if not os.path.lexists(path) or tarzst.stat_digest(path) != data.digest:
        # not ours (or changed since): keep the archive, so the model is not lost
        if os.path.lexists(staging):
            remove_tree(staging)
        step.done("failed: folder in the way")
        return f"{path}: another folder took its place; the archive was kept"
    ledger.remove_entry(data.ledger)
    fault("restore:ledger-removed")
    archive = data.archive
    if os.path.lexists(archive):
        unlink_durably(archive)
    fault("restore:archive-removed")
    if os.path.lexists(staging):
        remove_tree(staging)
    step.done("restored")
    return f"finished restoring {path}"


def _recover_restore_archive(step: Step, data: RestoreArchiveStep) -> str:
    if data.phase != "extracted":
        if os.path.lexists(data.staging):
            remove_tree(data.staging)
        step.done("rolled back")
        return f"rolled back the restoring of {data.path} (the archive was kept)"
    return _finish_restore_archive(step, data)


def _restore_trashed(root: str, entry_path: str, entry: ledger.LedgerEntry) -> Moved:
    path, files, info = entry.path, str(entry.trash_files), str(entry.trash_info)
    if not os.path.lexists(files):
        raise Refused(f"its trash entry {files} is gone")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.lstat(files).st_dev != os.stat(os.path.dirname(path)).st_dev:
        raise Refused(f"the trash entry {files} is on another file system")
    data = RestoreTrashStep(id=entry.id, path=path, files=files, info=info, ledger=entry_path)
    step = Step.start(root, data)
    fault("untrash:journaled")
    _rename_or_fail(step, files, path)
    fault("untrash:moved")
    _finish_restore_trash(step, data)
    return Moved(entry.id, path, "restored", files, 0, _size(entry.row))


def _finish_restore_trash(step: Step, data: RestoreTrashStep) -> None:
    if os.path.lexists(data.info):
        unlink_durably(data.info)
    fault("untrash:info-removed")
    ledger.remove_entry(data.ledger)
    fault("untrash:ledger-removed")
    step.done("restored")


def _recover_restore_trash(step: Step, data: RestoreTrashStep) -> str:
    path, files = data.path, data.files
    if os.path.lexists(path) and not os.path.lexists(files):
        _finish_restore_trash(step, data)
        return f"finished restoring {path} from the trash"
    step.done("rolled back")
    return f"rolled back the restoring of {path} (it stays in the trash)"


# -- recovery ---------------------------------------------------------------------------------------------------
def _recover_step(step: Step, data: JournalStep) -> str:
    """Finish or roll back one step, by its kind."""
    if isinstance(data, ArchiveStep):
        return _recover_archive(step, data)
    if isinstance(data, TrashStep):
        return _recover_trash(step, data)
    if isinstance(data, DeleteStep):
        return _recover_delete(step, data)
    if isinstance(data, RestoreArchiveStep):
        return _recover_restore_archive(step, data)
    if isinstance(data, RestoreTrashStep):
        return _recover_restore_trash(step, data)
    return recover_stage(step, data)


def recover(root: str) -> list[str]:
    """Finish or roll back every step an interrupted run left in the journal (call under the root's Lock).
    Returns one line per step, saying what was done."""
    messages = []
    for leftover in leftovers(root):  # half-written journal or ledger files: never the only record of anything
        os.unlink(leftover)
    for entry_path, raw in ledger.read_entries(root):
        try:
            entry = trust.ledger_entry(raw, root)
        except Untrusted as exc:
            messages.append(f"error: refused ledger entry {os.path.basename(entry_path)}: {exc}; "
                            f"set aside in {trust.set_aside(root, entry_path)}")
            continue
        files = entry.trash_files or ""
        if entry.kind == "trash" and not os.path.lexists(files) and os.path.isdir(os.path.dirname(files)):
            ledger.remove_entry(entry_path)  # emptied from the trash, or restored by a file manager: nothing to undo
            messages.append(f"forgot {entry.path}: it is no longer in the trash")
    for path in pending(root):
        try:
            step = Step.load(root, path)
            data = trust.journal_record(step.record, root)
        except (OSError, ValueError, KeyError) as exc:  # unreadable, unknown or naming a path it may not
            why = exc if isinstance(exc, Untrusted) else "unreadable or unknown"
            messages.append(f"error: refused journal record {os.path.basename(path)}: {why}; "
                            f"set aside in {trust.set_aside(root, path)}")
            continue
        try:
            messages.append(_recover_step(step, data))
        except Exception as exc:  # noqa: BLE001 - one step's trouble never stops the others' recovery
            messages.append(f"error: could not recover {step.get('path')}: {exc}; will retry next time")
    return messages

"""The journaled moves of one model on object storage: trash, archive, delete, restore; and their recovery.

Object storage has no rename and no trash, so a "move" is copy, verify, then delete, and the journal
(``remote_journal``) says at each moment which copy is the model. The order of the requests:

- trash: journal -> COPY each object to ``.mlrepo/trash/<tid>/<key>`` and verify it (size, and the ETag the copy
  got equals the source's; where a copy changes the ETag, as AWS does for a multipart source, both are read and
  their sha256 compared) -> ledger entry ``.mlrepo/ledger/<tid>.json`` -> LIST the model again (a writer that added
  or rewrote an object since: everything rolled back, the model kept) -> journal "deleting" (with the copies'
  ETags) -> DELETE the originals. Recovery before "deleting": every original is put back if it is missing (from
  its verified copy), then the copies and the ledger entry are deleted. After: the copies are checked against
  the ETags the journal recorded, the ledger entry rewritten, the remaining originals deleted.
- archive: journal -> the objects streamed into a local ``.tar.zst`` spool (``remote_archive``), re-read whole and
  compared -> one PUT of ``.mlrepo/archive/<tid>.tar.zst`` -> GET it back, sha256 compared -> LIST the model again
  -> ledger entry -> journal "archived" (with the sha256) -> DELETE the originals. Recovery before "archived":
  the archive and ledger entry are deleted (the originals were never touched); after: the archive is read again
  and, if its sha256 still matches, the remaining originals are deleted; if not, the model stays where it is.
- delete (``--delete``): journal -> DELETE the originals. Recovery finishes a deletion only if it had begun (some
  object of the record already gone); a record whose objects are all still there is dropped, the model kept.
- restore from the trash: the model's prefix must be empty -> journal -> COPY back and verify -> DELETE the ledger
  entry and the copies. Recovery goes forward (the trash copies are intact), never over an object that is not
  the one recorded.
- restore from an archive: the prefix must be empty -> journal -> GET the archive, sha256 checked, extracted
  (``tarzst.extract``) -> PUT each object, its sha256 checked against the ledger and the upload verified (ETag
  equal to the original's where that is an MD5, else read back) -> journal "restored" (with the new ETags) ->
  DELETE the ledger entry and the archive. Recovery goes forward, or, after "restored", checks the objects
  against the recorded ETags before it deletes the archive.

Only the objects a record lists are ever touched (an object a writer adds under a model's prefix while it moves
is never deleted), and every key is built from checked, root-relative names (``remote_keys``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import orjson
from mlrepo.commands.operations import remote_archive, tarzst
from mlrepo.commands.operations.durable import now_iso
from mlrepo.commands.operations.faults import fault
from mlrepo.commands.operations.remote_journal import RemoteStep, Untrusted, load, pending, set_aside
from mlrepo.commands.operations.remote_keys import (
    Bucket,
    Obj,
    OddKey,
    RemoteError,
    model_key,
    name,
    single_part,
    state_key,
)

TRASH, ARCHIVE, LEDGER = "trash", "archive", "ledger"


class Refused(RemoteError):
    """This model may not be moved now (it changed, something is in the way); nothing of it was lost."""


def trash_prefix(tid: str) -> str:
    return state_key(TRASH, tid)


def archive_key(tid: str) -> str:
    return state_key(ARCHIVE, tid + tarzst.SUFFIX)


def ledger_key(tid: str) -> str:
    return state_key(LEDGER, tid + ".json")


def new_tid(model: str) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in model.replace("/", "__"))[-80:].lstrip("_")
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.time_ns() % 10**9:09d}-{slug or 'model'}"


def _copy_verified(b: Bucket, src: str, dst: str, obj: Obj) -> str | None:
    """COPY ``src`` to ``dst`` and prove they hold the same bytes; the copy's ETag."""
    b.copy(src, dst)
    meta = b.head(dst)
    if meta is None or int(meta["size"]) != obj.size:
        raise RemoteError(f"the copy of {src} at {dst} is not whole")
    etag = meta.get("e_tag")
    if etag != obj.etag and b.sha256(src) != b.sha256(dst):  # the copy got a new ETag: compare the contents
        raise RemoteError(f"the copy of {src} at {dst} differs from it")
    return etag


def _listed(b: Bucket, prefix: str) -> dict[str, Obj]:
    return {o.rel: o for o in b.listing(prefix)}


def _ledger(b: Bucket, step: RemoteStep, kind: str, **fields: object) -> dict:
    return {"kind": kind, "model": step.model, "tid": step.tid, "url": b.url_of(step.model),
            "objects": step.record["objects"], "moved_at": now_iso(), **fields}


def _drop_originals(step: RemoteStep, op: str, phase: str, **fields: object) -> None:
    """The model is whole elsewhere: journal the phase that says so, then delete the originals."""
    step.update(phase=phase, **fields)
    fault(f"remote-{op}:journal-{phase}")
    step.bucket.delete([f"{step.model}/{o.rel}" for o in step.objects])
    fault(f"remote-{op}:deleted")
    step.done()


# -- trash ------------------------------------------------------------------------------------------------------
def trash_model(b: Bucket, model: str, objects: list[Obj]) -> str:
    """Move the model's objects to the trash prefix; returns its root-relative trash prefix."""
    tid = new_tid(model)
    step = RemoteStep.begin(b, "trash", model, tid, objects)
    fault("remote-trash:journaled")
    copies: dict[str, str | None] = {}
    try:
        for o in objects:
            copies[o.rel] = _copy_verified(b, f"{model}/{o.rel}", f"{trash_prefix(tid)}/{o.rel}", o)
            if len(copies) == 1:
                fault("remote-trash:copy-partial")
        fault("remote-trash:copied")
        b.put_json(ledger_key(tid), _ledger(b, step, "trash", trash=trash_prefix(tid), copies=copies))
        fault("remote-trash:ledger")
        if list(_listed(b, model).values()) != objects:
            raise Refused("changed while it was being trashed (a writer added or rewrote an object); kept")
    except BaseException:
        _rollback_trash(b, step)
        raise
    _drop_originals(step, "trash", "deleting", copies=copies)
    return trash_prefix(tid)


def _rollback_trash(b: Bucket, step: RemoteStep) -> str:
    """Before "deleting": every original back in place (from its copy if it went missing), then the copies go."""
    objects, tid = step.objects, step.tid
    here = _listed(b, step.model)
    for o in objects:
        if o.rel not in here:  # not by us: put back from the trash copy, never lose the last copy
            if b.head(f"{trash_prefix(tid)}/{o.rel}") is None:
                raise RemoteError(f"{step.model}/{o.rel} is gone and has no copy in the trash")
            _copy_verified(b, f"{trash_prefix(tid)}/{o.rel}", f"{step.model}/{o.rel}", o)
    fault("remote-trash:rollback")
    b.delete([*(f"{trash_prefix(tid)}/{o.rel}" for o in objects), ledger_key(tid)])
    step.done()
    return f"rolled back the trashing of {b.url_of(step.model)} (its objects were kept)"


def _finish_trash(b: Bucket, step: RemoteStep) -> str:
    """After "deleting": the copies must be the ones recorded; then the rest of the originals go."""
    copies = step.record.get("copies")
    if not isinstance(copies, dict):
        raise Untrusted("a deleting trash step without the copies' ETags")
    there = _listed(b, trash_prefix(step.tid))
    bad = [o.rel for o in step.objects if o.rel not in there or there[o.rel].size != o.size
           or there[o.rel].etag != copies.get(o.rel)]
    if bad:
        return f"error: {b.url_of(step.model)}: the trash copies of {bad[:3]} are missing or changed; " \
               f"the originals that are left were kept"
    b.put_json(ledger_key(step.tid), _ledger(b, step, "trash", trash=trash_prefix(step.tid), copies=copies))
    fault("remote-trash:finish")
    b.delete([f"{step.model}/{o.rel}" for o in step.objects])
    step.done()
    return f"finished trashing {b.url_of(step.model)}"


# -- archive ----------------------------------------------------------------------------------------------------
def archive_model(b: Bucket, model: str, objects: list[Obj]) -> tuple[str, int]:
    """Archive the model's objects into one verified ``.tar.zst`` object; its root-relative key and size."""
    problem = remote_archive.tree_problem(objects)
    if problem:
        raise Refused(problem)
    tid = new_tid(model)
    step = RemoteStep.begin(b, "archive", model, tid, objects)
    fault("remote-archive:journaled")
    try:
        with tempfile.TemporaryDirectory(prefix="mlrepo-archive-") as tmp:
            spool = Path(tmp) / "spool.tar.zst"
            listing, shas = remote_archive.write_spool(b, model, objects, spool)
            sha, size = remote_archive.verify_spool(spool, listing)
            fault("remote-archive:written")
            b.put_file(archive_key(tid), spool, size)
        fault("remote-archive:uploaded")
        if b.sha256(archive_key(tid)) != sha:
            raise RemoteError(f"the uploaded archive {archive_key(tid)} differs from what was written")
        fault("remote-archive:verified")
        if list(_listed(b, model).values()) != objects:
            raise Refused("changed while it was being archived (a writer added or rewrote an object); kept")
        b.put_json(ledger_key(tid), _ledger(b, step, "archive", archive=archive_key(tid), archive_sha256=sha,
                                            archive_bytes=size, sha256=shas))
        fault("remote-archive:ledger")
    except BaseException as exc:
        _rollback_archive(b, step)
        if isinstance(exc, (tarzst.ArchiveError, OSError)):
            raise Refused(str(exc)) from None
        raise
    _drop_originals(step, "archive", "archived", sha256=sha)
    return archive_key(tid), size


def _rollback_archive(b: Bucket, step: RemoteStep) -> str:
    here = _listed(b, step.model)
    if any(o.rel not in here for o in step.objects):  # not by us: the archive may be the only copy now
        step.update(phase="writing", error="objects missing before the archive was confirmed")
        return f"error: {b.url_of(step.model)}: objects went missing while it was being archived; " \
               f"the archive {archive_key(step.tid)} and the journal were kept"
    fault("remote-archive:rollback")
    b.delete([archive_key(step.tid), ledger_key(step.tid)])
    step.done()
    return f"rolled back the archiving of {b.url_of(step.model)} (its objects were kept)"


def _finish_archive(b: Bucket, step: RemoteStep) -> str:
    if b.head(archive_key(step.tid)) is None or b.sha256(archive_key(step.tid)) != step.record["sha256"]:
        here = _listed(b, step.model)
        if all(o.rel in here for o in step.objects):
            return _rollback_archive(b, step) + " - its archive was damaged"
        return f"error: {b.url_of(step.model)}: its archive is damaged and some objects are gone; the rest was kept"
    fault("remote-archive:finish")
    b.delete([f"{step.model}/{o.rel}" for o in step.objects])
    step.done()
    return f"finished archiving {b.url_of(step.model)}"


# -- delete -----------------------------------------------------------------------------------------------------
def delete_model(b: Bucket, model: str, objects: list[Obj]) -> None:
    step = RemoteStep.begin(b, "delete", model, new_tid(model), objects)
    fault("remote-delete:journaled")
    b.delete([f"{model}/{o.rel}" for o in objects])
    fault("remote-delete:deleted")
    step.done()


def _recover_delete(b: Bucket, step: RemoteStep) -> str:
    here = _listed(b, step.model)
    if all(o.rel in here for o in step.objects):  # it had not begun: the model stays
        step.done()
        return f"dropped an unstarted deletion of {b.url_of(step.model)} (its objects were kept)"
    b.delete([f"{step.model}/{o.rel}" for o in step.objects if o.rel in here])
    step.done()
    return f"finished deleting {b.url_of(step.model)}"


# -- restore ----------------------------------------------------------------------------------------------------
def check_ledger(entry: object, key: str) -> dict:
    """A ledger entry read back: Untrusted unless its names are plain and it is the entry of its own key."""
    if not isinstance(entry, dict) or entry.get("kind") not in (TRASH, ARCHIVE):
        raise Untrusted("not a trash or archive entry")
    try:
        model_key(entry.get("model"))
        tid = name(entry.get("tid"), "tid")
        objects = [Obj.from_json(o) for o in entry.get("objects") or []]
    except OddKey as exc:
        raise Untrusted(str(exc)) from None
    if key != ledger_key(tid) or not objects:
        raise Untrusted(f"{key} is not the entry of step {tid}")
    if entry["kind"] == ARCHIVE and not isinstance(entry.get("archive_sha256"), str):
        raise Untrusted("an archive entry without the archive's sha256")
    if entry["kind"] == ARCHIVE and not isinstance(entry.get("sha256"), dict):
        raise Untrusted("an archive entry without its objects' sha256")
    return entry


def read_ledger(b: Bucket) -> tuple[list[tuple[str, dict]], list[str]]:
    """The ledger's entries (key, entry) that pass ``check_ledger``, and one message per refused one."""
    entries, refused = [], []
    for o in b.listing(state_key(LEDGER)):
        key = f"{state_key(LEDGER)}/{o.rel}"
        try:
            data = b.get_bytes(key)
            entries.append((key, check_ledger(orjson.loads(data or b""), key)))
        except (Untrusted, OddKey, orjson.JSONDecodeError) as exc:
            refused.append(f"error: refused ledger entry {o.rel}: {exc}; set aside in {set_aside(b, key)}")
    return entries, refused


def restore_entry(b: Bucket, entry: dict) -> str:
    """Bring a trashed or archived model back to its prefix; returns where it came from."""
    model, objects = str(entry["model"]), [Obj.from_json(o) for o in entry["objects"]]
    if b.listing(model):
        raise Refused(f"objects are already at {b.url_of(model)}; move them away first")
    if entry["kind"] == TRASH:
        step = RemoteStep.begin(b, "restore-trash", model, str(entry["tid"]), objects)
        fault("remote-restore:journaled")
        return _forward_trash(b, step)
    step = RemoteStep.begin(b, "restore-archive", model, str(entry["tid"]), objects,
                            sha256=entry["archive_sha256"])
    fault("remote-restore:journaled")
    return _forward_archive(b, step, entry)


def _in_place(b: Bucket, key: str, here: dict[str, Obj], o: Obj, etags: set, source: str | None = None,
              sha: str | None = None) -> bool:
    """Whether ``o`` is already back at ``key`` (a restore that was interrupted); RemoteError when another object
    is there, which is never overwritten."""
    found = here.get(o.rel)
    if found is None:
        return False
    if found.size == o.size and (found.etag in etags or b.sha256(key) == (sha or b.sha256(str(source)))):
        return True
    raise RemoteError(f"another object is at {b.url_of(key)}; left as it is")


def _forward_trash(b: Bucket, step: RemoteStep) -> str:
    here = _listed(b, step.model)
    for n, o in enumerate(step.objects):
        src = f"{trash_prefix(step.tid)}/{o.rel}"
        if not _in_place(b, f"{step.model}/{o.rel}", here, o, {o.etag}, source=src):
            _copy_verified(b, src, f"{step.model}/{o.rel}", o)
        if n == 0:
            fault("remote-restore:copy-partial")
    fault("remote-restore:copied")
    b.delete([ledger_key(step.tid)])
    fault("remote-restore:ledger-removed")
    b.delete([f"{trash_prefix(step.tid)}/{o.rel}" for o in step.objects])
    step.done()
    return b.url_of(trash_prefix(step.tid))


def _forward_archive(b: Bucket, step: RemoteStep, entry: dict) -> str:
    shas, etags = entry["sha256"], {}
    here = _listed(b, step.model)
    with tempfile.TemporaryDirectory(prefix="mlrepo-restore-") as tmp:
        folder = remote_archive.extract(b, archive_key(step.tid), str(step.record["sha256"]), Path(tmp))
        fault("remote-restore:extracted")
        for n, o in enumerate(step.objects):
            if _in_place(b, f"{step.model}/{o.rel}", here, o, {o.etag}, sha=str(shas.get(o.rel))):
                etags[o.rel] = o.etag
                continue
            local = folder / o.rel
            if not local.is_file() or tarzst.file_sha256(str(local)) != shas.get(o.rel):
                raise RemoteError(f"{archive_key(step.tid)}: {o.rel} is not in it as it was archived")
            etags[o.rel] = _upload_verified(b, local, f"{step.model}/{o.rel}", o, str(shas[o.rel]))
            if n == 0:
                fault("remote-restore:upload-partial")
    step.update(phase="restored", etags=etags)
    fault("remote-restore:journal-restored")
    return _drop_archive(b, step)


def _upload_verified(b: Bucket, local: Path, key: str, o: Obj, sha: str) -> str | None:
    put = b.put_file(key, local, o.size)
    meta = b.head(key)
    if meta is None or int(meta["size"]) != o.size:
        raise RemoteError(f"the upload of {key} is not whole")
    same_etag = single_part(o.etag) and put.get("e_tag") == o.etag == meta.get("e_tag")
    if not same_etag and b.sha256(key) != sha:  # the ETag cannot prove it: read it back
        raise RemoteError(f"the upload of {key} differs from the archived object")
    return meta.get("e_tag")


def _drop_archive(b: Bucket, step: RemoteStep) -> str:
    """After "restored": the objects must be the ones uploaded; then the ledger entry and the archive go."""
    etags = step.record.get("etags")
    if not isinstance(etags, dict):
        raise Untrusted("a restored step without the restored objects' ETags")
    here = _listed(b, step.model)
    if any(o.rel not in here or here[o.rel].etag != etags.get(o.rel) for o in step.objects):
        return f"error: {b.url_of(step.model)} is not as it was restored; its archive was kept"
    b.delete([ledger_key(step.tid)])
    fault("remote-restore:ledger-removed")
    b.delete([archive_key(step.tid)])
    step.done()
    return b.url_of(archive_key(step.tid))


def _recover_restore_archive(b: Bucket, step: RemoteStep) -> str:
    if step.record["phase"] == "restored":
        return f"finished restoring {b.url_of(step.model)}: " + _drop_archive(b, step)
    data = b.get_bytes(ledger_key(step.tid))
    entry = check_ledger(orjson.loads(data or b"null"), ledger_key(step.tid))
    if entry["model"] != step.model or entry["objects"] != step.record["objects"]:
        raise Untrusted("the journal record and the ledger entry are about different objects")
    return f"finished restoring {b.url_of(step.model)} from " + _forward_archive(b, step, entry)


# -- recovery ---------------------------------------------------------------------------------------------------
def _recover_step(b: Bucket, step: RemoteStep) -> str:
    op, phase = step.op, step.record["phase"]
    if op == "trash":
        return _rollback_trash(b, step) if phase == "copying" else _finish_trash(b, step)
    if op == "archive":
        return _rollback_archive(b, step) if phase == "writing" else _finish_archive(b, step)
    if op == "delete":
        return _recover_delete(b, step)
    if op == "restore-trash":
        return f"finished restoring {b.url_of(step.model)} from " + _forward_trash(b, step)
    return _recover_restore_archive(b, step)


def recover(b: Bucket) -> list[str]:
    """Finish or roll back every step an interrupted run left in the journal (call under the RemoteLock); one
    message per step. A record that fails ``check_record`` is set aside and reported, never acted on."""
    messages = []
    for key in pending(b):
        try:
            step = load(b, key)
        except Untrusted as exc:
            messages.append(f"error: refused journal record {key.rsplit('/', 1)[-1]}: {exc}; "
                            f"set aside in {set_aside(b, key)}")
            continue
        try:
            messages.append(_recover_step(b, step))
        except Untrusted as exc:
            messages.append(f"error: refused journal record {key.rsplit('/', 1)[-1]}: {exc}; "
                            f"set aside in {set_aside(b, key)}")
        except Exception as exc:  # noqa: BLE001 - one step's trouble never stops the others' recovery
            messages.append(f"error: could not recover {b.url_of(step.model)}: {exc}; will retry next time")
    return messages

"""mlrepo's own state is untrusted input too: every path read back from the journal or the ledger is checked before
anything acts on it.

Anyone who can write into ROOT can write a journal or ledger file. So a path taken from one must lie where the step
that wrote it would have put it: a model's folder inside ROOT (through no symlink that leads out), a tombstone or
staging folder in mlrepo's state (or a ``.mlrepo/<kind>`` scratch folder inside ROOT), a ledger entry in the ledger
folder, an archive in the default archive folder or in a folder mlrepo marked as its archive folder (a marker file
owned by this user, which a teammate cannot plant in a folder of yours), and a trash item in a freedesktop trash
folder of this user whose ``.trashinfo`` says it came from that very folder in ROOT. A record that fails is refused
and set aside in ``<state>/rejected/`` (``set_aside``), and the caller reports it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from mlrepo.commands.operations import steps, trash
from mlrepo.commands.operations.paths import is_within
from mlrepo.repo_index.archived import LEDGER, LedgerEntry
from mlrepo.repo_index.state import STATE_DIR, checked_dir, state_dir, unlinked

ARCHIVE_MARKER = ".mlrepo-archive"
ARCHIVE_SUFFIX = ".tar.zst"
REJECTED = "rejected"
STAGES = ("deleted", "active")


class Untrusted(ValueError):
    """A record names a path that mlrepo would never have written there."""


def _abs(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or not os.path.isabs(value):
        raise Untrusted(f"field {field!r} is not an absolute path")
    if os.path.normpath(value) != value:  # "a/link/../b": the kernel resolves the link first, a lexical check not
        raise Untrusted(f"field {field!r} ({value}) is not a plain path (it holds '..', '.' or '//')")
    return value


def inside_root(path: str, root: str) -> bool:
    """``path`` lies under ``root`` (lexically), and the part of it that exists resolves inside ``root`` too (no
    symlink on the way leads out)."""
    top = os.path.normpath(os.path.abspath(root))
    if not path.startswith(top.rstrip(os.sep) + os.sep):
        return False
    probe = path
    while not os.path.lexists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    return is_within(probe, root)


def in_state(path: str, root: str, *parts: str) -> bool:
    """``path`` is a name directly in ``state_dir(root)/parts...``, a folder with no symlink on its way."""
    folder = os.path.join(state_dir(root), *parts)
    return os.path.normpath(os.path.dirname(path)) == os.path.normpath(folder) and unlinked(root, *parts)


def model_folder(path: str, root: str, field: str = "path") -> str:
    """A model's folder: strictly inside ROOT, never in mlrepo's or a trash's folders."""
    if not inside_root(path, root) or os.path.realpath(path) == os.path.realpath(root):
        raise Untrusted(f"field {field!r} ({path}) is not a folder inside {root}")
    parts = os.path.relpath(path, root).split(os.sep)
    if any(p == STATE_DIR or p == ".Trash" or p.startswith(".Trash-") for p in parts):
        raise Untrusted(f"field {field!r} ({path}) lies in mlrepo's or a trash folder")
    return path


def scratch(path: str, root: str, kind: str, field: str) -> str:
    """A tombstone or staging folder: ``<state>/<kind>/<name>``, or ``.mlrepo/<kind>/<name>`` inside ROOT."""
    parent = os.path.dirname(path)
    in_root = inside_root(path, root) and os.path.basename(parent) == kind \
        and os.path.basename(os.path.dirname(parent)) == STATE_DIR and not os.path.islink(parent)
    if not (in_state(path, root, kind) or in_root):
        raise Untrusted(f"field {field!r} ({path}) is not in one of mlrepo's {kind} folders")
    return path


def ledger_file(path: str, root: str, field: str = "ledger") -> str:
    if not path.endswith(".json") or not in_state(path, root, LEDGER):
        raise Untrusted(f"field {field!r} ({path}) is not in mlrepo's ledger folder")
    return path


def marked_archive_dir(folder: str) -> bool:
    """Whether ``folder`` holds mlrepo's marker, owned by this user (or by root)."""
    try:
        st = os.lstat(os.path.join(folder, ARCHIVE_MARKER))
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid in (os.getuid(), 0)


def archive_file(path: str, root: str, field: str) -> str:
    """An archive (or its temp file): in the default archive folder, or in a folder mlrepo marked as its own."""
    folder = os.path.dirname(path)
    if not path.endswith(ARCHIVE_SUFFIX) or os.path.islink(folder):
        raise Untrusted(f"field {field!r} ({path}) is not an archive file")
    if in_state(path, root, "archive") or marked_archive_dir(folder):
        return path
    raise Untrusted(f"field {field!r} ({path}) is not in an archive folder mlrepo made "
                    f"(if it is yours: touch {os.path.join(folder, ARCHIVE_MARKER)})")


def mark_archive_dir(root: str, folder: str) -> str:
    """Create an archive folder: the default one as a real state folder, any other one with mlrepo's marker."""
    folder = os.path.abspath(folder)
    if os.path.normpath(folder) == os.path.normpath(os.path.join(state_dir(root), "archive")):
        return checked_dir(root, "archive")
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, ARCHIVE_MARKER)
    if not marked_archive_dir(folder):
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.close(fd)
    return folder


def _trash_dirs() -> Callable[[str], bool]:
    home = os.path.realpath(trash.home_trash()[1])
    uid = str(os.getuid())

    def ok(folder: str) -> bool:
        real = os.path.realpath(folder)
        if real == home:
            return True
        name, parent = os.path.basename(real), os.path.basename(os.path.dirname(real))
        try:
            owned = os.lstat(real).st_uid == os.getuid()
        except OSError:
            owned = False
        return owned and (name == f".Trash-{uid}" or (name == uid and parent == ".Trash"))
    return ok


def trash_entry(entry: dict, root: str) -> None:
    """A trashed model's fields: its files and .trashinfo in this user's trash, under the one name."""
    files = _abs(entry.get("trash_files"), "trash_files")
    info = _abs(entry.get("trash_info"), "trash_info")
    folder = os.path.dirname(os.path.dirname(files))
    is_trash = _trash_dirs()
    if not (os.path.basename(os.path.dirname(files)) == "files" and is_trash(folder)):
        raise Untrusted(f"field 'trash_files' ({files}) is not an item of your trash")
    if info != os.path.join(folder, "info", os.path.basename(files) + trash.INFO_SUFFIX):
        raise Untrusted(f"field 'trash_info' ({info}) is not the trash entry of {files}")
    for name in ("trash_dir", "trash_topdir"):
        if entry.get(name) is not None:
            _abs(entry.get(name), name)
    if entry.get("trash_dir") is not None and os.path.normpath(str(entry["trash_dir"])) != folder:
        raise Untrusted(f"field 'trash_dir' ({entry['trash_dir']}) is not the trash that holds {files}")


def ledger_entry(entry: dict, root: str) -> LedgerEntry:
    """The ledger entry read from ``entry`` (its JSON object); Untrusted unless every path of it is where mlrepo
    puts it."""
    model_folder(_abs(entry.get("path"), "path"), root)
    if entry.get("kind") == "trash":
        trash_entry(entry, root)
        info = os.path.normpath(str(entry["trash_info"]))
        if os.path.lexists(info):
            origin = trash.original_path(info, entry.get("trash_topdir"))
            if origin != os.path.normpath(str(entry["path"])):
                raise Untrusted(f"the trash entry {info} came from {origin}, not from {entry['path']}")
    elif entry.get("kind") == "archive":
        archive_file(_abs(entry.get("archive"), "archive"), root, "archive")
    else:
        raise Untrusted(f"unknown kind {entry.get('kind')!r}")
    return LedgerEntry.from_json(entry)


def journal_record(record: dict, root: str) -> steps.JournalStep:
    """The typed step of a journal record (the one place a record read back becomes one); Untrusted unless every
    path field of it (by its ``op``) is where that step puts it."""
    op = record.get("op")
    if op == "mlflow-stage":  # one UPDATE in the store's database: the run's folder is not acted on
        db = _abs(record.get("db"), "db")
        if not inside_root(db, root) or not os.path.isfile(db) or os.path.islink(db):
            raise Untrusted(f"field 'db' ({db}) is not a store file inside {root}")
        if record.get("stage") not in STAGES or not isinstance(record.get("run"), str):
            raise Untrusted("fields 'stage'/'run' are not a run and a lifecycle stage")
        return steps.from_record(record)
    path = model_folder(_abs(record.get("path"), "path"), root)

    def need(field: str) -> str:
        return _abs(record.get(field), field)

    if op == "archive":
        archive_file(need("tmp"), root, "tmp")
        archive_file(need("archive"), root, "archive")
        scratch(need("tomb"), root, "tomb", "tomb")
        ledger_file(need("ledger"), root)
    elif op == "trash":
        ledger_file(need("ledger"), root)
        entry = record.get("entry")
        if not isinstance(entry, dict):
            raise Untrusted("field 'entry' is not a ledger entry")
        if os.path.normpath(str(entry.get("path"))) != path:
            raise Untrusted("field 'entry' is about another folder")
        trash_entry(entry, root)
    elif op == "delete":
        scratch(need("tomb"), root, "tomb", "tomb")
    elif op == "restore-archive":
        archive_file(need("archive"), root, "archive")
        staging = scratch(need("staging"), root, "staging", "staging")
        ledger_file(need("ledger"), root)
        if record.get("top") is not None and os.path.dirname(need("top")) != staging:
            raise Untrusted(f"field 'top' ({record.get('top')}) is not in its staging folder")
    elif op == "restore-trash":
        try:
            trash_entry({"trash_files": record.get("files"), "trash_info": record.get("info")}, root)
        except Untrusted as exc:  # said with this record's own field names
            raise Untrusted(str(exc).replace("'trash_files'", "'files'").replace("'trash_info'", "'info'")) from None
        ledger_file(need("ledger"), root)
    else:
        raise Untrusted(f"unknown step {op!r}")
    return steps.from_record(record)


def set_aside(root: str, path: str) -> str:
    """Move a refused record into ``<state>/rejected/`` (never deleted: it is evidence); returns where it went."""
    folder = checked_dir(root, REJECTED)
    target = os.path.join(folder, os.path.basename(path))
    n = 0
    while os.path.lexists(target):
        n += 1
        target = os.path.join(folder, f"{n}-{os.path.basename(path)}")
    os.rename(path, target)
    return target

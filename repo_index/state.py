"""Where mlrepo keeps the state that travels with a root's models (journal, ledger, default archives, lock, pins).

- A root that is not itself an MLflow file store: ``<root>/.mlrepo/``. No format's own tool reads a hidden folder
  there (the scanner skips it too).
- A root that *is* an MLflow file store (``mlruns/``): MLflow takes every folder of the store for an experiment,
  and ``search_experiments``/``search_runs`` fail with ``Invalid experiment ID: '.mlrepo'``. So the state goes next
  to the store, ``<parent>/.mlrepo/stores/<store name>/`` (the same file system, so moves stay atomic renames; it
  travels with the project that holds the store); when the parent cannot be written, into the user data folder,
  ``<user data dir>/mlrepo/roots/<name>-<hash of the root's real path>/``.
- A root that is one experiment folder of a file store (``mlruns/1/``): its parent is the store, so the user data
  folder.
- An older ``<root>/.mlrepo/`` inside a file store is moved to the new place on first use (``migrate``), the paths
  its ledger and journal recorded rewritten; its index cache is dropped (the cache lives in the user cache folder).

Every state folder is created component by component and must be a real folder: a symlink planted in its place
(``.mlrepo -> /elsewhere``) is refused, never followed (``checked_dir``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from functools import partial
from typing import BinaryIO

import orjson
import platformdirs
from mlrepo.errors import FailedError
from mlrepo.repo_index.files import atomic_write

STATE_DIR = ".mlrepo"
STORES = "stores"
LEGACY_CACHE = ("index.arrow", "index.json")
_MIGRATING = ".migrating-from"  # in a moved state folder until its recorded paths are rewritten


class StateError(FailedError):
    """mlrepo's own state folder is not what mlrepo made (a symlink, a file...): nothing is written through it."""


def is_mlflow_file_store(root: str) -> bool:
    """Whether ``root`` is an MLflow file store: MLflow's ``.trash`` folder, or an experiment folder (a ``meta.yaml``
    that names an ``artifact_location``) among its first entries."""
    if os.path.isdir(os.path.join(root, ".trash")) and not os.path.islink(os.path.join(root, ".trash")):
        return True
    try:
        with os.scandir(root) as entries:
            for n, entry in enumerate(entries):
                if n >= 256:
                    break
                if entry.is_dir(follow_symlinks=False) and entry.name != STATE_DIR and _is_experiment(entry.path):
                    return True
    except OSError:
        return False
    return False


def _is_experiment(folder: str) -> bool:
    meta = os.path.join(folder, "meta.yaml")
    try:
        st = os.lstat(meta)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 64 * 1024:
            return False
        fd = os.open(meta, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            head = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return False
    return b"artifact_location" in head and b"experiment_id" in head


def _beside(root: str) -> str:
    return os.path.join(os.path.dirname(root), STATE_DIR, STORES, os.path.basename(root))


def _user_data(root: str) -> str:
    digest = hashlib.sha256(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(root))[:40]
    return os.path.join(platformdirs.user_data_dir("mlrepo"), "roots", f"{name}-{digest}")


def state_dir(root: str) -> str:
    """Where mlrepo keeps its state for ``root`` (see the module's docstring). Pure: creates nothing."""
    local = os.path.join(root, STATE_DIR)
    if _is_experiment(root):  # an experiment folder of a file store: its parent is the store, so not beside it
        return _user_data(root)
    if not is_mlflow_file_store(root):
        return local
    beside, data = _beside(root), _user_data(root)
    for place in (beside, data):
        if os.path.isdir(place):
            return place
    if os.path.isdir(local) and not os.path.islink(local) and _has_state(local):
        return local  # an older state that could not be moved yet (see migrate): still honoured
    parent = os.path.dirname(root)
    return beside if os.access(parent, os.W_OK | os.X_OK) else data


def _anchor(root: str, folder: str) -> str:
    """The trusted folder that ``folder`` is created under: the root, its parent, or the user data folder."""
    for base in (root, os.path.dirname(root), platformdirs.user_data_dir("mlrepo")):
        if folder.startswith(base.rstrip(os.sep) + os.sep):
            return base
    raise StateError(f"{folder}: not a place for mlrepo's state")


def checked_dir(root: str, *parts: str) -> str:
    """``state_dir(root)/parts...``, created as needed, every component a real folder (never a symlink)."""
    folder = os.path.join(state_dir(root), *parts)
    anchor = _anchor(root, folder)
    os.makedirs(anchor, exist_ok=True)
    here = anchor
    for part in os.path.relpath(folder, anchor).split(os.sep):
        here = os.path.join(here, part)
        try:
            os.mkdir(here, 0o755)
        except FileExistsError:
            pass
        st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
            raise StateError(f"{here} is {what}; mlrepo's state folders must be real folders "
                             "(nothing was written; remove it and run again)")
    return folder


def real_state(root: str, *parts: str) -> str | None:
    """``state_dir(root)/parts...`` for reading, or None when it is missing or any part of it is not a real folder
    (a symlinked ``.mlrepo`` is never read as mlrepo's state)."""
    folder = os.path.join(state_dir(root), *parts)
    return folder if os.path.isdir(folder) and unlinked(root, *parts) else None


def unlinked(root: str, *parts: str) -> bool:
    """No existing component of ``state_dir(root)/parts...`` is a symlink or anything but a folder."""
    folder = os.path.join(state_dir(root), *parts)
    try:
        anchor = _anchor(root, folder)
    except StateError:
        return False
    here = anchor
    for part in os.path.relpath(folder, anchor).split(os.sep):
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
    return True


def _has_state(folder: str) -> bool:
    try:
        return any(name not in (*LEGACY_CACHE, "lock") and not name.startswith(".tmp-") for name in os.listdir(folder))
    except OSError:
        return False


def migrate(root: str) -> str | None:
    """Move an older ``<root>/.mlrepo/`` out of an MLflow file store (see the module's docstring). Returns a line
    saying what was done, or None when there was nothing to do. Crash-safe: one rename, then the recorded paths are
    rewritten (idempotently, finished by the next call if killed)."""
    local = os.path.join(root, STATE_DIR)
    for name in LEGACY_CACHE:  # the cache lives in the user cache folder now
        if os.path.isdir(local) and not os.path.islink(local):
            try:
                os.unlink(os.path.join(local, name))
            except OSError:
                pass
    if not is_mlflow_file_store(root):
        return None
    target = _beside(root) if os.path.isdir(_beside(root)) or os.access(os.path.dirname(root), os.W_OK) \
        else _user_data(root)
    said = None
    if os.path.isdir(local) and not os.path.islink(local) and not os.path.lexists(target):
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.islink(os.path.dirname(target)):
                raise StateError(f"{os.path.dirname(target)} is a symlink; mlrepo's state folders must be real folders")
            with open(os.path.join(local, _MIGRATING), "wb") as fh:
                fh.write(local.encode("utf-8", "surrogateescape"))
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(local, target)
        except OSError as exc:
            return f"could not move {local} out of the MLflow store to {target} ({exc.strerror or exc}); kept"
        said = f"moved mlrepo's state out of the MLflow store: {local} -> {target}"
    elif os.path.isdir(local) and not os.path.islink(local) and not _has_state(local):
        try:
            os.rmdir(local)
        except OSError:
            pass
    _rewrite(target)
    return said


def _rewrite(folder: str) -> None:
    marker = os.path.join(folder, _MIGRATING)
    try:
        with open(marker, "rb") as fh:
            old = fh.read().decode("utf-8", "surrogateescape")
    except OSError:
        return
    for sub in ("ledger", "journal"):
        try:
            names = [n for n in os.listdir(os.path.join(folder, sub)) if n.endswith(".json") and n[0] != "."]
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, sub, name)
            try:
                with open(path, "rb") as fh:
                    record = orjson.loads(fh.read())
            except (OSError, orjson.JSONDecodeError):
                continue  # the trust checks refuse and set aside what cannot be read
            moved = _moved(record, old, folder)
            if moved != record:
                data = orjson.dumps(moved, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
                atomic_write(path, partial(_write, data), durable=True)
    os.unlink(marker)


def _write(data: bytes, fh: BinaryIO) -> None:
    fh.write(data)


def _moved(value: object, old: str, new: str) -> object:
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def read_json(root: str, name: str) -> object | None:
    """A small JSON file of the state folder, read as untrusted input (a real folder, a regular file, bounded; see
    ``parsing.read_bytes``); None when there is none. Raises ``StateError`` when it cannot be used."""
    from mlrepo.repo_index.readers.parsing import MetaError, read_bytes

    folder = real_state(root)
    path = os.path.join(state_dir(root), name)
    if folder is None or not os.path.lexists(path):
        return None
    try:
        return orjson.loads(read_bytes(path))
    except (MetaError, orjson.JSONDecodeError) as exc:
        raise StateError(f"{path}: cannot be read ({exc}); fix or remove the file") from None


def write_json(root: str, name: str, obj: object) -> None:
    """Replace a small JSON file of the state folder atomically and durably (its folders real folders only)."""
    data = orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"
    atomic_write(os.path.join(checked_dir(root), name), lambda fh: fh.write(data), durable=True)

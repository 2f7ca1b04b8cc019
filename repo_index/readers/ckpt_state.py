"""ModelCheckpoint's state inside a Lightning ``.ckpt``, read without torch and without running anything from it.

A ``.ckpt`` is a torch zip: ``<name>/data.pkl`` (the pickled checkpoint dict) beside the tensor storages. The dict's
``callbacks`` entry holds each ``ModelCheckpoint``'s state under a key ``ModelCheckpoint{...}``: ``dirpath``,
``best_model_path``, ``best_k_models`` and ``last_model_path`` (paths as they were on the training machine).
A version is tagged ``best_checkpoint=<path>`` and ``last_checkpoint=<path>`` (relative to the version folder; as
key=value tags they are the columns ``tags.best_checkpoint`` and ``tags.last_checkpoint``) from its newest readable
checkpoint. A checkpoint with no data allocated (a remote root's placeholder: its bytes stay in the bucket) is not
read; a version none of whose checkpoints could be read so is tagged ``checkpoint_state=unread``, and prune keeps it
(a resumed run may name one of its checkpoints). A resumed run's ``best_model_path`` may name a checkpoint of the version it resumed from
(Lightning reloads it across a changed ``dirpath``): ``../version_0/checkpoints/…``; that version is then kept
by prune and archive (``commands/operations/guards.py``).

The pickle is untrusted: ``find_class`` imports nothing. Every global (``torch._utils._rebuild_tensor_v2``, a
storage class, ``os.system``, anything) becomes an inert class that swallows its arguments; ``persistent_load``
(the tensor storages) returns a placeholder, so no storage is ever read. Only plain data (dicts, lists, strings,
numbers) comes out as itself. Reading is cached by the file's stamp.
"""

from __future__ import annotations

import io
import os
import pickle
import stat
import threading
import zipfile
from dataclasses import dataclass

from mlrepo.repo_index.readers.parsing import MetaError

#: a data.pkl larger than this is not read (a Lightning checkpoint's is a few KiB to a few MiB)
MAX_PICKLE_BYTES = 32 * 1024 * 1024
CALLBACK_PREFIX = "ModelCheckpoint"


@dataclass(frozen=True, slots=True)
class CheckpointState:
    """What the ModelCheckpoint callbacks of one ``.ckpt`` recorded; paths as recorded, with each callback's
    ``dirpath`` to map them to where the checkpoint now lies."""

    step: int  # the checkpoint's global_step (-1 when not recorded)
    best: tuple[tuple[str, str], ...]  # (dirpath, best_model_path)
    last: tuple[tuple[str, str], ...]  # (dirpath, last_model_path)


class Inert:
    """What any global in the pickle becomes: constructed, called or given state, it keeps nothing and runs
    nothing."""

    def __new__(cls, *_args: object, **_kwargs: object) -> Inert:
        return object.__new__(cls)

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        pass

    def __setstate__(self, _state: object) -> None:
        pass

    def __call__(self, *_args: object, **_kwargs: object) -> Inert:
        return Inert()

    # BUILD on an object without __setstate__ writes into __dict__; items appended by APPENDS/SETITEMS go nowhere
    def append(self, _item: object) -> None:
        pass

    def extend(self, _items: object) -> None:
        pass

    def __setitem__(self, _key: object, _value: object) -> None:
        pass


class PlainDict(dict):
    """``collections.OrderedDict`` as read here: a dict that takes attributes (torch pickles a state dict's
    ``_metadata`` onto it)."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) == ("collections", "OrderedDict"):
            return PlainDict
        return Inert

    def persistent_load(self, pid: object) -> object:
        return Inert()


def read_state(path: str) -> CheckpointState:
    """The ModelCheckpoint state of the ``.ckpt`` at ``path``; ``MetaError`` (a short reason) when it cannot be
    read. A checkpoint without the callback's state gives an empty state."""
    name = os.path.basename(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        raise MetaError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise MetaError(f"{name}: not a regular file")
            data = _data_pkl(file, name)
    except OSError as exc:
        raise MetaError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        top = _Unpickler(io.BytesIO(data)).load()
    except Exception:  # noqa: BLE001 - any malformed pickle (cut, wrong opcodes) is one reason
        raise MetaError(f"{name}: its checkpoint data is not a readable pickle") from None
    return _state_of(top)


def _data_pkl(file: io.BufferedReader, name: str) -> bytes:
    try:
        with zipfile.ZipFile(file) as archive:
            member = next((i for i in archive.infolist() if i.filename.endswith("/data.pkl")
                           or i.filename == "data.pkl"), None)
            if member is None:
                raise MetaError(f"{name}: not a torch checkpoint (no data.pkl)")
            if member.file_size > MAX_PICKLE_BYTES:
                raise MetaError(f"{name}: its checkpoint data is larger than {MAX_PICKLE_BYTES >> 20} MiB, not read")
            with archive.open(member) as inner:
                return inner.read(MAX_PICKLE_BYTES + 1)[:MAX_PICKLE_BYTES]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError):
        raise MetaError(f"{name}: not a readable checkpoint (a torch zip cut short or of another kind)") from None


def _state_of(top: object) -> CheckpointState:
    best: list[tuple[str, str]] = []
    last: list[tuple[str, str]] = []
    callbacks = top.get("callbacks") if isinstance(top, dict) else None
    for key, state in callbacks.items() if isinstance(callbacks, dict) else ():
        if not isinstance(key, str) or not key.startswith(CALLBACK_PREFIX) or not isinstance(state, dict):
            continue
        dirpath = state.get("dirpath")
        if not isinstance(dirpath, str):
            continue
        for field, out in (("best_model_path", best), ("last_model_path", last)):
            value = state.get(field)
            if isinstance(value, str) and value:
                out.append((dirpath, value))
    step = top.get("global_step") if isinstance(top, dict) else None
    return CheckpointState(step if isinstance(step, int) and not isinstance(step, bool) else -1, tuple(best),
                           tuple(last))


_cache: dict[str, tuple[tuple[int, int, int], CheckpointState | MetaError]] = {}
_lock = threading.Lock()


def cached_state(path: str) -> CheckpointState:
    """``read_state``, remembered per file until its stamp (inode, size, mtime) changes."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        raise MetaError(f"{os.path.basename(path)}: cannot read ({exc.strerror or exc})") from None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    with _lock:
        known = _cache.get(path)
    if known is None or known[0] != key:
        try:
            found: CheckpointState | MetaError = read_state(path)
        except MetaError as exc:
            found = exc
        known = (key, found)
        with _lock:
            _cache[path] = known
    if isinstance(known[1], MetaError):
        raise known[1]
    return known[1]


CHECKPOINTS = "checkpoints"  # ModelCheckpoint's default dirpath inside the logger's version folder
TAG = "_checkpoint="  # best_checkpoint=<path>, last_checkpoint=<path>
UNREAD = "checkpoint_state=unread"
MAX_READ = 16  # at most this many checkpoints (the newest) are read for the version's latest state


@dataclass(frozen=True, slots=True)
class VersionCheckpoints:
    tags: list[str]
    meta_files: list[str]  # relative to the version folder
    problem: str | None  # why no checkpoint's state could be read, when none could


def version_checkpoints(version: str) -> VersionCheckpoints:
    """The best/last checkpoint tags of a Lightning ``version_N`` folder, from the state of its latest checkpoint:
    the highest ``global_step`` (file times say little after a copy or a checkout), and of a top-k checkpoint and
    ``last.ckpt`` saved at one step, the one that names itself last (saved after the other)."""
    folder = os.path.join(version, CHECKPOINTS)
    try:
        with os.scandir(folder) as it:
            stats = [(e.stat(follow_symlinks=False), e.name) for e in it
                     if e.name.endswith(".ckpt") and e.is_file(follow_symlinks=False)]
    except OSError:
        return VersionCheckpoints([], [], None)
    found = [(st.st_mtime_ns, name) for st, name in stats if st.st_blocks or not st.st_size]
    if stats and not found:  # placeholders only: the data is elsewhere (a bucket), the state unknown here
        return VersionCheckpoints([UNREAD], [CHECKPOINTS], None)
    problems: list[str] = []
    read: list[tuple[tuple[int, bool, int], str, CheckpointState]] = []
    for mtime, name in sorted(found, reverse=True)[:MAX_READ]:
        try:
            state = cached_state(os.path.join(folder, name))
        except MetaError as exc:
            problems.append(str(exc))
            continue
        names_itself = any(os.path.basename(p) == name for _d, p in state.last)
        read.append(((state.step, names_itself, mtime), name, state))
    if not read:
        return VersionCheckpoints([], [CHECKPOINTS] if found else [],
                                  f"{CHECKPOINTS}/{problems[0]}" if problems else None)
    _key, name, state = max(read, key=lambda r: r[0])
    tags = [f"{kind}{TAG}{rel}" for kind, paths in (("best", state.best), ("last", state.last))
            for rel in _local(paths, folder, version)]
    return VersionCheckpoints(tags, [CHECKPOINTS, f"{CHECKPOINTS}/{name}"], None)


def _local(paths: tuple[tuple[str, str], ...], folder: str, version: str) -> list[str]:
    """Recorded checkpoint paths as they lie here, relative to the version: each taken relative to the dirpath it
    was recorded under, which is ``folder`` here. Those that are not here are left out."""
    out: list[str] = []
    for dirpath, recorded in paths:
        try:
            local = os.path.normpath(os.path.join(folder, os.path.relpath(recorded, dirpath)))
        except ValueError:
            continue
        rel = os.path.relpath(local, version)
        if os.path.lexists(local) and rel not in out:
            out.append(rel)
    return out


def outside_refs(version: str, tags: list[str]) -> list[tuple[str, str]]:
    """(absolute path, "best"/"last") of the checkpoints a version's tags name outside its own folder."""
    refs = []
    for tag in tags:
        kind, sep, rel = tag.partition(TAG)
        if sep and rel.startswith(".."):
            refs.append((os.path.normpath(os.path.join(version, rel)), kind))
    return refs

"""Crash safety for the operations that move models: the lock, the journal, durable writes, tree removal.

Every step that moves a model is written to ``<root>/.mlrepo/journal/`` (fsynced) *before* it is taken, and updated
as it passes the points that decide how to recover. A step's file is removed only once the step is complete. After
a crash or ``kill -9`` the next prune, archive or restore finds the files left behind and finishes or rolls back each
step (``commands.moves.recover``), so every model ends up whole in exactly one place.

A lock (``fcntl.flock`` on ``<root>/.mlrepo/lock``) keeps two such commands off one root; the kernel releases it when
its holder dies, however it dies.

``fault(name)`` marks the points between steps for the fault-injection tests: it does nothing unless the test-only
environment variables below are set (they make the process pause at the N-th point so that a test can SIGKILL it).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from datetime import datetime, timezone

import orjson

from mlrepo.repo_index.cache import state_dir

JOURNAL = "journal"
LOG = "log.jsonl"

# Test-only hooks (never set in normal use):
# MLREPO_FAULT_AT=N (or =NAME): at the N-th fault point (or the first one called NAME), write "N name" to
#   MLREPO_FAULT_FILE and wait there to be killed.
# MLREPO_FAULT_LOG=FILE: append every point's number and name (to count them).
# MLREPO_FAULT_DELAY=SECONDS: sleep at every point (widens the windows for kills at random times).
_fault_count = 0


def fault(name: str) -> None:
    global _fault_count
    env = os.environ
    if "MLREPO_FAULT_AT" not in env and "MLREPO_FAULT_LOG" not in env and "MLREPO_FAULT_DELAY" not in env:
        return
    _fault_count += 1
    if env.get("MLREPO_FAULT_LOG"):
        with open(env["MLREPO_FAULT_LOG"], "a", encoding="utf-8") as fh:
            fh.write(f"{_fault_count} {name}\n")
    if env.get("MLREPO_FAULT_DELAY"):
        time.sleep(float(env["MLREPO_FAULT_DELAY"]))
    at = env.get("MLREPO_FAULT_AT", "")
    if at and (at == name if not at.isdigit() else int(at) == _fault_count):
        marker = env.get("MLREPO_FAULT_FILE")
        if marker:
            with open(marker, "w", encoding="utf-8") as fh:
                fh.write(f"{_fault_count} {name}\n")
                fh.flush()
                os.fsync(fh.fileno())
        while True:  # the test kills us here
            time.sleep(1)


# -- durable file system helpers -------------------------------------------------------------------------------
def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str, obj: object) -> None:
    """Replace ``path`` atomically and durably with ``obj`` as JSON."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}")
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(folder)


def rename_durably(src: str, dst: str) -> None:
    """``os.rename`` (atomic on one file system), then fsync both folders so the move survives a power cut."""
    os.rename(src, dst)
    fsync_dir(os.path.dirname(dst))
    if os.path.dirname(src) != os.path.dirname(dst):
        fsync_dir(os.path.dirname(src))


def remove_tree(path: str, fault_name: str | None = None) -> None:
    """Delete ``path`` and everything in it, bottom-up, never following a symlink (a link is removed, not its
    target). Folders without write permission are made writable first (their contents must go)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    for dirpath, dirnames, _files in os.walk(path, followlinks=False):  # make every folder usable by its owner
        for name in [*dirnames, ""]:
            target = os.path.join(dirpath, name) if name else dirpath
            try:
                mode = os.lstat(target).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode) and (mode & 0o700) != 0o700:
                os.chmod(target, stat.S_IMODE(mode) | 0o700)
    first = True
    for dirpath, dirnames, filenames in os.walk(path, topdown=False, followlinks=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
            if first and fault_name:
                first = False
                fault(fault_name)
        for name in dirnames:
            child = os.path.join(dirpath, name)
            if os.path.islink(child):
                os.unlink(child)
            else:
                os.rmdir(child)
    os.rmdir(path)
    fsync_dir(os.path.dirname(path))


# -- where things may be ----------------------------------------------------------------------------------------
def real(path: str) -> str:
    return os.path.realpath(path)


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or inside it, both resolved (symlinks followed, as the kernel would)."""
    path, folder = real(path), real(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def model_path_problem(path: str, root: str) -> str | None:
    """Why mlrepo must not move or remove the folder at ``path`` (None when it may)."""
    if not path:
        return "no folder"
    if os.path.islink(path):
        target = os.readlink(path)
        where = "outside the root" if not is_within(path, root) else "inside the root"
        return f"folder is a symlink (to {target}, {where}); links are not followed"
    if not is_within(path, root):
        return "outside the root"
    if real(path) == real(root):
        return "is the root itself"
    if any(part == ".Trash" or part.startswith(".Trash-") or part == ".mlrepo"
           for part in os.path.relpath(real(path), real(root)).split(os.sep)):
        return "inside a trash or mlrepo folder"
    if not os.path.lexists(path):
        return "no folder at its path"
    if not os.path.isdir(path):
        return "not a folder"
    return None


def scratch_dir(root: str, near: str, kind: str) -> str:
    """A folder for tombstones or staging on the same file system as ``near`` (so a rename there is atomic):
    ``<root>/.mlrepo/<kind>`` when that is on the same device, else ``<top>/.mlrepo/<kind>`` where ``<top>`` is
    the highest folder of the root on ``near``'s device (the scanner never looks inside ``.mlrepo``)."""
    while not os.path.isdir(near) and near != os.path.dirname(near):
        near = os.path.dirname(near)
    dev = os.stat(near).st_dev
    base = state_dir(root)
    os.makedirs(base, exist_ok=True)
    if os.stat(base).st_dev == dev:
        folder = os.path.join(base, kind)
    else:
        top = near
        while True:
            up = os.path.dirname(top)
            if up == top or not is_within(up, root) or os.stat(up).st_dev != dev:
                break
            top = up
        folder = os.path.join(top, ".mlrepo", kind)
    os.makedirs(folder, exist_ok=True)
    return folder


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


# -- the lock ---------------------------------------------------------------------------------------------------
class Busy(Exception):
    """Another mlrepo process holds the root's lock."""


class Lock:
    """``with Lock(root):`` - exclusive use of ``root`` for commands that move models; raises Busy at once."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(state_dir(root), "lock")
        self.fd: int | None = None

    def __enter__(self) -> "Lock":
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f" (pid {holder})" if holder else ""
                raise Busy(f"another mlrepo prune/archive/restore is working on {self.root}{who}; "
                           "try again when it has finished") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# -- the journal ------------------------------------------------------------------------------------------------
def journal_dir(root: str) -> str:
    return os.path.join(state_dir(root), JOURNAL)


def pending(root: str) -> list[str]:
    """Journal files of steps that did not finish (oldest first)."""
    folder = journal_dir(root)
    try:
        return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                      if n.endswith(".json") and not n.startswith("."))
    except OSError:
        return []


def leftovers(root: str) -> list[str]:
    """Half-written journal or ledger files (``.tmp-*``) of a run killed while writing one."""
    from mlrepo.repo_index.archived import ledger_dir

    out = []
    for folder in (journal_dir(root), ledger_dir(root)):
        try:
            out.extend(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(".tmp-"))
        except OSError:
            pass
    return out


def needs_recovery(root: str) -> bool:
    return bool(pending(root) or leftovers(root))


class Step:
    """One journaled step: ``Step.begin`` writes it before anything happens; ``update`` records progress;
    ``done`` removes it (and appends one line to ``<root>/.mlrepo/log.jsonl``, a history of what was done)."""

    def __init__(self, root: str, path: str, record: dict) -> None:
        self.root = root
        self.path = path
        self.record = record

    @classmethod
    def begin(cls, root: str, op: str, **fields: object) -> "Step":
        folder = journal_dir(root)
        os.makedirs(folder, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}-{op}.json"
        record = {"op": op, "pid": os.getpid(), "started": now_iso(), **fields}
        step = cls(root, os.path.join(folder, name), record)
        write_json(step.path, record)
        return step

    @classmethod
    def load(cls, root: str, path: str) -> "Step":
        with open(path, "rb") as fh:
            return cls(root, path, orjson.loads(fh.read()))

    def get(self, key: str, default: object = None) -> object:
        return self.record.get(key, default)

    def update(self, **fields: object) -> None:
        self.record.update(fields)
        write_json(self.path, self.record)

    def done(self, outcome: str, **extra: object) -> None:
        log_line = {"time": now_iso(), "op": self.record.get("op"), "outcome": outcome,
                    "id": self.record.get("id"), "path": self.record.get("path"), **extra}
        try:
            with open(os.path.join(state_dir(self.root), LOG), "ab") as fh:
                fh.write(orjson.dumps(log_line) + b"\n")
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        fsync_dir(os.path.dirname(self.path))


"""Durable file system writes: atomic replaces, renames that survive a power cut, tree removal without following links."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone

import orjson
from mlrepo.commands.operations.faults import fault
from mlrepo.repo_index.files import atomic_write, fsync_dir, unlink_durably

__all__ = ["fsync_dir", "now_iso", "remove_tree", "rename_durably", "unlink_durably", "write_json"]


def write_json(path: str, obj: object) -> None:
    """Replace ``path`` atomically and durably with ``obj`` as JSON."""
    data = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    atomic_write(path, lambda fh: fh.write(data), durable=True)


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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()

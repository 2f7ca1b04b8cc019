"""File-system basics that the index and the operations share: the one atomic write (optionally durable), the
folder fsync that makes a new name survive a power cut, and the one test of whether a path lies in a folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it, as written (resolve both first where links matter)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def fsync_dir(path: str) -> None:
    """Flush a folder's entries (a file created, renamed or removed in it); a folder gone already is no error."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_durably(path: str, missing_ok: bool = False) -> None:
    """Remove a file and flush its folder, so that the removal survives a power cut."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise
        return
    fsync_dir(os.path.dirname(path))


def atomic_write(path: str, write: Callable[[BinaryIO], object], durable: bool = False) -> None:
    """Write through a temp file (``.tmp-*`` beside ``path``) and a rename, so a reader never sees half a file;
    ``durable`` also fsyncs the data before the rename and the folder after it (the journal and the ledger need
    that, the cache can always be rebuilt)."""
    import tempfile  # here: the CLI's start (roots, TAB completion) imports this module, not tempfile's 4 ms

    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(folder)

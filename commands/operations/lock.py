"""One mover per root: ``fcntl.flock`` on ``<state>/lock``; the kernel releases it when its holder dies, however it dies."""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from mlrepo.errors import Busy
from mlrepo.repo_index.state import StateError, checked_dir


class Lock:
    """``with Lock(root):`` - exclusive use of ``root`` for commands that move models; raises Busy at once."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = ""
        self.fd: int | None = None

    def __enter__(self) -> "Lock":
        self.path = os.path.join(checked_dir(self.root), "lock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # ELOOP: a symlink planted in its place
            raise StateError(f"{self.path} cannot be used as mlrepo's lock ({exc.strerror}); "
                             "it must be a regular file (remove it)") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateError(f"{self.path} is not a regular file; mlrepo's lock must be one (remove it)")
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

"""Opening a binary log (TensorBoard events, a W&B ``.wandb`` file) safely: only regular files, never blocking on a
FIFO, every failure a short message (``MetaError``) for the model's ``error`` column."""

from __future__ import annotations

import os
import stat

from mlrepo.repo_index.readers.parsing import MetaError

#: a log larger than this is read up to here only, and the model says so
MAX_LOG_BYTES = 1 << 30


def read_log(path: str, limit: int = MAX_LOG_BYTES) -> tuple[bytes, bool]:
    """The file's bytes (at most ``limit``) and whether it was cut there. A FIFO or device is refused, not read."""
    name = os.path.basename(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise MetaError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MetaError(f"{name}: not a regular file")
        want = min(st.st_size, limit)
        chunks, got = [], 0
        while got < want:
            chunk = os.read(fd, min(want - got, 1 << 24))
            if not chunk:  # shrank while read
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks), st.st_size > limit
    except OSError as exc:
        raise MetaError(f"{name}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)

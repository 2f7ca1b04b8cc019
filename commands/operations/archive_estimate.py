"""What archiving will free: the archives' size, estimated before writing them, for the plan."""

from __future__ import annotations

import os
import stat

import zstandard
from mlrepo.commands.operations.tarzst import LEVEL

SAMPLE = 64 * 1024  # bytes compressed per sample
SAMPLES_PER_FILE = 4


def estimate_archive_bytes(folder: str, budget: int = 8 << 20) -> int:
    """About how large ``folder``'s archive will be: a few samples of each file compressed at ``LEVEL`` (spread
    over the file, at most ``budget`` bytes read in all), scaled to the file's size, plus tar's headers. Weights
    barely compress and logs shrink a lot, so a flat ratio would promise the wrong bytes freed."""
    cctx = zstandard.ZstdCompressor(level=LEVEL)
    files = []
    for dirpath, _dirs, names in os.walk(folder, followlinks=False):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                files.append((path, st))
    total = 512 * (len(files) + 2)
    per_file = max(SAMPLE, budget // max(len(files), 1))
    for path, st in files:
        total += 512
        if st.st_size <= min(per_file, SAMPLE * SAMPLES_PER_FILE):
            try:
                with open(path, "rb") as fh:
                    total += len(cctx.compress(fh.read()))
            except OSError:
                total += st.st_size
            continue
        read = packed = 0
        try:
            with open(path, "rb") as fh:
                step = st.st_size // SAMPLES_PER_FILE
                for k in range(SAMPLES_PER_FILE):
                    fh.seek(k * step)
                    data = fh.read(min(SAMPLE, per_file // SAMPLES_PER_FILE))
                    read += len(data)
                    packed += len(cctx.compress(data))
        except OSError:
            read = 0
        total += st.st_size if not read else int(st.st_size * packed / read)
    return total

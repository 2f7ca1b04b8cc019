"""What a model folder looks like, cheaply (names, types, sizes, mtimes, inodes; never contents), to re-check it
right before it moves, and what removing it frees on the disk.

The plan records one ``Footprint`` per model it would remove; execution walks the folder again just before moving
that one model and keeps it when anything differs (a late writer added a checkpoint, a file grew). The window
between the check and the move is one model's walk, whatever the size of the prune.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

SKEW_NS = 5 * 60 * 10**9  # clocks of other machines (NFS) may run a little ahead: this much is still "now"


@dataclass(slots=True)
class Footprint:
    digest: str  # changes when any entry's name, type, size, mtime or inode changes
    entries: int = 0
    newest_ns: int = 0  # the newest mtime not in the future (folder included)
    future_ns: int = 0  # the furthest mtime in the future (0 when none)
    # inode -> (allocated bytes, hard links): what removing the folder frees depends on links outside it
    inodes: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict, repr=False)
    linked: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)  # links seen inside


def footprint(path: str, now_ns: int) -> Footprint:
    """Walk ``path`` without following links. Raises OSError when the folder itself cannot be read."""
    h = hashlib.blake2b(digest_size=16)
    fp = Footprint("")
    limit = now_ns + SKEW_NS
    top = os.lstat(path)
    _note(fp, top, limit)
    fp.inodes[(top.st_dev, top.st_ino)] = (top.st_blocks * 512, 1)
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(path, rel) if rel else path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone between the listing and the stat: the digest differs anyway
            sub = f"{rel}/{entry.name}" if rel else entry.name
            h.update(os.fsencode(sub) + b"\0" + repr((stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns,
                                                       st.st_ino)).encode())
            fp.entries += 1
            _note(fp, st, limit)
            key = (st.st_dev, st.st_ino)
            fp.inodes[key] = (st.st_blocks * 512, 1 if stat.S_ISDIR(st.st_mode) else st.st_nlink)
            fp.linked[key] = fp.linked.get(key, 0) + 1
            if stat.S_ISDIR(st.st_mode):
                stack.append(sub)
    h.update(repr((stat.S_IFMT(top.st_mode), top.st_ino)).encode())
    fp.digest = h.hexdigest()
    return fp


def _note(fp: Footprint, st: os.stat_result, limit: int) -> None:
    m = st.st_mtime_ns
    if m > limit:
        fp.future_ns = max(fp.future_ns, m)
    elif m > fp.newest_ns:
        fp.newest_ns = m


def freed_bytes(prints: Iterable[Footprint]) -> list[int]:
    """What removing all these folders together frees, attributed to each in order: every inode once, and only
    an inode whose every hard link is inside the removed folders (a file also linked elsewhere stays)."""
    prints = list(prints)
    links: dict[tuple[int, int], int] = {}
    for fp in prints:
        for key, n in fp.linked.items():
            links[key] = links.get(key, 0) + n
        for key in fp.inodes.keys() - fp.linked.keys():  # the top folder
            links[key] = links.get(key, 0) + 1
    counted: set[tuple[int, int]] = set()
    out = []
    for fp in prints:
        total = 0
        for key, (blocks, nlink) in fp.inodes.items():
            if key in counted or links.get(key, 0) < nlink:
                continue
            counted.add(key)
            total += blocks
        out.append(total)
    return out

"""A model's objects as one ``.tar.zst`` (the same format as a local archive, ``tarzst``), and back.

The archive is written to a local spool file first: each object is streamed from the bucket into a pax tar member
``<model name>/<key below the model>`` (a regular file, mode 0644, mtime 0: a PUT sets an object's
last-modified time, so restore cannot keep it anyway), its sha256 taken on the way; folders are members too, so that ``tar --zstd -xf`` and ``tarzst.extract`` open it. The
spool is then re-read whole with ``tarzst.read_listing`` and compared with what was written, before anything is
uploaded. Restore downloads the archive, checks its sha256 against the ledger, extracts it with
``tarzst.extract`` (which refuses unsafe member names) and hands back each object's local file.

Keys that cannot be members of one tar tree (``a`` and ``a/b`` both objects) make the model refused for
``--archive``; the trash keeps such models as they are.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import zstandard
from mlrepo.commands.operations import tarzst
from mlrepo.commands.operations.faults import fault
from mlrepo.commands.operations.remote_keys import Bucket, Obj

DIR_MODE, FILE_MODE = 0o755, 0o644


def tree_problem(objects: Sequence[Obj]) -> str | None:
    """Why these keys cannot be one folder tree (a key that is also another key's folder), else None."""
    rels = {o.rel for o in objects}
    for rel in sorted(rels):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in rels:
                return f"the keys {'/'.join(parts[:i])!r} and {rel!r} cannot both be in an archive"
    return None


def _folders(objects: Sequence[Obj]) -> list[str]:
    out: set[str] = set()
    for o in objects:
        parts = o.rel.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return sorted(out)


class _Chunks:
    """An object's content as a file for ``tarfile``: streamed, hashed, counted."""

    def __init__(self, chunks) -> None:
        self.chunks = iter(chunks)
        self.buffer = b""
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        data, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size], self.buffer[size:])
        self.hash.update(data)
        self.count += len(data)
        return data


def write_spool(bucket: Bucket, model: str, objects: Sequence[Obj], dest: Path) -> tuple[tarzst.Listing, dict[str, str]]:
    """Write the model's objects into the new file ``dest``; returns the listing as ``tarzst.read_listing`` will
    see it and each object's sha256. tarzst.ArchiveError when an object changed size while being read."""
    top = model.rsplit("/", 1)[-1]
    listing: tarzst.Listing = {"": ("d", DIR_MODE, 0, 0, "", 0, 0, "")}
    shas: dict[str, str] = {}
    cctx = zstandard.ZstdCompressor(level=tarzst.LEVEL, write_checksum=True)
    with open(dest, "xb") as raw:
        writer = cctx.stream_writer(raw, closefd=False)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=tarzst.CHUNK) as tar:
            for folder in ["", *_folders(objects)]:
                info = tarfile.TarInfo(f"{top}/{folder}" if folder else top)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, DIR_MODE, 0
                tar.addfile(info)
                listing[folder] = ("d", DIR_MODE, 0, 0, "", 0, 0, "")
            for n, obj in enumerate(objects):
                info = tarfile.TarInfo(f"{top}/{obj.rel}")
                info.size, info.mode, info.mtime = obj.size, FILE_MODE, 0
                source = _Chunks(bucket.chunks(f"{model}/{obj.rel}"))
                tar.addfile(info, source)
                if source.count != obj.size or source.read(1):
                    raise tarzst.ArchiveError(f"{obj.rel} changed while being archived")
                shas[obj.rel] = source.hash.hexdigest()
                listing[obj.rel] = ("f", FILE_MODE, 0, obj.size, shas[obj.rel], 0, 0, "")
                if n == 0:
                    fault("remote-archive:partial")
        writer.close()
        raw.flush()
        os.fsync(raw.fileno())
    return listing, shas


def verify_spool(path: Path, expected: tarzst.Listing) -> tuple[str, int]:
    """Re-read the spool whole and compare every member with what was written; its sha256 and size."""
    found, sha, size = tarzst.read_listing(str(path))
    if found != expected:
        differ = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))[:3]
        raise tarzst.ArchiveError(f"the archive does not match the objects ({differ})")
    return sha, size


def extract(bucket: Bucket, archive: str, sha256: str, workdir: Path) -> Path:
    """Download the archive and extract it under ``workdir``; the model's folder there. ArchiveError when the
    archive is not the one recorded (sha256) or unsafe."""
    spool = workdir / "archive.tar.zst"
    if bucket.download(archive, spool) != sha256:
        raise tarzst.ArchiveError(f"{archive} is not the archive that was written (sha256 differs)")
    staging = workdir / "staging"
    staging.mkdir()
    return Path(tarzst.extract(str(spool), str(staging), sha256))

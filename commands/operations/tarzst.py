"""The archive format: one model folder as a POSIX (pax) tar stream compressed with zstd, ``<name>.tar.zst``.

Why tar + zstd level 3 (measured by ``benchmarks/archive_bench.py``, results in ``benchmarks/results/``): model
weights are float data that no codec shrinks by much (float32 weights by ~8%, a whole checkpoint folder to 85-87% at
any zstd, gzip or xz level), so speed decides. zstd -3 writes at ~450 MB/s and reads at >1 GB/s on one core; gzip
writes >10x slower for a slightly worse ratio, xz ~45x slower for one point better. The result is a standard
archive: ``tar --zstd -xf model.tar.zst`` (or ``zstd -d | tar x``) opens it without mlrepo.

What is kept, byte for byte: names (undecodable ones too), contents, modes, mtimes to the nanosecond (a pax
``mtime`` record), symlinks as links (never followed), hard links inside the model, empty folders, ``user.*``
extended attributes (pax ``SCHILY.xattr.*`` records, as GNU tar writes them), the holes of sparse files (a pax
``MLREPO.sparse`` record lists the data segments; the stream still holds the whole content, so other tools restore
the same bytes, only without holes), and owners (when restored by root).
Sockets and device files cannot be archived; such a model is refused.

Writing hashes every file's content (sha256) as it is read; ``verify`` re-reads the archive from the disk and
compares every member (type, mode, mtime, size, link target, content hash) with what was written. The archive's
own sha256 is recorded too, so a later check (restore, crash recovery) needs one pass over the compressed bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

import zstandard
from mlrepo.commands.operations.durable import fsync_dir
from mlrepo.commands.operations.faults import fault
from mlrepo.errors import FailedError

SUFFIX = ".tar.zst"
LEVEL = 3
CHUNK = 1 << 20
# per member: (type, mode, mtime_ns, size, sha256-or-linkname, uid, gid, user.* xattrs)
Entry = tuple[str, int, int, int, str, int, int, str]
SPARSE = "MLREPO.sparse"  # a sparse file's data segments, "offset:length,...": restored with the same holes
XATTR = "SCHILY.xattr."  # GNU tar's and bsdtar's pax keyword for extended attributes
Listing = dict[str, Entry]
BytesFn = Callable[[int], None]


class ArchiveError(FailedError):
    pass


@dataclass(slots=True)
class Written:
    listing: Listing
    content_bytes: int


def _exact_mtime(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _parse_mtime(member: tarfile.TarInfo) -> int:
    text = member.pax_headers.get("mtime")
    if text is None:
        return int(member.mtime) * 1_000_000_000
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("-").partition(".")
    return sign * (int(whole or 0) * 1_000_000_000 + int((frac + "000000000")[:9]))


_TYPES = {tarfile.DIRTYPE: "d", tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.SYMTYPE: "l",
          tarfile.LNKTYPE: "h", tarfile.FIFOTYPE: "p"}


def _kind(st_mode: int) -> str | None:
    if stat.S_ISDIR(st_mode):
        return "d"
    if stat.S_ISREG(st_mode):
        return "f"
    if stat.S_ISLNK(st_mode):
        return "l"
    if stat.S_ISFIFO(st_mode):
        return "p"
    return None


def _xattrs(path: str) -> dict[str, str]:
    """The ``user.*`` extended attributes of a file or folder (not followed through links), values as text
    (undecodable bytes kept by surrogateescape, as tar's pax headers carry them)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # a file system without xattrs
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False).decode("utf-8", "surrogateescape")
            for n in sorted(names) if n.startswith("user.")}


def _xattr_text(values: dict[str, str]) -> str:
    return repr(sorted(values.items())) if values else ""


def _segments(fd: int, size: int) -> list[tuple[int, int]] | None:
    """The data segments of a file with holes (SEEK_DATA/SEEK_HOLE); None when it has none or they cannot be
    asked for."""
    segments, offset = [], 0
    try:
        while offset < size:
            start = os.lseek(fd, offset, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
            segments.append((start, min(end, size) - start))
            offset = end
    except OSError as exc:  # ENXIO: no data past offset
        if getattr(exc, "errno", None) != 6:
            return None
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    if segments == [(0, size)]:
        return None
    return segments


class _HashingReader:
    """A file read through: counts, hashes (sha256), reports progress. Every content hash of an archive, its
    members' and its own, is taken by reading through one of these."""

    def __init__(self, fh, on_bytes: BytesFn | None = None) -> None:
        self.fh = fh
        self.hash = hashlib.sha256()
        self.count = 0
        self.on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.hash.update(data)
        self.count += len(data)
        if self.on_bytes and data:
            self.on_bytes(len(data))
        return data

    def finish(self) -> tuple[str, int]:
        """Read to the end; the sha256 and size of everything read."""
        while self.read(CHUNK):
            pass
        return self.hash.hexdigest(), self.count


def _walk(folder: str):
    """(relative path, absolute path) of the folder and everything in it, parents first, names sorted."""
    yield "", folder
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, folder)
        rel_dir = "" if rel_dir == "." else rel_dir
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in links]
        for name in sorted([*filenames, *links, *dirnames]):
            rel = os.path.join(rel_dir, name) if rel_dir else name
            yield rel, os.path.join(dirpath, name)


def stat_listing(folder: str) -> dict[str, tuple]:
    """What a folder looks like without reading contents: (type, mode, mtime_ns, size, link target) per entry."""
    out: dict[str, tuple] = {}
    for rel, path in _walk(folder):
        st = os.lstat(path)
        kind = _kind(st.st_mode) or "?"
        out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size if kind == "f" else 0,
                    os.readlink(path) if kind == "l" else "")
    return out


def stat_digest(folder: str) -> str:
    listing = stat_listing(folder)
    h = hashlib.sha256()
    for rel in sorted(listing):
        h.update(repr((os.fsencode(rel), listing[rel])).encode())
    return h.hexdigest()


def _stat_view(listing: Listing) -> dict[str, tuple]:
    """An archive listing reduced to what ``stat_listing`` sees (hard links are plain files there)."""
    files = {rel: e for rel, e in listing.items()}
    out = {}
    for rel, (kind, mode, mtime, size, extra, _uid, _gid, _xa) in files.items():
        if kind == "h":
            target = files[extra]
            out[rel] = ("f", target[1], target[2], target[3], "")
        else:
            out[rel] = (kind, mode, mtime, size, extra if kind == "l" else "")
    return out


def write_archive(folder: str, dest: str, on_bytes: BytesFn | None = None, level: int = LEVEL) -> Written:
    """Write ``folder`` to the new file ``dest`` (which must not exist), flushed and fsynced before returning."""
    top = os.path.basename(folder.rstrip(os.sep))
    listing: Listing = {}
    content = 0
    first_file = True
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    with open(dest, "xb") as raw:
        writer = cctx.stream_writer(raw, closefd=False)
        tar = tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK,
                           copybufsize=CHUNK)  # type: ignore[call-overload]  # typeshed lacks copybufsize
        try:
            for rel, path in _walk(folder):
                st = os.lstat(path)
                kind = _kind(st.st_mode)
                if kind is None:
                    raise ArchiveError(f"{os.path.join(top, rel)}: sockets and device files cannot be archived")
                arcname = os.path.join(top, rel) if rel else top
                info = tar.gettarinfo(path, arcname)
                if info is None:
                    raise ArchiveError(f"{arcname}: cannot be archived")
                info.pax_headers = {"mtime": _exact_mtime(st.st_mtime_ns)}
                attrs = _xattrs(path) if kind != "l" else {}
                info.pax_headers.update((XATTR + k, v) for k, v in attrs.items())
                xa = _xattr_text(attrs)
                mode = stat.S_IMODE(st.st_mode)
                if info.type == tarfile.LNKTYPE:  # a hard link to a file already in the archive
                    target = info.linkname[len(top) + 1:] if info.linkname.startswith(top + "/") else info.linkname
                    listing[rel] = ("h", mode, st.st_mtime_ns, 0, target, st.st_uid, st.st_gid, xa)
                    tar.addfile(info)
                elif kind == "f":
                    if info.size != st.st_size:
                        raise ArchiveError(f"{arcname} changed while being archived")
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                    with os.fdopen(fd, "rb") as fh:
                        holes = _segments(fd, st.st_size) if st.st_blocks * 512 < st.st_size else None
                        if holes is not None:
                            info.pax_headers[SPARSE] = ",".join(f"{o}:{n}" for o, n in holes)
                        reader = _HashingReader(fh, on_bytes)
                        tar.addfile(info, reader)
                    if reader.count != info.size:
                        raise ArchiveError(f"{arcname} changed while being archived")
                    content += reader.count
                    listing[rel] = ("f", mode, st.st_mtime_ns, reader.count, reader.hash.hexdigest(),
                                    st.st_uid, st.st_gid, xa)
                    if first_file:
                        first_file = False
                        fault("archive:partial")
                else:
                    tar.addfile(info)
                    listing[rel] = (kind, mode, st.st_mtime_ns, 0, info.linkname if kind == "l" else "",
                                    st.st_uid, st.st_gid, xa)
        finally:
            tar.close()  # writes the end-of-archive blocks (also on error; the file is then discarded)
        writer.close()  # ends the zstd frame (its content checksum included); ``raw`` stays open
        raw.flush()
        os.fsync(raw.fileno())
        _drop_cache(raw.fileno())
    fsync_dir(os.path.dirname(dest) or ".")
    return Written(listing, content)


def _drop_cache(fd: int) -> None:
    """Ask the kernel to forget the file's cached pages, so that verification reads what is on the disk."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass


def _members(path: str, on_member: Callable[[tarfile.TarFile, tarfile.TarInfo, str], None]) -> tuple[str, int]:
    """Stream through the archive calling ``on_member(tar, member, rel)``; returns (sha256, size) of the file."""
    with open(path, "rb") as raw:
        source = _HashingReader(raw)  # one pass both decompresses and checks the archive's own hash
        dctx = zstandard.ZstdDecompressor()
        try:
            with dctx.stream_reader(source, read_size=CHUNK, closefd=False) as stream:  # type: ignore[arg-type]
                with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as tar:
                    top = None
                    for member in tar:
                        name = member.name.rstrip("/")
                        if top is None:
                            top = name
                            if "/" in top or top in ("", ".", ".."):
                                raise ArchiveError(f"member {name!r} has an unsafe name")
                        rel = _relative(name, top)
                        on_member(tar, member, rel)
                while stream.read(CHUNK):  # to the end of the frame: zstd checks its content checksum there
                    pass
        except (zstandard.ZstdError, tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{os.path.basename(path)} is damaged: {exc}") from None
        return source.finish()


def _relative(name: str, top: str) -> str:
    if name == top:
        return ""
    if not name.startswith(top + "/"):
        raise ArchiveError(f"member {name!r} is outside the archive's folder {top!r}")
    rel = name[len(top) + 1:]
    parts = rel.split("/")
    if os.path.isabs(name) or any(p in ("", ".", "..") for p in parts):
        raise ArchiveError(f"member {name!r} has an unsafe name")
    return rel


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo, on_bytes: BytesFn | None = None) -> str:
    fh = tar.extractfile(member)
    assert fh is not None
    return _HashingReader(fh, on_bytes).finish()[0]


def _member_xattrs(m: tarfile.TarInfo) -> dict[str, str]:
    return {k[len(XATTR):]: v for k, v in m.pax_headers.items() if k.startswith(XATTR + "user.")}


def _parse_segments(text: str | None, size: int) -> list[tuple[int, int]] | None:
    if not text:
        return None
    try:
        segments = [(int(o), int(n)) for o, n in (part.split(":") for part in text.split(",") if part)]
    except ValueError:
        raise ArchiveError(f"bad {SPARSE} record {text[:40]!r}") from None
    end = 0
    for offset, length in segments:
        if offset < end or length < 0 or offset + length > size:
            raise ArchiveError(f"bad {SPARSE} record {text[:40]!r}")
        end = offset + length
    return segments


def _write_member(src, out, size: int, segments: list[tuple[int, int]] | None, on_bytes: BytesFn | None) -> None:
    """Copy a member's content; with ``segments``, only the data segments are written, the rest left as holes
    (the bytes there, read through, are the zeros of the original holes)."""
    pos = 0
    spans = segments if segments is not None else [(0, size)]
    for offset, length in spans:
        while pos < offset:  # a hole: read past it, write nothing
            data = src.read(min(CHUNK, offset - pos))
            if not data:
                raise ArchiveError("member ended early")
            pos += len(data)
        out.seek(offset)
        left = length
        while left:
            data = src.read(min(CHUNK, left))
            if not data:
                raise ArchiveError("member ended early")
            out.write(data)
            left -= len(data)
            pos += len(data)
            if on_bytes:
                on_bytes(len(data))
    while src.read(CHUNK):
        pass
    out.truncate(size)


def read_listing(path: str, on_bytes: BytesFn | None = None) -> tuple[Listing, str, int]:
    """Every member of an archive as written (contents hashed); plus the archive's sha256 and size."""
    listing: Listing = {}

    def member(tar, m, rel):
        kind = _TYPES.get(m.type)
        if kind is None:
            raise ArchiveError(f"member {m.name!r} has an unsupported type")
        extra = ""
        if kind == "f":
            extra = _hash_member(tar, m, on_bytes)
        elif kind == "l":
            extra = m.linkname
        elif kind == "h":
            extra = _relative(m.linkname, m.name.split("/", 1)[0])
        listing[rel] = (kind, m.mode, _parse_mtime(m), m.size if kind == "f" else 0, extra, m.uid, m.gid,
                        _xattr_text(_member_xattrs(m)))

    sha, size = _members(path, member)
    return listing, sha, size


def verify(path: str, expected: Listing, folder: str | None = None, on_bytes: BytesFn | None = None
           ) -> tuple[str, int]:
    """Re-read the archive from the disk and compare it with ``expected`` (what ``write_archive`` wrote); when
    ``folder`` is given, also check that the folder has not changed since. Returns the archive's sha256 and size."""
    found, sha, size = read_listing(path, on_bytes)
    if found != expected:
        missing = sorted(set(expected) - set(found))[:3]
        extra = sorted(set(found) - set(expected))[:3]
        differ = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])[:3]
        raise ArchiveError(f"{os.path.basename(path)} does not match the folder (missing {missing}, "
                           f"extra {extra}, different {differ})")
    if folder is not None and stat_listing(folder) != _stat_view(expected):
        raise ArchiveError(f"{folder} changed while it was being archived")
    return sha, size


def file_sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return _HashingReader(fh).finish()[0]


def extract(path: str, staging: str, expected_sha: str | None = None, on_bytes: BytesFn | None = None) -> str:
    """Extract the archive into the folder ``staging`` (which must exist and be empty); returns the path of the
    restored model folder inside it. Members are created without following links, every file is fsynced, then
    modes, owners and mtimes are applied children first. Raises ArchiveError (leaving ``staging`` to the caller
    to remove) when the archive is unsafe or its sha256 is not ``expected_sha``."""
    created: list[tuple[str, tarfile.TarInfo, int]] = []
    links: set[str] = set()
    top_path: list[str] = []
    first = [True]

    def member(tar, m, rel):
        if not top_path:
            if not m.isdir():
                raise ArchiveError("the archive does not start with its model folder")
            top_path.append(os.path.join(staging, m.name.rstrip("/")))
        parts = rel.split("/") if rel else []
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise ArchiveError(f"member {m.name!r} lies under a symlink")
        dest = os.path.join(top_path[0], rel) if rel else top_path[0]
        if m.isdir():
            os.mkdir(dest, 0o700)
        elif m.isreg():
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                src = tar.extractfile(m)
                assert src is not None
                _write_member(src, out, m.size, _parse_segments(m.pax_headers.get(SPARSE), m.size), on_bytes)
                out.flush()
                os.fsync(out.fileno())
            if first[0]:
                first[0] = False
                fault("restore:partial")
        elif m.issym():
            os.symlink(m.linkname, dest)
            links.add(rel)
        elif m.islnk():
            target_rel = _relative(m.linkname, os.path.basename(top_path[0]))
            target = os.path.join(top_path[0], target_rel)
            under_link = any("/".join(target_rel.split("/")[:i]) in links
                             for i in range(1, target_rel.count("/") + 2))
            if under_link or not os.path.isfile(target):
                raise ArchiveError(f"hard link {m.name!r} points at {m.linkname!r}, not a file of the archive")
            os.link(target, dest, follow_symlinks=False)
        elif m.isfifo():
            os.mkfifo(dest, 0o600)
        else:
            raise ArchiveError(f"member {m.name!r} has an unsupported type")
        created.append((dest, m, _parse_mtime(m)))

    sha, _size = _members(path, member)
    if expected_sha and sha != expected_sha:
        raise ArchiveError(f"{os.path.basename(path)} is not the archive that was written (sha256 differs)")
    if not top_path:
        raise ArchiveError(f"{os.path.basename(path)} is empty")
    as_root = os.geteuid() == 0
    for dest, m, mtime in reversed(created):  # children before their folders: a folder's mtime is set last
        for name, value in _member_xattrs(m).items() if not m.issym() else ():
            os.setxattr(dest, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        if as_root:
            os.chown(dest, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            os.chmod(dest, m.mode)
        os.utime(dest, ns=(mtime, mtime), follow_symlinks=False)
        if m.isdir():
            fsync_dir(dest)
    fsync_dir(staging)
    return top_path[0]


"""A local mirror of a remote root's metadata, in the user cache folder, that the ordinary scanner reads.

Every object under the root becomes a file at its relative path in ``tree/``: the small metadata objects with
their content (one GET each), the payload (weights, archives, media, anything past the size the readers accept)
as a sparse placeholder of the object's size that is never downloaded. Each file's mtime is the object's
modification time (its ETag folded into the nanoseconds, so a rewrite within one second is still a change), so the
dates the scanner derives are the listing's. A folder whose entries changed gets the next *generation* as its
mtime: the scanner's cache sees the change, and a date taken from it never passes a file's.

``manifest.parquet`` records each object's ETag and size: the next sync GETs only objects whose ETag or size
changed, and removes the files of objects that are gone. A key that cannot be a file here (``..``, an empty
segment, a segment longer than the file system allows, a name both an object and a folder of other objects) is
skipped with the reason; no path outside ``tree/`` is ever written. One sync at a time per mirror (a lock file).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson
import platformdirs
import polars as pl
from mlrepo.repo_index.cache import CACHE_ENV, atomic_write
from mlrepo.repo_index.readers.binfile import MAX_LOG_BYTES
from mlrepo.repo_index.readers.parsing import MAX_META_BYTES
from mlrepo.repo_index.remote.listing import Listing, RemoteObject
from mlrepo.repo_index.remote.store import RemoteError, RemoteRoot
from mlrepo.repo_index.scanner import SKIP_DIRS

#: never downloaded, whatever their size: weights, checkpoints, archives, data and media
PAYLOAD_SUFFIXES = frozenset({
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".hdf5", ".keras", ".onnx", ".pkl", ".pickle",
    ".joblib", ".npy", ".npz", ".msgpack", ".gguf", ".ggml", ".tflite", ".mlmodel", ".model", ".params", ".pb",
    ".tar", ".gz", ".tgz", ".zst", ".zip", ".7z", ".xz", ".bz2", ".parquet", ".arrow", ".feather", ".tfrecord",
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".mp4", ".avi", ".mov", ".wav", ".mp3", ".flac",
})
MAX_NAME_BYTES = 255  # one path segment, as Linux and macOS file systems allow
MAX_PATH_BYTES = 3000  # the whole relative path, well inside PATH_MAX with the cache folder before it
GET_WORKERS = 32


def is_log(name: str) -> bool:
    """Binary logs and stores the readers parse whole (up to ``MAX_LOG_BYTES``)."""
    return ".tfevents." in name or name.endswith(".wandb") or name in ("mlflow.db", "mlflow.db-wal")


def wanted(rel: str, size: int) -> bool:
    """Is this object metadata a reader may parse (downloaded), or payload (a placeholder)?"""
    name = rel.rpartition("/")[2]
    if is_log(name):
        return size <= MAX_LOG_BYTES
    suffix = os.path.splitext(name)[1].lower()
    return suffix not in PAYLOAD_SUFFIXES and size <= MAX_META_BYTES


def unsafe(rel: str) -> str | None:
    """Why ``rel`` cannot be a path inside the mirror (None when it can)."""
    if len(os.fsencode(rel)) > MAX_PATH_BYTES:
        return "key too long for a local path"
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            return "key has an empty, '.' or '..' segment"
        if "\x00" in part:
            return "key has a NUL byte"
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            return f"a key segment is longer than {MAX_NAME_BYTES} bytes"
    return None


def mirror_dir(url: str) -> str:
    base = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("mlrepo")
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in url.split("://", 1)[-1])[:40]
    return os.path.join(os.path.abspath(os.path.expanduser(base)), "remote", f"{name}-{digest}")


@dataclass(frozen=True, slots=True)
class Entry:
    etag: str
    size: int
    mtime_ns: int
    fetched: bool


@dataclass
class SyncResult:
    fetched: int = 0
    placeholders: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, why)
    sizes: dict[str, int] = field(default_factory=dict)  # rel -> size of every mirrored object


def _mtime(obj: RemoteObject) -> int:
    """The object's time, its ETag folded into the sub-millisecond digits: a same-second rewrite still changes."""
    return obj.mtime_ns - obj.mtime_ns % 10**6 + zlib.crc32(obj.etag.encode()) % 10**6


class Mirror:
    """The mirror of one remote root (``tree/``, ``manifest.parquet``, ``state.json``) under the cache folder."""

    def __init__(self, url: str, base: str | None = None) -> None:
        self.url = url
        self.base = base or mirror_dir(url)
        # named as the root's own last segment: readers that name a row after the root folder (DVC) see its name
        name = url.rstrip("/").rsplit("/", 1)[-1]
        self.tree = os.path.join(self.base, "tree", name if unsafe(name) is None else "root")
        self.manifest_path = os.path.join(self.base, "manifest.parquet")
        self.state_path = os.path.join(self.base, "state.json")

    # -- the manifest ------------------------------------------------------------------------------------
    def load(self) -> tuple[dict[str, Entry], int]:
        """The manifest and the last generation; empty when missing or damaged (then everything is fetched)."""
        try:
            with open(self.state_path, "rb") as fh:
                state = orjson.loads(fh.read())
            frame = pl.read_parquet(self.manifest_path)
            entries = {rel: Entry(etag, size, mtime, fetched) for rel, etag, size, mtime, fetched in
                       frame.select("rel", "etag", "size", "mtime_ns", "fetched").iter_rows()}
            return entries, int(state["generation"])
        except Exception:  # noqa: BLE001 - derived data: rebuilt from the bucket
            return {}, 0

    def _save(self, entries: dict[str, Entry], generation: int) -> None:
        frame = pl.DataFrame({"rel": list(entries), "etag": [e.etag for e in entries.values()],
                              "size": [e.size for e in entries.values()],
                              "mtime_ns": [e.mtime_ns for e in entries.values()],
                              "fetched": [e.fetched for e in entries.values()]},
                             schema={"rel": pl.String, "etag": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64,
                                     "fetched": pl.Boolean})
        atomic_write(self.manifest_path, frame.write_parquet)
        atomic_write(self.state_path, lambda fh: fh.write(orjson.dumps({"url": self.url, "generation": generation})))

    # -- the sync ----------------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """One process at a time syncs and scans this mirror (another waits, then finds it up to date)."""
        os.makedirs(self.tree, exist_ok=True)
        with open(os.path.join(self.base, "lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def sync(self, root: RemoteRoot, listing: Listing, rebuild: bool = False) -> SyncResult:
        """Bring ``tree/`` to what ``listing`` says (call it inside ``locked``)."""
        result = SyncResult()
        old, generation = self.load()
        if rebuild:  # every object fetched again, into an empty tree
            old = {}
            shutil.rmtree(self.tree)
            os.makedirs(self.tree)
        generation += 1
        objects: dict[str, RemoteObject] = {}
        for obj in listing.objects:
            why = unsafe(obj.rel)
            if why is not None:
                result.skipped.append((root.location.url_of(obj.rel), why))
            elif not any(part in SKIP_DIRS for part in obj.rel.split("/")[:-1]):
                objects[obj.rel] = obj
        folders = {rel.rsplit("/", 1)[0] for rel in objects if "/" in rel}
        folders |= {f.rsplit("/", i)[0] for f in list(folders) for i in range(1, f.count("/") + 1)}
        for rel in [rel for rel in objects if rel in folders]:  # an object named like a folder of other objects
            obj = objects.pop(rel)
            if obj.size:  # an empty one is the usual folder marker: nothing to say
                result.skipped.append((root.location.url_of(rel), "an object and a folder of objects share this "
                                       "name; the folder is indexed"))
        touched: set[str] = set()
        entries: dict[str, Entry] = {}
        for rel in old:
            if rel not in objects:
                self._remove(rel, touched)
                result.removed += 1
        self._prune_empty(touched)
        to_get: list[RemoteObject] = []
        for rel, obj in objects.items():
            want = wanted(rel, obj.size)
            prev = old.get(rel)
            result.sizes[rel] = obj.size
            if (prev is not None and prev.etag == obj.etag and prev.size == obj.size and prev.fetched == want
                    and os.path.isfile(self._path(rel))):
                entries[rel] = prev
                result.unchanged += 1
            elif want:
                to_get.append(obj)
            else:
                self._write(rel, None, obj, touched)
                entries[rel] = Entry(obj.etag, obj.size, _mtime(obj), False)
                result.placeholders += 1

        def fetch(obj: RemoteObject) -> tuple[RemoteObject, bytes | None]:
            try:
                return obj, root.get(root.location.key(obj.rel))
            except RemoteError as exc:
                if exc.gone:  # deleted since the listing: as if it had not been listed
                    return obj, None
                raise

        with ThreadPoolExecutor(max_workers=GET_WORKERS, thread_name_prefix="mlrepo-get") as pool:
            for obj, data in pool.map(fetch, to_get):
                if data is None:
                    result.sizes.pop(obj.rel, None)
                    continue
                self._write(obj.rel, data, obj, touched)
                entries[obj.rel] = Entry(obj.etag, obj.size, _mtime(obj), True)
                result.fetched += 1
        for folder in sorted(touched, key=len, reverse=True):
            try:
                os.utime(folder, ns=(generation, generation))
            except OSError:
                pass
        self._save(entries, generation)
        return result

    # -- files ---------------------------------------------------------------------------------------------
    def _path(self, rel: str) -> str:
        return os.path.join(self.tree, *rel.split("/"))

    def _folder(self, rel: str, touched: set[str]) -> str:
        """The mirror folder of ``rel``'s parent, made if missing (a file in the way, from an older listing, goes)."""
        parts = rel.split("/")[:-1]
        path = self.tree
        touched.add(path)
        for part in parts:
            path = os.path.join(path, part)
            if not os.path.isdir(path) or os.path.islink(path):
                if os.path.lexists(path):
                    os.unlink(path)
                os.mkdir(path)
            touched.add(path)
        return path

    def _write(self, rel: str, data: bytes | None, obj: RemoteObject, touched: set[str]) -> None:
        folder = self._folder(rel, touched)
        path = os.path.join(folder, rel.rpartition("/")[2])
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mlrepo-sync-")
        try:
            with os.fdopen(fd, "wb") as fh:
                if data is None:
                    fh.truncate(obj.size)  # sparse: the size without the bytes
                else:
                    fh.write(data)
            mtime = _mtime(obj)
            os.utime(tmp, ns=(mtime, mtime))
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise

    def _remove(self, rel: str, touched: set[str]) -> None:
        path = self._path(rel)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        touched.add(os.path.dirname(path))

    def _prune_empty(self, touched: set[str]) -> None:
        """Folders left empty by removals go, up to (not including) the tree."""
        for folder in sorted(touched, key=len, reverse=True):
            path = folder
            while path != self.tree and path.startswith(self.tree + os.sep):
                try:
                    os.rmdir(path)
                except OSError:
                    break
                path = os.path.dirname(path)
                touched.add(path)

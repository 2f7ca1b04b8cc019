"""A live index: watchdog events under a root become index changes, applied to the polars table one model at a time.

How an event becomes a change
-----------------------------
Each event path is routed to a *key*: the known model folder it lies in (``model``), a new folder nobody has
looked at yet (``tree``: the topmost unknown folder on the path, so a ``cp -r`` of a whole line is one key), a
known plain folder in which a file changed and which may now be a model (``claim``), or a store file such as
``mlflow.db`` (``store``). Readers whose metadata lives outside the model folder (MLflow's ``../meta.yaml``, the HF
Trainer's ``..`` and ``../trainer_state.json``) are followed through their ``meta_files``: a change there marks
every model that depends on it.

A key is processed once it has been quiet for ``debounce`` seconds (or ``max_delay`` after its first event when
writes never stop): a ``model`` key re-reads that one folder with ``scan_model``; a ``tree`` key claims the folder
or runs a ``Scanner`` rooted at it, with what is already known under it as the previous scan, so known models are
revalidated with ``stat`` calls and never re-read. A model whose metadata does not parse is held back while its
files keep changing (a half-written ``meta.json`` is not an error yet) and is reported with its error only when it
has stayed broken for ``settle`` seconds. Changes are applied with ``index.apply_changes`` (filter, concat, sort:
never a scan), then handed on as one ``ChangeBatch``.

Thread model
------------
* watchdog's observer thread runs ``_Handler.dispatch``: it only routes paths to keys (a few dict look-ups).
* one worker thread (``mlrepo-live``) debounces, reads, applies, and calls ``on_change(batch)``; without a callback
  batches go to a queue read with ``get()``/``batches()`` from any thread.
* one saver thread writes the cache (``Cache.save``) at most once per ``save_interval`` and on ``stop()``, so the
  next ``mlrepo ls`` starts warm. Folders whose listing changed are marked stale in the saved skeleton, so
  revalidation lists them again instead of trusting an mtime the live table may not have followed.

From a Textual app (this module never imports textual)::

    @work(thread=True, exclusive=True, group="live")
    def start_live(self) -> None:
        self.live = LiveIndex(root, on_change=lambda batch: self.post_message(IndexChanged(batch)),
                              on_warning=lambda msg: self.call_from_thread(self.notify, msg, severity="warning"))
        self.live.start(index=self.index)  # blocking; the index the app just opened, or None to open it here
    # on IndexChanged: swap in batch.index.df, keep the cursor by id; on unmount: self.live.stop()

Each ``ChangeBatch`` carries the events and the index after them (immutable), so the UI never reads the live
index while it changes. A save that changes nothing visible (same content rewritten) reports nothing.

Where inotify cannot follow the tree (too many folders for ``fs.inotify.max_user_watches``, a network file system
whose remote changes inotify never sees, an inotify error), a warning says so and watchdog's ``PollingObserver``
takes over.
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import polars as pl
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from mlrepo.repo_index.archived import LEDGER, with_archived
from mlrepo.repo_index.cache import STATE_DIR, Cache
from mlrepo.repo_index.index import Index, IndexError_, _drop_empty, apply_changes, open_index
from mlrepo.repo_index.readers import Place, Reader, StoreReader, default_readers, default_store_readers
from mlrepo.repo_index.rows import _clean_text, split_paths
from mlrepo.repo_index.scanner import (
    SKIP_DIRS,
    Found,
    Previous,
    Scanner,
    scan_model,
    store_models,
    store_stamp,
)

log = logging.getLogger("mlrepo.live")

EVENT_TYPES = [FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent,
               FileModifiedEvent, DirModifiedEvent, FileClosedEvent]
#: File systems whose remote changes inotify does not report (or not reliably): watched by polling instead.
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs", "sshfs", "ceph", "fuse.ceph",
    "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse",
    "fuse.juicefs", "davfs", "fuse.davfs2",
})
STORE_SUFFIXES = ("-wal", "-journal", "-shm")
LEDGER_REL = f"{STATE_DIR}/{LEDGER}"
LEDGER_QUIET = 1.0  # seconds
#: share of ``fs.inotify.max_user_watches`` one tree may take before we poll instead of starving other programs
WATCH_SHARE = 0.9
#: A polling snapshot costs ~27 us a folder (watchdog's DirectorySnapshot, 40k folders in 1.07 s here): polling no
#: more often than every folders / 8000 seconds keeps it under a fifth of a core (27 s at 100k models).
POLL_FOLDERS_PER_SECOND = 8000


# -- what is reported ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One model added, updated or removed. ``id`` and ``path`` are the index's; the rest describes the model
    (for ``removed``: as it was)."""

    event: str  # "added" | "updated" | "removed"
    id: str
    path: str
    format: str | None
    repo: str | None = None
    line: str | None = None
    name: str | None = None
    status: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"event": self.event, "id": self.id, "path": self.path, "format": self.format, "repo": self.repo,
                "line": self.line, "name": self.name, "status": self.status, "error": self.error}


@dataclass(slots=True)
class ChangeBatch:
    """Changes applied together, and the index as it is after them (an immutable snapshot: safe to keep)."""

    events: list[ChangeEvent]
    index: Index
    columns_changed: bool = False  # the public columns differ (a metric or param appeared, went, or was renamed)
    final: bool = False  # the live index stopped by itself (root gone): ``LiveIndex.error`` says why


# -- internal state --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Model:
    format: str
    dirs: list[str]
    meta: list[str]
    stamp: int
    store: str | None


@dataclass(slots=True)
class _Pending:
    first: float  # first event
    last: float  # latest event
    due: float  # when to look


@dataclass(slots=True)
class _Work:
    """What one round of processing changes."""

    upserts: dict[str, Found] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    store_of: dict[str, str] = field(default_factory=dict)
    done_trees: list[str] = field(default_factory=list)
    ledger: bool = False  # mlrepo's ledger of archived/trashed models changed


def _join(prefix: str, rel: str) -> str:
    if not prefix:
        return rel
    return f"{prefix}/{rel}" if rel else prefix


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _under(rel: str, prefix: str) -> bool:
    """Is ``rel`` strictly inside ``prefix``?"""
    return rel != prefix and (not prefix or rel.startswith(prefix + "/"))


def _listdir(path: str) -> frozenset[str] | None:
    try:
        with os.scandir(path) as it:
            return frozenset(e.name for e in it)
    except OSError:
        return None


def _is_dir(path: str) -> bool:
    try:
        return os.path.isdir(path) and not os.path.islink(path)
    except OSError:
        return False


def filesystem_type(path: str) -> str | None:
    """The type of the file system ``path`` lives on (Linux: from /proc/self/mountinfo), or None."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    best, fstype = -1, None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].replace("\\040", " ")
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > best:
            best, fstype = len(mount), right.split()[0]
    return fstype


def max_user_watches() -> int | None:
    try:
        with open("/proc/sys/fs/inotify/max_user_watches", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _watch_count(observer: object) -> int | None:
    """How many inotify watches ``observer`` holds (None when it cannot be told)."""
    try:
        return len(observer._inotify_fd._watch_for_wd)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - another observer class or another watchdog version
        return None


class _OverflowWatch(logging.Handler):
    """watchdog logs an inotify queue overflow (events were lost): ask for a resync."""

    def __init__(self, live: LiveIndex) -> None:
        super().__init__(logging.WARNING)
        self.live = live

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.live._request_resync("the kernel dropped file-system events (inotify queue overflow)")


class _Handler:
    """watchdog calls ``dispatch`` on its observer thread; it only routes the paths."""

    def __init__(self, live: LiveIndex) -> None:
        self.live = live

    def dispatch(self, event: FileSystemEvent) -> None:
        live = self.live
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        try:
            if kind == "moved":
                live._on_path(src, event.is_directory, "deleted")
                if event.dest_path:
                    live._on_path(os.fsdecode(event.dest_path), event.is_directory, "created")
            elif kind in ("created", "deleted", "modified", "closed"):
                live._on_path(src, event.is_directory, "modified" if kind == "closed" else kind)
        except Exception:  # noqa: BLE001 - never let one odd path stop the observer
            log.exception("mlrepo live: could not route %r", src)


# -- the live index --------------------------------------------------------------------------------------------
class LiveIndex:
    """An ``Index`` kept true by watchdog. ``start()`` opens the index and starts watching; ``index`` is always the
    latest snapshot; every applied change goes to ``on_change(batch)`` (called on the live worker thread) or, without
    a callback, to a queue read with ``get()``/``batches()``. ``stop()`` (or leaving a ``with`` block) stops
    watching and writes the cache."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        on_change: Callable[[ChangeBatch], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        observer: str = "auto",  # "auto" (inotify, polling where it cannot follow), "polling", "native", "off"
        debounce: float = 0.2,
        max_delay: float = 1.0,
        settle: float = 2.0,
        retry: float = 0.15,
        poll_interval: float = 1.0,
        save_interval: float = 1.0,
        use_cache: bool = True,
        readers: Iterable[Reader] | None = None,
        store_readers: Iterable[StoreReader] | None = None,
    ) -> None:
        if observer not in ("auto", "polling", "native", "off"):
            raise ValueError(f"observer must be auto, polling, native or off, not {observer!r}")
        self.root = os.path.abspath(os.path.expanduser(os.fspath(root)))
        self._prefix = self.root.rstrip("/") + "/"
        self.on_change = on_change
        self.on_warning = on_warning
        self.observer_kind = observer
        self.debounce, self.max_delay, self.settle, self.retry = debounce, max_delay, settle, retry
        self.poll_interval, self.save_interval, self.use_cache = poll_interval, save_interval, use_cache
        self.readers = list(readers) if readers is not None else default_readers()
        self.by_format = {r.format: r for r in self.readers}
        self.store_readers = list(store_readers) if store_readers is not None else default_store_readers()
        self.store_files = {name: r for r in self.store_readers for name in r.store_files}
        self.cache = Cache(self.root)

        self.mode: str | None = None  # "inotify" (or the platform's native observer), "polling", "off"
        self.warnings: list[str] = []
        self.error: str | None = None  # why the live index stopped by itself
        self.stats = {"events": 0, "batches": 0, "reads": 0, "subtree_scans": 0, "saves": 0, "resyncs": 0}
        self.queue: queue.Queue[ChangeBatch] = queue.Queue()

        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._index: Index | None = None
        self._models: dict[str, _Model] = {}
        self._sorted: list[str] = []
        self._skeleton: dict[str, int] = {}
        self._stores: dict[str, tuple[int, list[str]]] = {}
        self._ext: dict[str, set[str]] = {}  # a path outside a model folder -> models whose metadata it is
        self._deferred: set[str] = set()  # new models held back until their metadata parses
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._dirty = False  # the cache is behind the table
        self._resync_reason: str | None = None
        self._n_dirs = 0
        self._root_id: tuple[int, int] | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._observer: object | None = None
        self._threads: list[threading.Thread] = []
        self._overflow = _OverflowWatch(self)

    # -- public API ----------------------------------------------------------------------------------------------
    @property
    def index(self) -> Index:
        """The latest snapshot (replaced, never mutated: safe to hold while the live index moves on)."""
        if self._index is None:
            raise RuntimeError("LiveIndex.start() first")
        return self._index

    @property
    def running(self) -> bool:
        return self._index is not None and not self._stopped.is_set()

    def start(self, index: Index | None = None) -> Index:
        """Open the index (warm from the cache when it can) and start watching. Blocking: call it from a worker
        thread in a UI. Raises ``IndexError_`` when the root is not a folder.

        ``index``: one the caller has just opened with ``open_index`` on the same root, to skip opening it again
        (changes made between that scan and this call are only seen at the next ``resync()``)."""
        if self._index is not None:
            return self._index
        if not os.path.isdir(self.root):
            raise IndexError_(f"{self.root}: not a folder" if os.path.exists(self.root) else
                              f"{self.root}: no such folder")
        st = os.stat(self.root)
        self._root_id = (st.st_dev, st.st_ino)
        # watchdog warns (stderr) when a folder it already watches is reported again during a ``cp -r``: benign
        warnings.filterwarnings("ignore", message=r"Callback with id .* already exists", category=RuntimeWarning,
                                module=r"watchdog\.")
        if index is None or os.path.abspath(index.root) != self.root or not index.stats.skeleton:
            index = open_index(self.root, use_cache=self.use_cache)
        self._load(index)
        # the folder count decides between inotify and polling, so the watch starts after the scan: a change made
        # in between is seen by the next ``resync`` (or the next ``mlrepo ls``), not live
        self._start_observer(_Handler(self))
        logging.getLogger("watchdog").addHandler(self._overflow)
        worker = threading.Thread(target=self._run, name="mlrepo-live", daemon=True)
        saver = threading.Thread(target=self._save_loop, name="mlrepo-live-save", daemon=True)
        self._threads = [worker, saver]
        for thread in self._threads:
            thread.start()
        return index

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, finish the thread work, write the cache. Idempotent; safe from any thread but the
        live worker's own callback (there it only asks the worker to stop)."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        self._stop_observer()
        logging.getLogger("watchdog").removeHandler(self._overflow)
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(timeout)
        if current not in self._threads:
            self._save(force=True)
        self._stopped.set()

    def __enter__(self) -> LiveIndex:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, timeout: float | None = None) -> ChangeBatch | None:
        """The next batch from the queue (only filled when no ``on_change`` callback is set), or None on timeout."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def batches(self, poll: float = 0.25) -> Iterator[ChangeBatch]:
        """Batches as they come, until the live index stops (for a thread worker: ``for b in live.batches()``)."""
        while True:
            batch = self.get(timeout=poll)
            if batch is not None:
                yield batch
                if batch.final:
                    return
            elif self._stopping.is_set() and self.queue.empty():
                return

    def notify(self, path: str, is_directory: bool | None = None, what: str = "modified") -> None:
        """Tell the live index a path changed (what a file-system event does): for callers that know better than
        the observer, e.g. after writing a model themselves, and for observers that cannot see (``off``)."""
        if is_directory is None:
            is_directory = _is_dir(path)
        self._on_path(os.path.abspath(path), is_directory, what)

    def flush(self, timeout: float = 10.0) -> bool:
        """Process everything pending now, without waiting for quiet (held-back half-written models stay held
        back); True when nothing is pending any more. Runs on the caller's thread when the worker is not running."""
        deadline = time.monotonic() + timeout
        with self._wake:
            for pend in self._pending.values():
                pend.due = min(pend.due, time.monotonic())
            self._wake.notify_all()
        if not self._threads or not self._threads[0].is_alive():
            self._round(force=True)
        while time.monotonic() < deadline:
            with self._lock:
                busy = any(p.due <= time.monotonic() for p in self._pending.values()) or self._busy
            if not busy:
                return True
            time.sleep(0.005)
        return False

    def resync(self, reason: str = "asked") -> None:
        """Revalidate the whole tree against the disk (stat calls for known models, reads for changed ones), as
        ``open_index`` does with a warm cache. Only for lost events (queue overflow, observer switch)."""
        self._request_resync(reason)

    # -- loading -------------------------------------------------------------------------------------------------
    def _load(self, index: Index) -> None:
        raw = index.raw
        models: dict[str, _Model] = {}
        n_dirs = 0
        for rel, fmt, dirs, meta, stamp, store in zip(
                raw["_rel"].to_list(), raw["format"].to_list(), raw["_dirs"].to_list(), raw["_meta"].to_list(),
                raw["_stamp"].to_list(), raw["_store"].to_list(), strict=True):
            model = models[rel] = _Model(fmt, split_paths(dirs), split_paths(meta), stamp, store)
            n_dirs += len(model.dirs)
        with self._lock:
            self._index = index
            self._models = models
            self._sorted = sorted(models)
            self._skeleton = dict(index.stats.skeleton)
            self._stores = dict(index.stats.stores)
            self._ext = {}
            for rel, model in models.items():
                self._link(rel, model)
            self._n_dirs = n_dirs + len(self._skeleton)

    def _link(self, rel: str, model: _Model, add: bool = True) -> None:
        for meta in model.meta:
            if meta.startswith(".."):
                target = os.path.normpath(os.path.join(rel, meta))
                if target == ".":
                    target = ""
                if add:
                    self._ext.setdefault(target, set()).add(rel)
                else:
                    deps = self._ext.get(target)
                    if deps is not None:
                        deps.discard(rel)
                        if not deps:
                            del self._ext[target]

    # -- observers -----------------------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning is not None:
            try:
                self.on_warning(message)
            except Exception:  # noqa: BLE001
                log.exception("mlrepo live: on_warning failed")
        else:
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _poll_every(self) -> float:
        """Seconds between polls: ``poll_interval``, or longer for a tree whose snapshot takes long."""
        return max(self.poll_interval, round(self._n_dirs / POLL_FOLDERS_PER_SECOND, 1))

    def _polling_reason(self) -> str | None:
        fstype = filesystem_type(self.root)
        if fstype in NETWORK_FS:
            return (f"{self.root} is on a network file system ({fstype}): inotify does not see changes made "
                    f"from other machines")
        limit = max_user_watches()
        if limit is not None and self._n_dirs > limit * WATCH_SHARE:
            return (f"{self._n_dirs} folders to watch under {self.root}, more than inotify allows "
                    f"(fs.inotify.max_user_watches = {limit}; raise it with "
                    f"`sysctl fs.inotify.max_user_watches={max(2 * self._n_dirs, 524288)}`)")
        return None

    def _start_observer(self, handler: _Handler) -> None:
        kind = self.observer_kind
        if kind == "off":
            self.mode = "off"
            return
        if kind == "auto":
            reason = self._polling_reason()
            if reason:
                self._warn(f"{reason}; polling every {self._poll_every():g} s instead (slower)")
                kind = "polling"
        if kind in ("auto", "native"):
            from watchdog.observers import Observer

            observer = Observer()
            try:
                observer.schedule(handler, self.root, recursive=True, event_filter=EVENT_TYPES)
                observer.start()
            except OSError as exc:
                self._stop_one(observer)
                why = {errno.ENOSPC: "too many folders for fs.inotify.max_user_watches",
                       errno.EMFILE: "too many inotify instances (fs.inotify.max_user_instances)"}.get(
                    exc.errno or 0, exc.strerror or str(exc))
                self._warn(f"cannot watch {self.root} with inotify ({why}); polling every "
                           f"{self._poll_every():g} s instead (slower)")
                kind = "polling"
            else:
                shortfall = self._watch_shortfall(observer)
                if shortfall:
                    self._stop_one(observer)
                    self._warn(f"inotify could not watch {shortfall} of the folders under {self.root} "
                               f"(fs.inotify.max_user_watches reached); polling every {self._poll_every():g} s "
                               f"instead (slower)")
                    kind = "polling"
                else:
                    self._observer = observer
                    self.mode = "inotify" if type(observer).__name__.startswith("Inotify") else "native"
                    return
        from watchdog.observers.polling import PollingObserver

        observer = PollingObserver(timeout=self._poll_every())
        observer.schedule(handler, self.root, recursive=True, event_filter=EVENT_TYPES)
        observer.start()
        self._observer = observer
        self.mode = "polling"

    def _watch_shortfall(self, observer: object) -> int:
        """Folders inotify should watch but does not (watchdog skips those it cannot add silently)."""
        count = _watch_count(observer)
        if count is None:
            return 0
        with self._lock:
            expected = self._n_dirs
        if count >= expected:
            return 0
        with self._lock:  # some known folders may be gone: count those that exist
            rels = list(self._skeleton) + [_join(r, d) for r, m in self._models.items() if m.store is None
                                           for d in m.dirs]
        existing = sum(1 for rel in rels if _is_dir(self._abs(rel)))
        return max(0, existing - count) if existing - count > max(8, existing // 100) else 0

    @staticmethod
    def _stop_one(observer: object) -> None:
        try:
            observer.stop()  # type: ignore[attr-defined]
            if observer.is_alive():  # type: ignore[attr-defined]
                observer.join(5)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            log.exception("mlrepo live: stopping the observer failed")

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            self._stop_one(observer)

    def _switch_to_polling(self, why: str) -> None:
        handler = _Handler(self)
        self._stop_observer()
        self._warn(f"{why}; polling every {self._poll_every():g} s instead (slower)")
        from watchdog.observers.polling import PollingObserver

        observer = PollingObserver(timeout=self._poll_every())
        observer.schedule(handler, self.root, recursive=True, event_filter=EVENT_TYPES)
        observer.start()
        self._observer = observer
        self.mode = "polling"
        self._request_resync("switched to polling")

    # -- routing (observer thread) ---------------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _rel(self, path: str) -> str | None:
        if path.startswith(self._prefix):
            return path[len(self._prefix):].rstrip("/")
        if path.rstrip("/") == self.root:
            return ""
        return None

    def _touch(self, kind: str, rel: str, now: float, quiet: float | None = None) -> None:
        key = (kind, rel)
        quiet = self.debounce if quiet is None else quiet
        pend = self._pending.get(key)
        if pend is None:
            self._pending[key] = _Pending(now, now, now + quiet)
            self._wake.notify()
        else:
            pend.last = now
            pend.due = max(pend.due, min(now + quiet, pend.first + max(self.max_delay, quiet)))

    def _stale(self, rel: str) -> None:
        if rel in self._skeleton and self._skeleton[rel] != -1:
            self._skeleton[rel] = -1
            self._dirty = True

    def _on_path(self, path: str, is_dir: bool, what: str) -> None:
        rel = self._rel(path)
        if rel is None:
            return
        if rel == STATE_DIR or rel.startswith(STATE_DIR + "/") or path.startswith(self.cache.dir + "/"):
            if rel.startswith(LEDGER_REL + "/") and rel.endswith(".json"):  # archive/prune/restore moved a model
                with self._wake:
                    # archive/prune write the entry, then move the folder: by the time this is looked at, the
                    # folder's own events have usually been applied, and the model just changes status
                    self._touch("ledger", "", time.monotonic(), quiet=LEDGER_QUIET)
            return
        now = time.monotonic()
        with self._wake:
            self.stats["events"] += 1
            if not rel:
                if what == "deleted":
                    self._touch("root", "", now)
                else:
                    self._stale("")
                return
            for target in (rel, _parent(rel)) if what != "modified" or not is_dir else (rel,):
                for dep in self._ext.get(target, ()):
                    self._touch("model", dep, now)
            a, child = rel, None
            while True:
                model = self._models.get(a)
                if model is not None and model.store is not None and model.store not in self._stores:
                    model = None  # a ledger row (archived/trashed): its folder is not there, whatever comes is new
                if model is not None or a in self._deferred:
                    if model is not None and model.store is not None:
                        self._touch("store", model.store, now)
                    else:
                        self._touch("model", a, now)
                    return
                if a in self._skeleton or not a:
                    break
                child, a = a, _parent(a)
            # ``a`` is the nearest known plain folder; ``child`` the topmost unknown one below it on the path
            parts = rel.split("/")
            base = parts[-1]
            store = base
            for suffix in STORE_SUFFIXES:
                if store.endswith(suffix):
                    store = store[: -len(suffix)]
            if not is_dir and store in self.store_files and (child is None or child == rel):
                self._touch("store", _join(_parent(rel), store), now)
                self._stale(a)
                return
            if any(p in SKIP_DIRS for p in parts[len(a.split("/")) if a else 0:]):
                return  # a tool folder (.git, .venv, ...): never searched
            if child is None:  # an event on the known plain folder itself
                if what == "modified":
                    self._stale(a)
                else:  # deleted, or created again: look at it afresh
                    self._stale(_parent(a))
                    self._touch("tree", a, now)
                return
            if what != "modified":
                self._stale(a)
            if child == rel and not is_dir:  # a file in a known plain folder: it may have become a model
                if a:
                    self._touch("claim", a, now)
                return
            self._touch("tree", child, now)

    def _request_resync(self, reason: str) -> None:
        with self._wake:
            self._resync_reason = reason
            self._wake.notify()

    # -- the worker ------------------------------------------------------------------------------------------------
    _busy = False

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                now = time.monotonic()
                due = min((p.due for p in self._pending.values()), default=None)
                if (due is None or due > now) and self._resync_reason is None:
                    self._wake.wait(timeout=min(1.0, max(0.0, due - now)) if due is not None else 1.0)
            if self._stopping.is_set():
                break
            try:
                if not self._check_root():
                    return
                self._round()
            except Exception as exc:  # noqa: BLE001 - keep watching; say what went wrong
                log.exception("mlrepo live: processing failed")
                self._warn(f"live index: {type(exc).__name__}: {exc}")

    def _check_root(self) -> bool:
        try:
            st = os.stat(self.root)
            same = (st.st_dev, st.st_ino) == self._root_id and os.path.isdir(self.root)
        except OSError:
            same = False
        if same:
            return True
        self.error = f"{self.root} disappeared; stopped watching"
        with self._wake:
            old = self._index
            self._pending.clear()
            self._dirty = False  # never write a cache into a root that is gone (it would create it again)
        assert old is not None
        events = [self._event("removed", row) for row in old.raw.select(
            "id", "path", "format", "repo", "line", "name", "status", "error").iter_rows(named=True)]
        raw = old.raw.clear()
        empty = Index(self.root, raw.drop([c for c in raw.columns if c.startswith(("metrics.", "params."))]), {},
                      old.stats)
        with self._wake:
            self._index = empty
            self._models, self._sorted, self._ext = {}, [], {}
        self._emit(ChangeBatch(events, empty, columns_changed=True, final=True))
        self._stopping.set()
        self._stop_observer()
        self._stopped.set()
        return False

    def _round(self, force: bool = False) -> None:
        with self._wake:
            now = time.monotonic()
            ready = [(k, p) for k, p in self._pending.items() if force or p.due <= now]
            for key, _pend in ready:
                del self._pending[key]
            resync, self._resync_reason = self._resync_reason, None
            self._busy = bool(ready or resync)
        try:
            if not ready and not resync:
                return
            work = _Work()
            if resync:
                self.stats["resyncs"] += 1
                self._tree("", _Pending(now - self.settle, now - self.settle, now), work, rescan=True)
            order = {"root": 0, "tree": 1, "store": 2, "claim": 3, "model": 4, "ledger": 5}
            ready.sort(key=lambda kp: (order[kp[0][0]], kp[0][1].count("/"), kp[0][1]))
            for (kind, rel), pend in ready:
                if kind == "root":  # checked before every round
                    continue
                if kind == "ledger":
                    work.ledger = True
                    continue
                if any(_under(rel, t) or rel == t for t in work.done_trees) and kind != "tree":
                    continue
                if kind == "tree":
                    self._tree(rel, pend, work)
                elif kind == "claim":
                    self._claim_key(rel, pend, work)
                elif kind == "model":
                    self._model(rel, pend, work)
                elif kind == "store":
                    self._store(rel, work)
            self._apply(work)
        finally:
            self._busy = False

    def _settled(self, pend: _Pending) -> bool:
        return time.monotonic() - pend.last >= self.settle

    def _defer(self, rel: str, pend: _Pending) -> None:
        """Metadata that does not parse while files still change: look again shortly, report nothing yet."""
        with self._wake:
            self._deferred.add(rel)
            known = self._pending.get(("model", rel))
            if known is None:
                self._pending[("model", rel)] = _Pending(pend.first, pend.last, time.monotonic() + self.retry)
            else:
                known.first = min(known.first, pend.first)
                known.last = max(known.last, pend.last)

    def _claim(self, rel: str, names: frozenset[str]) -> Reader | None:
        path = self._abs(rel)
        parent_names = _listdir(self._abs(_parent(rel))) or frozenset()
        place = Place(path, rel, names, parent_names)
        return next((r for r in self.readers if r.claim(place)), None)

    def _read(self, reader: Reader, rel: str, names: frozenset[str], pend: _Pending, work: _Work) -> None:
        found = scan_model(reader, Place(self._abs(rel), rel, names, frozenset()))
        self.stats["reads"] += 1
        if found.record.errors and not self._settled(pend):
            self._defer(rel, pend)
            return
        with self._lock:
            self._deferred.discard(rel)
        work.upserts[rel] = found
        work.removed.discard(rel)
        # a folder that is now a model is not searched: what was known inside it is no longer a model
        for inner in self._known_under(rel):
            work.removed.add(inner)
            work.upserts.pop(inner, None)
        with self._lock:
            for inner in [s for s in self._skeleton if _under(s, rel) or s == rel]:
                del self._skeleton[inner]

    def _remove_tree(self, rel: str, work: _Work) -> None:
        """``rel`` is gone: every model in and under it goes, and what the skeleton knew of it."""
        if rel in self._models:
            work.removed.add(rel)
            work.upserts.pop(rel, None)
        for inner in self._known_under(rel):
            work.removed.add(inner)
            work.upserts.pop(inner, None)
        with self._lock:
            self._deferred = {d for d in self._deferred if not (d == rel or _under(d, rel))}
            for inner in [s for s in self._skeleton if s == rel or _under(s, rel)]:
                del self._skeleton[inner]
            for store in [s for s in self._stores if _under(s, rel)]:
                for model in self._stores.pop(store)[1]:
                    work.removed.add(model)
            self._stale(_parent(rel))
            self._dirty = True

    def _known_under(self, rel: str) -> list[str]:
        with self._lock:
            if not rel:
                return list(self._sorted)
            lo = bisect.bisect_left(self._sorted, rel + "/")
            hi = bisect.bisect_left(self._sorted, rel + "0")  # "0" sorts right after "/"
            return self._sorted[lo:hi]

    def _model(self, rel: str, pend: _Pending, work: _Work) -> None:
        path = self._abs(rel)
        names = _listdir(path) if _is_dir(path) else None
        if names is None:
            with self._lock:
                self._deferred.discard(rel)
            self._remove_tree(rel, work)
            return
        known = self._models.get(rel)
        reader = self.by_format.get(known.format) if known is not None else None
        if reader is None or not reader.claim(Place(path, rel, names, frozenset())):
            reader = self._claim(rel, names)
        if reader is None:  # no longer a model (its metadata went): a plain folder, searched like any other
            with self._lock:
                self._deferred.discard(rel)
            if known is not None:
                work.removed.add(rel)
                work.upserts.pop(rel, None)
            self._tree(rel, pend, work, claimed=False)
            return
        self._read(reader, rel, names, pend, work)

    def _claim_key(self, rel: str, pend: _Pending, work: _Work) -> None:
        if rel in self._models:
            self._model(rel, pend, work)
            return
        path = self._abs(rel)
        names = _listdir(path) if _is_dir(path) else None
        if names is None:
            self._remove_tree(rel, work)
            return
        reader = self._claim(rel, names)
        if reader is not None:
            self._read(reader, rel, names, pend, work)

    def _previous_under(self, rel: str) -> Previous:
        """What is known under ``rel``, relative to it, as a Scanner's previous scan."""
        cut = len(rel) + 1 if rel else 0
        models = {}
        for inner in self._known_under(rel):
            model = self._models.get(inner)
            if model is not None and model.store is None:
                models[inner[cut:]] = (model.format, model.dirs, model.meta, model.stamp)
        with self._lock:
            skeleton = {s[cut:]: m for s, m in self._skeleton.items() if _under(s, rel)}
            stores = {s[cut:]: (stamp, [os.path.relpath(self._abs(m), self._abs(rel)) for m in ms])
                      for s, (stamp, ms) in self._stores.items() if _under(s, rel)}
        skeleton[""] = -1  # something changed here: list it again
        return Previous(models=models, skeleton=skeleton, stores=stores)

    def _tree(self, rel: str, pend: _Pending, work: _Work, claimed: bool | None = None,
              rescan: bool = False) -> None:
        """A folder that appeared, went, or came back: claim it, or search it with a Scanner rooted there."""
        path = self._abs(rel)
        if not _is_dir(path):
            self._remove_tree(rel, work)
            return
        names = _listdir(path)
        if names is None:
            return
        if rel and claimed is None:
            if rel in self._models or rel in self._deferred:
                self._model(rel, pend, work)
                return
            reader = self._claim(rel, names)
            if reader is not None:
                self._read(reader, rel, names, pend, work)
                return
        previous = self._previous_under(rel)
        with self._lock:
            store_paths = [self._abs(r) for r, m in self._models.items()
                           if m.store in self._stores and (not rel or _under(r, rel))] if self._stores else []
        scanner = Scanner(path, readers=self.readers, store_readers=self.store_readers, previous=previous,
                          extra_skip=[self.cache.dir, *store_paths])
        self.stats["subtree_scans"] += 1
        result = scanner.scan()
        seen: set[str] = set()
        for found in [*result.found]:
            inner = _join(rel, found.rel)
            seen.add(inner)
            if found.record.errors and not self._settled(pend) and not rescan:
                self._defer(inner, pend)
                continue
            work.upserts[inner] = Found(found.record, inner, found.dirs, found.stamp)
            work.removed.discard(inner)
            with self._lock:
                self._deferred.discard(inner)
        seen.update(_join(rel, r) for r in result.reused)
        for found in result.store_found:
            inner = os.path.normpath(os.path.join(rel, found.rel)) if rel else found.rel
            seen.add(inner)
            work.upserts[inner] = Found(found.record, inner, found.dirs, found.stamp)
        seen.update(os.path.normpath(os.path.join(rel, r)) if rel else r for r in result.store_reused)
        for inner in self._known_under(rel) + ([rel] if rel in self._models else []):
            if inner not in seen and inner not in self._deferred:
                work.removed.add(inner)
                work.upserts.pop(inner, None)
        with self._lock:
            for inner in [s for s in self._skeleton if s == rel or _under(s, rel)]:
                del self._skeleton[inner]
            for srel, mtime in result.skeleton.items():
                self._skeleton[_join(rel, srel)] = mtime
            for srel in [s for s in self._stores if _under(s, rel)]:
                del self._stores[srel]
            for srel, (stamp, models) in result.stores.items():
                full = _join(rel, srel)
                rels = [os.path.normpath(os.path.join(rel, m)) if rel else m for m in models]
                self._stores[full] = (stamp, rels)
                for m in rels:
                    work.store_of[m] = full
            if rel:
                self._stale(_parent(rel))
            self._dirty = True
        work.done_trees.append(rel)

    def _store(self, file_rel: str, work: _Work) -> None:
        path = self._abs(file_rel)
        with self._lock:
            known = self._stores.get(file_rel)
        if not os.path.isfile(path):
            if known is not None:
                with self._lock:
                    self._stores.pop(file_rel, None)
                    self._dirty = True
                for model in known[1]:
                    work.removed.add(model)
            return
        stamp = store_stamp(path)
        if known is not None and known[0] == stamp:
            return
        found, failed = store_models(self.store_files[os.path.basename(file_rel)], path, self.root, stamp)
        rels = []
        for item in found:
            work.upserts[item.rel] = item
            work.store_of[item.rel] = file_rel
            work.removed.discard(item.rel)
            rels.append(item.rel)
        for model in (known[1] if known else []):
            if model not in rels:
                work.removed.add(model)
        with self._lock:
            self._stores[file_rel] = (-1 if failed else stamp, rels)
            self._dirty = True

    # -- applying ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _event(kind: str, row: dict) -> ChangeEvent:
        return ChangeEvent(kind, row["id"], row["path"], row["format"], row.get("repo"), row.get("line"),
                           row.get("name"), row.get("status"), row.get("error"))

    def _with_ledger(self, index: Index) -> Index:
        """The rows of archived/trashed models taken afresh from mlrepo's ledger, as ``open_index`` merges them
        (a folder that is back wins its model's id, so they follow every change to the set of models)."""
        raw = index.raw.filter(pl.col("_store").is_null() | pl.col("_store").is_in(list(self._stores)))
        raw, info = with_archived(self.root, _drop_empty(raw), index.info)
        return Index(self.root, raw, {k: v for k, v in info.items() if k in raw.columns}, index.stats)

    def _apply(self, work: _Work) -> None:
        if not work.upserts and not work.removed and not work.ledger:
            return
        old = self._index
        assert old is not None
        store_of = {rel: work.store_of[rel] for rel in work.upserts if rel in work.store_of}
        new = apply_changes(old, list(work.upserts.values()), work.removed, store_of)
        if work.ledger or work.removed or any(rel not in self._models for rel in work.upserts):
            new = self._with_ledger(new)
            before_ledger = {r for r, m in self._models.items() if m.store is not None and m.store not in self._stores}
            after_ledger = set(new.raw.filter(pl.col("_store").is_not_null() & ~pl.col("_store").is_in(
                list(self._stores)))["_rel"].to_list())
            work.removed |= before_ledger  # so both sides of the diff below see the ledger rows
            work.removed |= after_ledger
        touched = sorted(set(work.upserts) | work.removed)
        clean = {rel: _clean_text(rel)[0] for rel in touched}  # the table keeps undecodable names escaped
        hidden = ("_stamp", "_dirs", "_meta", "_source_id", "_nested")

        def rows(index: Index) -> dict[str, dict]:
            frame = index.raw.filter(pl.col("_rel").is_in(list(clean.values())))
            out = {}
            for row in frame.iter_rows(named=True):
                out[row["_rel"]] = row
            return out

        before, after = rows(old), rows(new)
        events: list[ChangeEvent] = []
        for rel in touched:
            a, b = before.get(clean[rel]), after.get(clean[rel])
            if a is None and b is not None:
                events.append(self._event("added", b))
            elif a is not None and b is None:
                events.append(self._event("removed", a))
            elif a is not None and b is not None:
                same = ({k: v for k, v in a.items() if v is not None and k not in hidden}
                        == {k: v for k, v in b.items() if v is not None and k not in hidden})
                if not same:
                    events.append(self._event("updated", b))
        with self._wake:
            self._index = new
            for rel in touched:
                gone = self._models.pop(rel, None)
                if gone is not None:
                    self._link(rel, gone, add=False)
                    self._n_dirs -= len(gone.dirs)
                row = after.get(clean[rel])
                if row is not None:
                    model = _Model(row["format"], split_paths(row["_dirs"]), split_paths(row["_meta"]), row["_stamp"],
                                   row["_store"])
                    self._models[rel] = model
                    self._link(rel, model)
                    self._n_dirs += len(model.dirs)
            if len(touched) > 64:
                self._sorted = sorted(self._models)
            else:
                for rel in touched:
                    i = bisect.bisect_left(self._sorted, rel)
                    present = i < len(self._sorted) and self._sorted[i] == rel
                    if rel in self._models and not present:
                        self._sorted.insert(i, rel)
                    elif rel not in self._models and present:
                        del self._sorted[i]
            self._dirty = True
        if events:
            self.stats["batches"] += 1
            self._emit(ChangeBatch(events, new, columns_changed=new.df.columns != old.df.columns))

    def _emit(self, batch: ChangeBatch) -> None:
        if self.on_change is None:
            self.queue.put(batch)
            return
        try:
            self.on_change(batch)
        except Exception:  # noqa: BLE001 - a consumer's bug must not stop the watching
            log.exception("mlrepo live: on_change failed")

    # -- the cache ---------------------------------------------------------------------------------------------------
    def _save_loop(self) -> None:
        last_check = time.monotonic()
        behind_since: float | None = None
        while not self._stopping.wait(self.save_interval):
            # write when the worker is quiet (a save of a big table competes with it for the interpreter), but
            # never fall more than a few seconds behind during a long burst
            now = time.monotonic()
            if self._dirty and behind_since is None:
                behind_since = now
            with self._lock:
                busy = self._busy or any(p.due < now + self.save_interval for p in self._pending.values())
            if behind_since is not None and (not busy or now - behind_since > 5 * self.save_interval):
                self._save()
                behind_since = None
            if self.mode == "inotify" and time.monotonic() - last_check > 5:
                last_check = time.monotonic()
                observer = self._observer
                if observer is not None and self._watch_shortfall(observer):
                    self._switch_to_polling(f"inotify stopped following new folders under {self.root} "
                                            f"(fs.inotify.max_user_watches reached)")

    def _save(self, force: bool = False) -> bool:
        if not self.use_cache or self.error:
            return False
        with self._lock:
            if not self._dirty or self._index is None:
                return False
            raw, info = self._index.raw, dict(self._index.info)
            if self._stores or raw["_store"].null_count() != raw.height:  # ledger rows are merged, never cached
                raw = raw.filter(pl.col("_store").is_null() | pl.col("_store").is_in(list(self._stores)))
            skeleton = dict(self._skeleton)
            stores = {k: (v[0], list(v[1])) for k, v in self._stores.items()}
            self._dirty = False
        if not os.path.isdir(self.root):
            return False
        ok = self.cache.save(raw, skeleton, stores, info)
        if not ok:
            with self._lock:
                self._dirty = True
        else:
            self.stats["saves"] += 1
        return ok

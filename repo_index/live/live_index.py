"""``LiveIndex``: an ``Index`` kept true by watchdog, put together from the parts of this package.

Thread model
------------
* watchdog's observer thread calls ``Router.on_path`` (``watchers``): it only routes paths to keys.
* one worker thread (``mlrepo-live``) waits for due keys, has the ``Reconciler`` read and apply them, and calls
  ``on_change(batch)``; without a callback batches go to a queue read with ``get()`` from any thread.
* one saver thread writes the cache (``Cache.save``) at most once per ``save_interval`` and on ``stop()``, so the
  next ``mlrepo ls`` starts warm, and counts inotify's watches now and then. Folders whose listing changed are
  marked stale in the saved skeleton, so revalidation lists them again instead of trusting an mtime the live table
  may not have followed.

From a Textual app (this package never imports textual)::

    @work(thread=True, exclusive=True, group="live")
    def start_live(self) -> None:
        self.live = LiveIndex(root, on_change=lambda batch: self.post_message(IndexChanged(batch)),
                              on_warning=lambda msg: self.call_from_thread(self.notify, msg, severity="warning"))
        self.live.start(index=self.index)  # blocking; the index the app just opened, or None to open it here
    # on IndexChanged: swap in batch.index.df, keep the cursor by id; on unmount: self.live.stop()

Each ``ChangeBatch`` carries the events and the index after them (immutable), so the UI never reads the live
index while it changes. A save that changes nothing visible (same content rewritten) reports nothing.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable

import polars as pl
from mlrepo.repo_index.archived import LEDGER
from mlrepo.repo_index.cache import Cache
from mlrepo.repo_index.index import Index, RootError, open_index
from mlrepo.repo_index.live.events import ChangeBatch, ChangeEvent
from mlrepo.repo_index.live.modelmap import ModelMap
from mlrepo.repo_index.live.reconcile import Reconciler
from mlrepo.repo_index.live.relpaths import is_dir
from mlrepo.repo_index.live.routing import COOKIE_PREFIX, Change, Router
from mlrepo.repo_index.live.watchers import Mode, ObserverKind, Watcher, foreign_mount
from mlrepo.repo_index.pins import PINS
from mlrepo.repo_index.readers import (
    Reader,
    StoreReader,
    default_readers,
    default_store_readers,
)
from mlrepo.repo_index.state import STATE_DIR, state_dir

log = logging.getLogger("mlrepo.live")


class LiveIndex:
    """An ``Index`` kept true by watchdog. ``start()`` opens the index and starts watching; ``index`` is always the
    latest snapshot; every applied change goes to ``on_change(batch)`` (called on the live worker thread) or, without
    a callback, to a queue read with ``get()``. ``stop()`` (or leaving a ``with`` block) stops watching and writes
    the cache."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        on_change: Callable[[ChangeBatch], object] | None = None,  # what it returns is ignored
        on_warning: Callable[[str], None] | None = None,
        observer: ObserverKind = "auto",
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
        self.on_change = on_change
        self.on_warning = on_warning
        self.max_delay = max_delay
        self.save_interval, self.use_cache = save_interval, use_cache
        self.readers = list(readers) if readers is not None else default_readers()
        store_readers = list(store_readers) if store_readers is not None else default_store_readers()
        self.cache = Cache(self.root)

        self.warnings: list[str] = []
        self.error: str | None = None  # why the live index stopped by itself
        self.stats = {"events": 0, "batches": 0, "reads": 0, "subtree_scans": 0, "saves": 0, "resyncs": 0}
        self.queue: queue.Queue[ChangeBatch] = queue.Queue()

        self._known = ModelMap()
        self._router = Router(self.root, self._known, {n for r in store_readers for n in r.store_files},
                              self.cache.dir, debounce, max_delay, self.stats)
        self._reconciler = Reconciler(self.root, self._known, self._router, self.readers, store_readers,
                                      self.cache.dir, settle, retry, self.stats)
        self._watcher = Watcher(self.root, observer, self._known, poll_interval, self._router.on_path,
                                self._router.request_resync, self._warn)
        self._root_id: tuple[int, int] | None = None
        self._cookies = 0  # sync cookies written
        self._gap_closed = False  # a resync has covered the changes made between the first scan and the watch
        self._failed_rounds = 0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- public API ----------------------------------------------------------------------------------------------
    @property
    def index(self) -> Index:
        """The latest snapshot (replaced, never mutated: safe to hold while the live index moves on)."""
        if self._known.index is None:
            raise RuntimeError("LiveIndex.start() first")
        return self._known.index

    @property
    def mode(self) -> Mode | None:
        """What watches: "inotify" (or the platform's native observer), "polling", "off"; None before ``start``."""
        return self._watcher.mode

    @property
    def running(self) -> bool:
        return self._known.index is not None and not self._stopped.is_set()

    @property
    def _n_dirs(self) -> int:
        """Folders in the tree (the benchmark reports it; a test sets it to size the polling interval)."""
        return self._known.n_dirs

    @_n_dirs.setter
    def _n_dirs(self, value: int) -> None:
        self._known.n_dirs = value

    def _poll_every(self) -> float:
        return self._watcher.poll_every()

    def start(self, index: Index | None = None) -> Index:
        """Open the index (warm from the cache when it can) and start watching. Blocking: call it from a worker
        thread in a UI. Raises ``RootError`` when the root is not a folder.

        ``index``: one the caller has just opened with ``open_index`` on the same root, to skip opening it again
        (changes made between that scan and this call are only seen at the next ``resync()``)."""
        if self._known.index is not None:
            return self._known.index
        if not os.path.isdir(self.root):
            raise RootError(f"{self.root}: not a folder" if os.path.exists(self.root) else
                            f"{self.root}: no such folder")
        st = os.stat(self.root)
        self._root_id = (st.st_dev, st.st_ino)
        # watchdog warns (stderr) when a folder it already watches is reported again during a ``cp -r``: benign
        warnings.filterwarnings("ignore", message=r"Callback with id .* already exists", category=RuntimeWarning,
                                module=r"watchdog\.")
        if index is None or os.path.abspath(index.root) != self.root or not index.stats.skeleton:
            index = open_index(self.root, use_cache=self.use_cache)
        self._known.load(index)
        # the folder count decides between inotify and polling, so the watch starts after the scan: a change made
        # in between is seen by the next ``resync`` (or the next ``mlrepo ls``), not live
        self._watcher.start()
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
        with self._router.wake:
            self._router.wake.notify_all()
        self._watcher.close()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join(timeout)
        if current not in self._threads:
            self._save()
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

    def notify(self, path: str, is_directory: bool | None = None, what: Change = "modified") -> None:
        """Tell the live index a path changed (what a file-system event does): for callers that know better than
        the observer, e.g. after writing a model themselves, and for observers that cannot see (``off``)."""
        if is_directory is None:
            is_directory = is_dir(path)
        self._router.on_path(os.path.abspath(path), is_directory, what)

    def flush(self, timeout: float = 10.0) -> bool:
        """Process everything pending now, without waiting for quiet (held-back half-written models stay held
        back); True when nothing is pending any more. Runs on the caller's thread when the worker is not running."""
        deadline = time.monotonic() + timeout
        self._router.hurry()
        if not self._threads or not self._threads[0].is_alive():
            self._round(force=True)
        while time.monotonic() < deadline:
            if not self._router.due_now():
                return True
            time.sleep(0.005)
        return False

    def sync(self, timeout: float = 10.0, cancel: threading.Event | None = None) -> Index | None:
        """The index with every change made on the disk before this call applied, or None when that cannot be
        promised (the caller then reads the disk itself).

        As watchman does: a cookie file is written into the state folder (``<root>/.mlrepo/``) and its event awaited.
        inotify queues events in the order the changes were made, so once the cookie's event is routed, every earlier
        change is a pending key (or a resync, after a queue overflow). Those keys are applied at once, without waiting
        for quiet, and metadata caught half-written is reported as it is, as a fresh read would. The first sync also
        revalidates the whole tree, for the changes made between the first scan and the start of the watch.

        Pins and the ledger of archived/trashed models also depend on files inotify does not report here (the
        user's trash, an archive folder elsewhere): when there are any, they are merged afresh, as a fresh read does.

        Only inotify keeps that order, and only for the folders it watches on local file systems: polling, a stopped
        index, a folder left unwatched (the watch limit), a network or FUSE mount inside the tree, a failed round, a
        root whose state folder is outside it (an MLflow file store) or a cookie that cannot be written give None;
        so does ``cancel`` being set."""
        deadline = time.monotonic() + timeout
        if not self.running or self.error or self.mode != "inotify" or foreign_mount(self.root) is not None:
            return None
        failed = self._failed_rounds
        if not self._gap_closed:
            self._router.request_resync("the first sync")
            self._gap_closed = True
        state = os.path.join(self.root, STATE_DIR)
        if os.path.exists(os.path.join(state, PINS)) or _has_entries(os.path.join(state, LEDGER)):
            self._router.touch_ledger()
        mark = self._cookie(deadline, cancel)
        if mark is None:
            return None
        self._reconciler.settled_before = max(self._reconciler.settled_before, mark)

        def give_up() -> bool:
            return self._stopping.is_set() or (cancel is not None and cancel.is_set())

        if not self._router.drain(mark, deadline, give_up):
            return None
        # the folders this sync found were watched (or refused) before the cookie's event was read
        if self.mode != "inotify" or self.error or failed != self._failed_rounds or not self._watcher.all_watched():
            return None
        return self.index

    def _cookie(self, deadline: float, cancel: threading.Event | None) -> float | None:
        """Write a cookie into ``<root>/.mlrepo/`` (through a descriptor of that very folder: never a symlink's
        target) and wait for its event; the time it was seen, or None."""
        state = os.path.join(self.root, STATE_DIR)
        if state_dir(self.root) != state:
            return None
        try:
            folder = os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        self._cookies += 1
        name = f"{COOKIE_PREFIX}{os.getpid()}-{self._cookies}"
        seen = threading.Event()
        with self._router.wake:
            self._router.cookies[name] = seen
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=folder))
            try:
                while not seen.wait(0.1):
                    if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
                        return None
                return time.monotonic()
            finally:
                os.unlink(name, dir_fd=folder)
        except OSError:
            return None
        finally:
            os.close(folder)
            with self._router.wake:
                self._router.cookies.pop(name, None)

    def resync(self, reason: str = "asked") -> None:
        """Revalidate the whole tree against the disk (stat calls for known models, reads for changed ones), as
        ``open_index`` does with a warm cache. Only for lost events (queue overflow, observer switch)."""
        self._router.request_resync(reason)

    # -- the worker ------------------------------------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self.on_warning is None:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return
        try:
            self.on_warning(message)
        except Exception:  # noqa: BLE001
            log.exception("mlrepo live: on_warning failed")

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._router.wait()
            if self._stopping.is_set():
                break
            try:
                if not self._check_root():
                    return
                self._round()
            except Exception as exc:  # noqa: BLE001 - keep watching; say what went wrong
                self._failed_rounds += 1  # the keys it took are lost: no sync may promise freshness over them
                log.exception("mlrepo live: processing failed")
                self._warn(f"live index: {type(exc).__name__}: {exc}")

    def _round(self, force: bool = False) -> None:
        ready, resync = self._router.take(force)
        try:
            if not ready and not resync:
                return
            batch = self._reconciler.apply(self._reconciler.process(ready, resync))
            if batch is not None:
                self.stats["batches"] += 1
                self._emit(batch)
        finally:
            self._router.done()

    def _check_root(self) -> bool:
        """Is the root still the folder we started on? When not: report every model removed, and stop."""
        try:
            st = os.stat(self.root)
            same = (st.st_dev, st.st_ino) == self._root_id and os.path.isdir(self.root)
        except OSError:
            same = False
        if same:
            return True
        self.error = f"{self.root} disappeared; stopped watching"
        with self._router.wake:
            old = self._known.index
            self._router.pending.clear()
            self._known.dirty = False  # never write a cache into a root that is gone (it would create it again)
        assert old is not None
        events = [ChangeEvent.of_row("removed", row) for row in old.raw.select(
            "id", "path", "format", "repo", "line", "name", "status", "error").iter_rows(named=True)]
        raw = old.raw.clear()
        empty = Index(self.root, raw.drop([c for c in raw.columns if c.startswith(("metrics.", "params."))]), {},
                      old.stats)
        self._known.clear(empty)
        self._emit(ChangeBatch(events, empty, columns_changed=True, final=True))
        self._stopping.set()
        self._watcher.stop()
        self._stopped.set()
        return False

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
            if self._known.dirty and behind_since is None:
                behind_since = now
            busy = self._router.busy_before(now + self.save_interval)
            if behind_since is not None and (not busy or now - behind_since > 5 * self.save_interval):
                self._save()
                behind_since = None
            if self.mode == "inotify" and time.monotonic() - last_check > self._watcher.check_every:
                last_check = time.monotonic()
                self._watcher.check()

    def _save(self) -> bool:
        known = self._known
        if not self.use_cache or self.error:
            return False
        with known.lock:
            if not known.dirty or known.index is None:
                return False
            raw, info = known.index.raw, dict(known.index.info)
            if known.stores or raw["_store"].null_count() != raw.height:  # ledger rows are merged, never cached
                raw = raw.filter(pl.col("_store").is_null() | pl.col("_store").is_in(list(known.stores)))
            skeleton = dict(known.skeleton)
            stores = {k: (v[0], list(v[1])) for k, v in known.stores.items()}
            known.dirty = False
        if not os.path.isdir(self.root):
            return False
        ok = self.cache.save(raw, skeleton, stores, info)
        if not ok:
            with known.lock:
                known.dirty = True
        else:
            self.stats["saves"] += 1
        return ok


def _has_entries(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is not None
    except OSError:
        return False

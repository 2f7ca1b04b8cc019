"""From a file-system event to a *key*, held until it has been quiet (runs on watchdog's observer thread: a few
dict look-ups, never a disk read).

A key is the known model folder a path lies in (``model``), a new folder nobody has looked at yet (``tree``: the
topmost unknown folder on the path, so a ``cp -r`` of a whole line is one key), a known plain folder in which a file
changed and which may now be a model (``claim``), a store file such as ``mlflow.db`` (``store``), mlrepo's ledger
of archived/trashed models (``ledger``), or the root itself (``root``). Readers whose metadata lives outside the
model folder (MLflow's ``../meta.yaml``, the HF Trainer's ``..``) are followed through the model map's ``ext``:
a change there marks every model that depends on it.

A key is due once it has been quiet for ``debounce`` seconds, or ``max_delay`` after its first event when writes
never stop.

A *cookie* (a file the live index writes into its state folder to sync, as watchman does) is not a key: its event
says that every event the kernel queued before it has been routed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from mlrepo.repo_index.archived import LEDGER
from mlrepo.repo_index.cache import STATE_DIR
from mlrepo.repo_index.live.modelmap import ModelMap
from mlrepo.repo_index.live.relpaths import join, parent
from mlrepo.repo_index.scanner import SKIP_DIRS

KeyKind = Literal["root", "tree", "store", "claim", "model", "ledger"]
Key = tuple[KeyKind, str]
Change = Literal["created", "deleted", "modified"]

#: mlrepo's ledger of archived/trashed models, relative to the root (its state folder: one place to change)
LEDGER_REL = f"{STATE_DIR}/{LEDGER}"
LEDGER_QUIET = 1.0  # seconds
#: the names of sync cookies in the state folder (``LiveIndex.sync``)
COOKIE_PREFIX = ".sync-cookie-"
STORE_SUFFIXES = ("-wal", "-journal", "-shm")


@dataclass(slots=True)
class Pending:
    first: float  # first event
    last: float  # latest event
    due: float  # when to look


class Router:
    """Routes paths to keys and holds the keys until due. ``wake`` (on the model map's lock) wakes the worker."""

    def __init__(self, root: str, known: ModelMap, store_files: Collection[str], cache_dir: str,
                 debounce: float, max_delay: float, stats: dict[str, int]) -> None:
        self.root = root
        self._prefix = root.rstrip("/") + "/"
        self.known = known
        self.store_files = store_files
        self.cache_dir = cache_dir
        self.debounce, self.max_delay = debounce, max_delay
        self.stats = stats
        self.wake = threading.Condition(known.lock)
        self.pending: dict[Key, Pending] = {}
        self.resync_reason: str | None = None
        self.busy = False  # the worker is processing keys it took
        self.cookies: dict[str, threading.Event] = {}  # sync cookies written and not seen yet, by name

    def rel(self, path: str) -> str | None:
        if path.startswith(self._prefix):
            return path[len(self._prefix):].rstrip("/")
        if path.rstrip("/") == self.root:
            return ""
        return None

    def _touch(self, kind: KeyKind, rel: str, now: float, quiet: float | None = None) -> None:
        key = (kind, rel)
        quiet = self.debounce if quiet is None else quiet
        pend = self.pending.get(key)
        if pend is None:
            self.pending[key] = Pending(now, now, now + quiet)
            self.wake.notify()
        else:
            pend.last = now
            pend.due = max(pend.due, min(now + quiet, pend.first + max(self.max_delay, quiet)))

    def on_path(self, path: str, is_dir: bool, what: Change) -> None:
        rel = self.rel(path)
        if rel is None:
            return
        known = self.known
        if rel == STATE_DIR or rel.startswith(STATE_DIR + "/") or path.startswith(self.cache_dir + "/"):
            seen = self.cookies.get(rel[len(STATE_DIR) + 1:]) if rel.startswith(STATE_DIR + "/") else None
            if seen is not None:
                seen.set()
                return
            if rel.startswith(LEDGER_REL + "/") and rel.endswith(".json"):  # archive/prune/restore moved a model
                with self.wake:
                    # archive/prune write the entry, then move the folder: by the time this is looked at, the
                    # folder's own events have usually been applied, and the model just changes status
                    self._touch("ledger", "", time.monotonic(), quiet=LEDGER_QUIET)
            return
        now = time.monotonic()
        with self.wake:
            self.stats["events"] += 1
            if not rel:
                if what == "deleted":
                    self._touch("root", "", now)
                else:
                    known.stale("")
                return
            for target in (rel, parent(rel)) if what != "modified" or not is_dir else (rel,):
                for dep in known.ext.get(target, ()):
                    self._touch("model", dep, now)
            a, child = rel, None
            while True:
                model = known.models.get(a)
                if model is not None and known.is_ledger_row(model):
                    model = None  # its folder is not there: whatever comes is new
                if model is not None or a in known.deferred:
                    if model is not None and model.store is not None:
                        self._touch("store", model.store, now)
                    else:
                        self._touch("model", a, now)
                    return
                if a in known.skeleton or not a:
                    break
                child, a = a, parent(a)
            # ``a`` is the nearest known plain folder; ``child`` the topmost unknown one below it on the path
            parts = rel.split("/")
            store = parts[-1]
            for suffix in STORE_SUFFIXES:
                if store.endswith(suffix):
                    store = store[: -len(suffix)]
            if not is_dir and store in self.store_files and (child is None or child == rel):
                self._touch("store", join(parent(rel), store), now)
                known.stale(a)
                return
            if any(p in SKIP_DIRS for p in parts[len(a.split("/")) if a else 0:]):
                return  # a tool folder (.git, .venv, ...): never searched
            if child is None:  # an event on the known plain folder itself
                if what == "modified":
                    known.stale(a)
                else:  # deleted, or created again: look at it afresh
                    known.stale(parent(a))
                    self._touch("tree", a, now)
                return
            if what != "modified":
                known.stale(a)
            if child == rel and not is_dir:  # a file in a known plain folder: it may have become a model
                if a:
                    self._touch("claim", a, now)
                return
            self._touch("tree", child, now)

    def request_resync(self, reason: str) -> None:
        with self.wake:
            self.resync_reason = reason
            self.wake.notify()

    def defer(self, rel: str, pend: Pending, retry: float) -> None:
        """Metadata that does not parse while files still change: look again in ``retry`` seconds."""
        with self.wake:
            self.known.deferred.add(rel)
            known = self.pending.get(("model", rel))
            if known is None:
                self.pending[("model", rel)] = Pending(pend.first, pend.last, time.monotonic() + retry)
            else:
                known.first = min(known.first, pend.first)
                known.last = max(known.last, pend.last)

    def wait(self) -> None:
        """Until a key is due or a resync is asked (at most a second: the caller checks the root meanwhile)."""
        with self.wake:
            now = time.monotonic()
            due = min((p.due for p in self.pending.values()), default=None)
            if (due is None or due > now) and self.resync_reason is None:
                self.wake.wait(timeout=min(1.0, max(0.0, due - now)) if due is not None else 1.0)

    def take(self, force: bool = False) -> tuple[list[tuple[Key, Pending]], str | None]:
        """The keys that are due (all of them with ``force``) and the resync asked for, if any; sets ``busy``."""
        with self.wake:
            now = time.monotonic()
            ready = [(k, p) for k, p in self.pending.items() if force or p.due <= now]
            for key, _pend in ready:
                del self.pending[key]
            resync, self.resync_reason = self.resync_reason, None
            self.busy = bool(ready or resync)
        return ready, resync

    def hurry(self) -> None:
        """Make every pending key due now."""
        with self.wake:
            for pend in self.pending.values():
                pend.due = min(pend.due, time.monotonic())
            self.wake.notify_all()

    def touch_ledger(self) -> None:
        """Merge the ledger and the pins afresh in the next round (``sync``: what they name may have changed where
        no event reaches the live index)."""
        with self.wake:
            self._touch("ledger", "", time.monotonic(), quiet=0.0)

    def done(self) -> None:
        """The worker finished the keys it took (``sync`` waits for this)."""
        with self.wake:
            self.busy = False
            self.wake.notify_all()

    def drain(self, mark: float, until: float, give_up: Callable[[], bool]) -> bool:
        """Make every key whose first event came before ``mark`` due now and wait until the worker applied them, and
        every resync asked for; False at ``until`` or when ``give_up()``. Checked and waited under one lock, so the
        worker's ``done`` is never missed."""
        with self.wake:
            while (self.busy or self.resync_reason is not None
                   or any(p.first <= mark for p in self.pending.values())):
                now = time.monotonic()
                if now > until or give_up():
                    return False
                for pend in self.pending.values():
                    pend.due = min(pend.due, now)
                self.wake.notify_all()
                self.wake.wait(0.05)
            return True

    def busy_before(self, when: float) -> bool:
        """Is the worker busy, or will a key be due before ``when``?"""
        with self.wake:
            return self.busy or any(p.due < when for p in self.pending.values())

    def due_now(self) -> bool:
        """Is the worker busy, or is a key due?"""
        with self.wake:
            return any(p.due <= time.monotonic() for p in self.pending.values()) or self.busy

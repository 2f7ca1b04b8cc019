"""The watchdog observer that feeds the live index: inotify (or the platform's native observer) where it can follow
the tree, watchdog's ``PollingObserver`` where it cannot: a network file system whose remote changes inotify never
sees, more folders than ``fs.inotify.max_user_watches`` allows, an inotify error, or watches that went missing
(watchdog skips a subfolder it cannot watch without a word, so the watches held are counted from the kernel's own
``/proc/self/fdinfo`` listing). Either way the observer thread only calls ``on_path``."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from collections.abc import Callable
from typing import Literal

from mlrepo.repo_index.live.modelmap import ModelMap
from mlrepo.repo_index.live.routing import Change
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
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

log = logging.getLogger("mlrepo.live")

EVENT_TYPES = [FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent, FileMovedEvent, DirMovedEvent,
               FileModifiedEvent, DirModifiedEvent, FileClosedEvent]
#: File systems whose remote changes inotify does not report (or not reliably): watched by polling instead.
NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs", "sshfs", "ceph", "fuse.ceph",
    "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "beegfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse",
    "fuse.juicefs", "davfs", "fuse.davfs2",
})
#: share of ``fs.inotify.max_user_watches`` one tree may take before we poll instead of starving other programs
WATCH_SHARE = 0.9
#: A polling snapshot costs ~27 us a folder (watchdog's DirectorySnapshot, 40k folders in 1.07 s here): polling no
#: more often than every folders / 8000 seconds keeps it under a fifth of a core (27 s at 100k models).
POLL_FOLDERS_PER_SECOND = 8000
#: how often, while inotify runs, the watches are counted again if the tree grew (new folders may be past the limit)
WATCH_CHECK_SECONDS = 5.0

OnPath = Callable[[str, bool, Change], None]
ObserverKind = Literal["auto", "polling", "native", "off"]  # "auto": inotify, polling where it cannot follow
Mode = Literal["inotify", "native", "polling", "off"]  # "native": the platform's observer where it is not inotify


def _mounts() -> list[tuple[str, str]] | None:
    """Every mount point with its file system type (Linux: /proc/self/mountinfo), or None where it cannot be read."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    mounts = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            mounts.append((fields[4].replace("\\040", " "), right.split()[0]))
    return mounts


def _type_of(real: str, mounts: list[tuple[str, str]]) -> str | None:
    """The type of the innermost mount that holds the real path ``real``."""
    best, fstype = -1, None
    for mount, kind in mounts:
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) > best:
            best, fstype = len(mount), kind
    return fstype


def filesystem_type(path: str) -> str | None:
    """The type of the file system ``path`` lives on (Linux: from /proc/self/mountinfo), or None."""
    mounts = _mounts()
    return None if mounts is None else _type_of(os.path.realpath(path), mounts)


#: File systems on which inotify sees every change to the tree (a sync's promise rests on it; see ``foreign_mount``)
LOCAL_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "jfs", "reiserfs", "bcachefs",
                      "overlay", "ramfs", "nilfs2"})


def foreign_mount(root: str) -> str | None:
    """A mount at or under ``root`` whose changes inotify may not see (anything but ``LOCAL_FS``: NFS, sshfs, a
    FUSE or VM share mounted inside the tree), as ``path (type)``; None when all of it is local."""
    mounts = _mounts()
    if mounts is None:
        return root
    real = os.path.realpath(root)
    own = _type_of(real, mounts)
    if own not in LOCAL_FS:
        return f"{real} ({own or 'unknown'})"
    inside = real.rstrip("/") + "/"
    return next((f"{mount} ({kind})" for mount, kind in mounts if mount.startswith(inside) and kind not in LOCAL_FS),
                None)


def max_user_watches() -> int | None:
    try:
        with open("/proc/sys/fs/inotify/max_user_watches", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def inotify_watched_inodes() -> set[int] | None:
    """The inodes this process holds an inotify watch on, from the kernel's listing of each inotify descriptor
    (proc(5): one ``inotify wd:`` line a watch in ``/proc/self/fdinfo``); None where that cannot be read. Only the
    inode is kept: the ``sdev`` there is the superblock's, which is not ``st_dev`` on btrfs subvolumes."""
    inodes: set[int] = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith("inotify wd:"):
                        ino = next((f[4:] for f in line.split() if f.startswith("ino:")), None)
                        if ino is not None:
                            inodes.add(int(ino, 16))
        except (OSError, ValueError):
            continue  # closed meanwhile
    return inodes or None


class _OverflowWatch(logging.Handler):
    """watchdog logs an inotify queue overflow (events were lost): ask for a resync."""

    def __init__(self, on_overflow: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow("the kernel dropped file-system events (inotify queue overflow)")


class _Handler(FileSystemEventHandler):
    """watchdog calls ``dispatch`` on its observer thread; it only routes the paths."""

    def __init__(self, on_path: OnPath) -> None:
        super().__init__()
        self.on_path = on_path

    def dispatch(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        try:
            if kind == "moved":
                self.on_path(src, event.is_directory, "deleted")
                if event.dest_path:
                    self.on_path(os.fsdecode(event.dest_path), event.is_directory, "created")
            elif kind in ("created", "deleted", "modified"):
                self.on_path(src, event.is_directory, kind)  # type: ignore[arg-type]
            elif kind == "closed":
                self.on_path(src, event.is_directory, "modified")
        except Exception:  # noqa: BLE001 - never let one odd path stop the observer
            log.exception("mlrepo live: could not route %r", src)


class Watcher:
    """Chooses, starts, checks and stops the observer of ``kind``; ``mode`` says which one runs."""

    def __init__(self, root: str, kind: ObserverKind, known: ModelMap, poll_interval: float, on_path: OnPath,
                 request_resync: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.root, self.kind, self.known, self.poll_interval = root, kind, known, poll_interval
        self.on_path, self.request_resync, self.warn = on_path, request_resync, warn
        self.mode: Mode | None = None
        self.check_every = WATCH_CHECK_SECONDS
        self._checked_dirs = 0  # the folder count when the watches were last counted
        self._observer: BaseObserver | None = None
        self._overflow = _OverflowWatch(request_resync)
        self._checking = threading.Lock()  # the saver thread and ``LiveIndex.sync`` both check
        self._all_watched_at = -1  # ``known.grown`` when every folder was last found watched

    def poll_every(self) -> float:
        """Seconds between polls: ``poll_interval``, or longer for a tree whose snapshot takes long."""
        return max(self.poll_interval, round(self.known.n_dirs / POLL_FOLDERS_PER_SECOND, 1))

    def _polling_reason(self) -> str | None:
        fstype = filesystem_type(self.root)
        if fstype in NETWORK_FS:
            return (f"{self.root} is on a network file system ({fstype}): inotify does not see changes made "
                    f"from other machines")
        limit = max_user_watches()
        n_dirs = self.known.n_dirs
        if limit is not None and n_dirs > limit * WATCH_SHARE:
            return (f"{n_dirs} folders to watch under {self.root}, more than inotify allows "
                    f"(fs.inotify.max_user_watches = {limit}; raise it with "
                    f"`sysctl fs.inotify.max_user_watches={max(2 * n_dirs, 524288)}`)")
        return None

    def start(self) -> None:
        self._start()
        logging.getLogger("watchdog").addHandler(self._overflow)

    def _start(self) -> None:
        kind = self.kind
        if kind == "off":
            self.mode = "off"
            return
        if kind == "auto":
            reason = self._polling_reason()
            if reason:
                self.warn(f"{reason}; polling every {self.poll_every():g} s instead (slower)")
                kind = "polling"
        if kind in ("auto", "native"):
            from watchdog.observers import Observer

            observer = Observer()
            try:
                observer.schedule(_Handler(self.on_path), self.root, recursive=True, event_filter=EVENT_TYPES)
                observer.start()
            except OSError as exc:
                self._stop_one(observer)
                why = {errno.ENOSPC: "too many folders for fs.inotify.max_user_watches",
                       errno.EMFILE: "too many inotify instances (fs.inotify.max_user_instances)"}.get(
                    exc.errno or 0, exc.strerror or str(exc))
                self.warn(f"cannot watch {self.root} with inotify ({why}); polling every "
                          f"{self.poll_every():g} s instead (slower)")
            else:
                is_inotify = type(observer).__name__.startswith("Inotify")
                self._checked_dirs = self.known.n_dirs
                shortfall = self.unwatched() if is_inotify else 0
                if not shortfall:
                    self._observer = observer
                    self.mode = "inotify" if is_inotify else "native"
                    return
                self._stop_one(observer)
                self.warn(f"inotify could not watch {shortfall} of the folders under {self.root} "
                          f"(fs.inotify.max_user_watches reached); polling every {self.poll_every():g} s "
                          f"instead (slower)")
        self._start_polling()

    def _start_polling(self) -> None:
        from watchdog.observers.polling import PollingObserver

        observer = PollingObserver(timeout=self.poll_every())
        observer.schedule(_Handler(self.on_path), self.root, recursive=True, event_filter=EVENT_TYPES)
        observer.start()
        self._observer = observer
        self.mode = "polling"

    def unwatched(self, exact: bool = False) -> int:
        """Folders inotify should watch but does not (watchdog skips those it cannot add silently): 0 when it
        cannot be told, or when only a few are missing (a folder may come or go while we count); ``exact`` counts
        every one, and -1 when it cannot be told."""
        watched = inotify_watched_inodes()
        if watched is None:
            return -1 if exact else 0
        with self.known.lock:
            expected = self.known.n_dirs
        if len(watched) >= expected and not exact:
            return 0
        with self.known.lock:  # some known folders may be gone: count those that exist
            rels = self.known.folders()
        existing = missing = 0
        for rel in rels:
            try:
                st = os.lstat(os.path.join(self.root, rel) if rel else self.root)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                existing += 1
                missing += st.st_ino not in watched
        return missing if exact or missing > max(8, existing // 100) else 0

    def all_watched(self) -> bool:
        """Is every known folder watched (no slack: a promise of freshness rests on it)? Counted again only when
        folders came since the last count that found them all (~8 us a watch)."""
        with self.known.lock:
            grown = self.known.grown
        if grown == self._all_watched_at:
            return True
        if self.unwatched(exact=True) != 0:
            return False
        self._all_watched_at = grown
        return True

    def check(self) -> None:
        """While inotify runs: switch to polling when new folders could not be watched. The kernel writes its
        listing at ~8 us a watch (80 ms at 10k folders), so it is read only when the tree grew since last time."""
        with self._checking:
            with self.known.lock:
                n_dirs = self.known.n_dirs
            grew, self._checked_dirs = n_dirs > self._checked_dirs, n_dirs
            if grew and self.mode == "inotify" and self._observer is not None and self.unwatched():
                self.switch_to_polling(f"inotify stopped following new folders under {self.root} "
                                       f"(fs.inotify.max_user_watches reached)")

    def switch_to_polling(self, why: str) -> None:
        self.stop()
        self.warn(f"{why}; polling every {self.poll_every():g} s instead (slower)")
        self._start_polling()
        self.request_resync("switched to polling")

    @staticmethod
    def _stop_one(observer: BaseObserver) -> None:
        try:
            observer.stop()
            if observer.is_alive():
                observer.join(5)
        except Exception:  # noqa: BLE001
            log.exception("mlrepo live: stopping the observer failed")

    def stop(self) -> None:
        """Stop the observer (the live index may still be asked to notice changes itself)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            self._stop_one(observer)

    def close(self) -> None:
        self.stop()
        logging.getLogger("watchdog").removeHandler(self._overflow)


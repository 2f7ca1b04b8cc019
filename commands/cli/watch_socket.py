"""Asking a running ``mlrepo watch`` instead of reading the disk, as git asks watchman through its fsmonitor hook:
``ls`` and ``best`` of a root that a watch keeps live are answered in milliseconds, with no revalidation and no
polars import in the asking process.

Nothing here may make an answer stale or someone else's:

* the socket lives in a folder only this user can enter (``$XDG_RUNTIME_DIR/mlrepo/``, else ``/tmp/mlrepo-<uid>/``),
  checked before each use (a real folder, ours, mode 0700), and each side checks the other's uid (``SO_PEERCRED``);
* the watch answers only for the very root (the same path, device and inode), from the same mlrepo (version and
  install), and only after ``LiveIndex.sync``: every change made before the question is in the answer;
* when any of that cannot be promised, or anything fails, the watch declines and the command reads the disk itself,
  exactly as it does when no watch runs. ``MLREPO_WATCH=off`` never asks; ``require`` fails instead of reading.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from mlrepo import __version__
from mlrepo.errors import FailedError, UsageError

WATCH_ENV = "MLREPO_WATCH"
PRIVATE = "$XDG_RUNTIME_DIR/mlrepo or /tmp/mlrepo-<uid>"
Policy = Literal["auto", "off", "require"]
Command = Literal["ls", "best"]
MAX_REQUEST = 64 * 1024
#: how long an asking command waits for the answer (a sync after a large copy can take seconds)
ANSWER_TIMEOUT = 30.0
IO_TIMEOUT = 5.0  # the watch's side: a client that neither asks nor reads is dropped after this
_PEERCRED = struct.Struct("3i")  # pid, uid, gid
FAILED = "the command failed"  # the watch's word for a command that raised: its error is the disk path's to give


@dataclass(frozen=True, slots=True)
class Answer:
    """What the command would have written: its stdout, and its notes for stderr (``-q`` applies on the asking
    side)."""

    stdout: bytes
    notes: tuple[str, ...]


def policy() -> Policy:
    value = os.environ.get(WATCH_ENV, "auto").strip().lower() or "auto"
    if value not in ("auto", "off", "require"):
        raise UsageError(f"{WATCH_ENV} must be auto, off or require, not {value!r}")
    return value  # type: ignore[return-value]


def _identity() -> str:
    """Which mlrepo this is: a watch from another install or version never answers."""
    return f"{__version__} {os.path.dirname(os.path.abspath(__file__))}"


def socket_path(root: str, create: bool = False) -> str | None:
    """The socket of ``root``'s watch, in this user's private folder; None where there can be none (no such folder
    that is safely ours, no ``SO_PEERCRED``, a path too long for a Unix socket)."""
    if not hasattr(socket, "SO_PEERCRED") or not hasattr(socket, "AF_UNIX"):
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    folder = os.path.join(runtime, "mlrepo") if os.path.isabs(runtime) else f"/tmp/mlrepo-{os.getuid()}"
    if create:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        st = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    digest = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    path = os.path.join(folder, f"{digest}.sock")
    return path if len(path.encode()) < 100 else None


def _same_user(conn: socket.socket) -> bool:
    _pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return uid == os.getuid()


def _read_all(conn: socket.socket, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := conn.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ValueError("too long")
    return b"".join(chunks)


# -- the asking side ------------------------------------------------------------------------------------------------
def ask(root: str, command: Command, params: dict[str, Any]) -> Answer | None:
    """The watch's answer to ``command`` on ``root`` (an absolute path), or None: read the disk yourself.
    Only for a stdout that is no terminal (scripts, pipes): a terminal's width and colours stay the command's own."""
    wanted = policy()
    if wanted == "off":
        return None
    if sys.stdout.isatty() or os.environ.get("FORCE_COLOR"):
        answer, why = None, "stdout is a terminal (or colour is forced): only scripts' output is answered"
    else:
        answer, why = _exchange(root, command, params)
    if answer is None and wanted == "require" and why != FAILED:  # a failing command gives its own error below
        raise FailedError(f"no `mlrepo watch` answered for {root}: {why} ({WATCH_ENV}=require)")
    return answer


def _exchange(root: str, command: Command, params: dict[str, Any]) -> tuple[Answer | None, str]:
    path = socket_path(root)
    if path is None:
        return None, f"no private socket folder ({PRIVATE}, mode 0700, a socket path under 100 bytes)"
    try:
        st = os.stat(root)
        request = orjson.dumps({"mlrepo": _identity(), "root": root, "root_id": [st.st_dev, st.st_ino],
                                "command": command, "params": params})
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(ANSWER_TIMEOUT)
            conn.connect(path)
            if not _same_user(conn):
                return None, "the socket is served by another user"
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
            reply = _read_all(conn, 1 << 40)
    except OSError as exc:
        gone = exc.errno in (errno.ENOENT, errno.ECONNREFUSED)
        return None, "no watch runs for this root" if gone else f"cannot reach the watch: {exc.strerror or exc}"
    head, _, body = reply.partition(b"\n")
    try:
        header = orjson.loads(head)
        if header["ok"] is not True:
            return None, str(header["why"])
        if header["stdout"] != len(body):
            raise ValueError("cut")
        return Answer(body, tuple(str(n) for n in header["notes"])), ""
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None, "the watch's answer was cut or garbled"


# -- the watch's side -----------------------------------------------------------------------------------------------
Handler = Callable[[Command, dict[str, Any]], Answer | None]


class Answering:
    """The watch's socket: one thread, one question at a time (each is a sync and a render, milliseconds)."""

    def __init__(self, root: str, root_id: tuple[int, int], handle: Handler) -> None:
        self.root, self.root_id, self.handle = root, root_id, handle
        self.path: str | None = None
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.answered = 0

    def start(self) -> str | None:
        """Listen; None when answering, else why not (in words, for the watch's stderr)."""
        path = socket_path(self.root, create=True)
        if path is None:
            return f"no private folder for its socket ({PRIVATE}, mode 0700, a socket path under 100 bytes)"
        if os.path.lexists(path):
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.settimeout(1.0)
                    probe.connect(path)
                return "another `mlrepo watch` of this root answers"
            except OSError:
                try:  # a watch that was killed left its socket: ours to replace (the folder is private)
                    os.unlink(path)
                except OSError:
                    return "its socket cannot be replaced"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(16)
            self._inode = os.lstat(path).st_ino
        except OSError as exc:
            sock.close()
            return f"cannot listen on {path}: {exc.strerror or exc}"
        sock.settimeout(0.5)
        self.path, self._sock = path, sock
        self._thread = threading.Thread(target=self._serve, name="mlrepo-watch-answers", daemon=True)
        self._thread.start()
        return None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(IO_TIMEOUT + 1)
        if self._sock is not None:
            self._sock.close()
        if self.path is not None:
            try:
                if os.lstat(self.path).st_ino == self._inode:  # never remove a later watch's socket
                    os.unlink(self.path)
            except OSError:
                pass

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(IO_TIMEOUT)
                    if _same_user(conn):
                        conn.sendall(self._reply(_read_all(conn, MAX_REQUEST)))
                except (OSError, ValueError):
                    continue  # that client is gone or misbehaved: the next one is served

    def _reply(self, raw: bytes) -> bytes:
        why = FAILED
        try:
            request = orjson.loads(raw)
            if request["mlrepo"] != _identity():
                why = "the watch runs another mlrepo (version or install)"
            elif request["root"] != self.root or tuple(request["root_id"]) != self.root_id:
                why = "the watch is of another root"
            elif request["command"] in ("ls", "best") and isinstance(request["params"], dict):
                answer = self.handle(request["command"], request["params"])
                if answer is not None:
                    self.answered += 1
                    return orjson.dumps({"ok": True, "stdout": len(answer.stdout),
                                         "notes": list(answer.notes)}) + b"\n" + answer.stdout
                why = "the watch cannot promise a fresh answer (see `mlrepo watch`'s messages)"
        except Exception:  # noqa: BLE001 - whatever went wrong, the asking command reads the disk itself
            pass
        return orjson.dumps({"ok": False, "why": why}) + b"\n"

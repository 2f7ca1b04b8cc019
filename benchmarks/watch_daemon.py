"""A running ``mlrepo watch ROOT`` for the benchmark rows it answers: started, waited for, and stopped.

The watch says it is ready to answer other mlrepo processes by printing a stderr line starting with ``watching ``;
the rows are timed only after that line. Its stdout (one JSON line per change) is discarded; its stderr is drained
by a thread so that it can never block on a full pipe, and the last lines are kept for the error message.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

READY = "watching "


class WatchFailed(RuntimeError):
    pass


@dataclass
class RunningWatch:
    """What the rows record of the watch: how long it took to be ready, its ready line, and how it exited."""

    ready_s: float = 0.0
    line: str = ""
    exit_code: int | None = None
    stderr_tail: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running_watch(cmd: list[str], env: dict[str, str], cwd: str, timeout: float = 900.0,
                  stop_timeout: float = 60.0) -> Iterator[RunningWatch]:
    """Run ``cmd`` (``mlrepo watch ROOT``) until the block ends: SIGINT then, killed if it has not exited within
    ``stop_timeout``. Raises WatchFailed if it exits, or is not ready within ``timeout`` seconds, before its ready
    line."""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    ready_line: list[str] = []
    settled = threading.Event()  # the ready line was printed, or stderr ended (the watch exited)
    start = time.perf_counter()
    info = RunningWatch()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=env, cwd=cwd)

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail.append(line)
            if not ready_line and line.startswith(READY):
                info.ready_s = time.perf_counter() - start
                ready_line.append(line)
                settled.set()
        settled.set()

    reader = threading.Thread(target=drain, name="watch-stderr", daemon=True)
    reader.start()
    try:
        settled.wait(timeout)
        if not ready_line:
            state = f"exited {proc.poll()}" if proc.poll() is not None else f"not ready after {timeout:.0f} s"
            raise WatchFailed(f"{' '.join(cmd)} {state}: " + " | ".join(tail))
        info.line = ready_line[0]
        yield info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        info.exit_code = proc.returncode
        reader.join(timeout=stop_timeout)
        info.stderr_tail = list(tail)

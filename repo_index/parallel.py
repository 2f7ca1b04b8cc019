"""A cold scan shared with worker processes, for the CPU-bound part of indexing a large root.

The scan starts alone. Once it has done ``BOOT_WORK`` (folders searched plus models read, ~50 ms on an idle core),
worker processes are started (they need ~0.1 s to boot: ``python -m``, no polars); after ``SERIAL_WORK`` what is left
(folders not yet searched, models claimed but not read) becomes a list of tasks that this process and the workers
take one by one: the next task number comes from a counter in a shared unnamed file (nothing is left behind, even
after a kill) under a ``lockf`` lock, so a faster process simply takes more. Workers send back plain column lists
(``rows.Rows``); this process merges them and makes the frame once. A worker that fails costs only time: the tasks
it took are done here again.

Threads do not help here (the GIL), and ``multiprocessing`` would re-import the ``mlrepo`` command in every child.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

from mlrepo.repo_index.readers import default_readers, default_store_readers
from mlrepo.repo_index.rows import Rows, scanned_rows
from mlrepo.repo_index.scanner import Pending, Scanner, ScanResult, usable_cores

log = logging.getLogger("mlrepo.scan")

BOOT_WORK = 600  # a scan with more to do after this much is likely to be worth processes: start them
SERIAL_WORK = 2000  # ... and share what is left after this much, when they are about ready
MIN_TASKS = 32  # enough shares for the counter to balance the load between processes
MAX_TASKS = 1024  # no more folders are searched up front than this
CHUNK = 64  # models per task when the left-over work is models already claimed
Task = list[tuple[str, str | None]]


@dataclass(slots=True)
class Share:
    """What a worker sends back: its models as columns and what the cache needs besides."""

    rows: Rows
    skeleton: dict[str, int]
    stores: dict[str, tuple[int, list[str]]]
    skipped: list[tuple[str, str]]


def scan(scanner: Scanner, workers: int | None = None, serial_work: int = SERIAL_WORK
         ) -> tuple[ScanResult, list[Rows]]:
    """Scan ``scanner``'s root (no previous scan: a cold index), sharing a large scan with ``workers`` processes
    (default: one per usable core beyond this one, at most 3). Returns the result (skeleton, stores, unlistable
    folders; ``found`` holds the models read here) and every model as rows, this process's first."""
    result = scanner.start()
    stack: list[Pending] = [("", None, True)]
    workers = min(usable_cores() - 1, 3) if workers is None else workers
    if workers <= 0 or not sys.executable:  # an embedded interpreter has no python to start
        scanner.run(stack, result)
        return result, [scanned_rows(result)]
    scanner.run(stack, result, budget=min(BOOT_WORK, serial_work))
    if not stack and not scanner.deferred:
        return result, [scanned_rows(result)]
    try:
        crew = Workers(workers)
    except OSError as exc:  # no process to be had (limits, no temp space): the scan goes on alone
        log.warning("no scan workers (%s): scanning in one process", exc)
        scanner.run(stack, result)
        scanner.run_task(scanner.deferred, result)
        return result, [scanned_rows(result)]
    with crew:
        scanner.run(stack, result, budget=max(0, serial_work - BOOT_WORK))
        tasks = _split(scanner, stack, result)
        if not tasks:
            return result, [scanned_rows(result)]
        return result, crew.share(scanner, tasks, result)


def _split(scanner: Scanner, stack: list[Pending], result: ScanResult) -> list[Task]:
    """The work left as tasks. The shallowest folders left are searched (claimed models stay deferred) until
    there are enough tasks and all are at one depth: the depth-first walk leaves whole subtrees (a repo beside
    the lines of another) that would make one process wait for the other."""
    while stack:
        depths = [item[0].count("/") if item[0] else -1 for item in stack]
        count = len(stack) + len(scanner.deferred) // CHUNK
        if count >= MAX_TASKS or (count >= MIN_TASKS and min(depths) == max(depths)):
            break
        scanner.step(stack.pop(depths.index(min(depths))), result)
    models = scanner.deferred
    tasks: list[Task] = [[(rel, None)] for rel, _listing, _claimed in stack]
    tasks += [list(models[i:i + CHUNK]) for i in range(0, len(models), CHUNK)]
    return tasks


def _take(fd: int) -> int:
    """The next task number from the shared counter. ``lockf`` locks belong to a process, so the one inherited
    descriptor serves every worker (``flock`` would see a single lock holder)."""
    fcntl.lockf(fd, fcntl.LOCK_EX, 8)
    try:
        number = int.from_bytes(os.pread(fd, 8, 0), "little")
        os.pwrite(fd, (number + 1).to_bytes(8, "little"), 0)
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 8)
    return number


class Workers:
    """Worker processes, booting from the moment they are made; they wait for ``share`` to hand them tasks, and
    are killed on leaving the ``with`` block if still running (a scan that ended before it needed them)."""

    def __init__(self, count: int) -> None:
        self.shared = tempfile.TemporaryFile(prefix="mlrepo-scan-")
        self.fd = self.shared.fileno()
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "mlrepo.repo_index.parallel", str(self.fd)], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, stdin=subprocess.PIPE, pass_fds=(self.fd,)) for _ in range(count)]

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self.shared.close()

    def share(self, scanner: Scanner, tasks: list[Task], result: ScanResult) -> list[Rows]:
        """Do ``tasks`` together; returns this process's rows, then each worker's (``found`` keeps this
        process's records; skeleton, stores and unlistable folders are merged into ``result``)."""
        fd = self.fd
        payload = pickle.dumps({"root": scanner.root, "skip": sorted(scanner.skip_paths), "tasks": tasks},
                               protocol=pickle.HIGHEST_PROTOCOL)
        os.pwrite(fd, (0).to_bytes(8, "little") + payload, 0)
        for proc in self.procs:  # the go signal: the job is in the shared file
            stdin, proc.stdin = proc.stdin, None
            try:
                stdin.close()  # type: ignore[union-attr]
            except OSError:  # already gone: its share falls back to this process
                pass
        mine = []
        while (number := _take(fd)) < len(tasks):
            scanner.run_task(tasks[number], result)
            mine.append(number)
        # this process's rows while the workers finish their last tasks; a failed worker's are added after
        rows = [scanned_rows(result)]
        if len(mine) == len(tasks):  # all done here (the workers were still booting): nothing to wait for
            return rows
        seen = len(result.found), len(result.store_found)
        done = set(mine)
        for share, taken in (_collect(proc) for proc in self.procs):
            if share is None:
                continue
            done.update(taken)
            rows.append(share.rows)
            result.skeleton.update(share.skeleton)
            result.stores.update(share.stores)
            result.skipped.extend(share.skipped)
        redo = [number for number in range(len(tasks)) if number not in done]
        if redo:  # taken by a worker that failed: done here after all
            for number in redo:
                scanner.run_task(tasks[number], result)
            extra = ScanResult(result.found[seen[0]:], [], {}, result.stores, result.store_found[seen[1]:], [])
            rows.append(scanned_rows(extra))
        return rows


def _collect(proc: subprocess.Popen[bytes]) -> tuple[Share | None, list[int]]:
    out, err = proc.communicate()
    if proc.returncode == 0:
        try:
            return pickle.loads(out)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the tasks are done here instead
            err = f"{type(exc).__name__}: {exc}".encode()
    log.warning("a scan worker failed (exit %s), its share is scanned again: %s", proc.returncode,
                err.decode(errors="replace").strip().splitlines()[-1:] or "")
    return None, []


def _work(fd: int) -> tuple[Share, list[int]]:
    """A worker: wait for the go (stdin closes), take tasks from the shared file at ``fd`` until none are left;
    return the models read as rows."""
    readers, store_readers = default_readers(), default_store_readers()  # their imports, while waiting
    sys.stdin.buffer.read()
    job = pickle.loads(os.pread(fd, os.fstat(fd).st_size - 8, 8))
    scanner = Scanner(job["root"], readers, store_readers, extra_skip=job["skip"])
    result = scanner.start()
    tasks: Sequence[Task] = job["tasks"]
    taken = []
    while (number := _take(fd)) < len(tasks):
        scanner.run_task(tasks[number], result)
        taken.append(number)
    return Share(scanned_rows(result), result.skeleton, result.stores, result.skipped), taken


if __name__ == "__main__":
    from mlrepo.repo_index import (
        parallel,  # by its own name, so what is pickled unpickles in the scan
    )

    gc.disable()  # many small objects, no cycles: as in the main scan
    sys.stdout.buffer.write(pickle.dumps(parallel._work(int(sys.argv[1])), protocol=pickle.HIGHEST_PROTOCOL))

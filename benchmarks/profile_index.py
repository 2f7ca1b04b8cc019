"""Where does ``open_index`` spend its time? Profiles one cold and one warm index of a benchmark repository.

    .venv/bin/python benchmarks/profile_index.py [--models 20000] [--root DIR]

Writes ``benchmarks/results/profile-<N>-*.txt``:

- ``phases``: wall time of each phase of the real ``open_index`` (cache load, scan, frame build, cache save),
  cold (``rebuild=True``) and warm, with the scanner's thread pool as shipped and with it replaced by an inline
  executor (serial), which shows whether the worker threads buy anything under the GIL;
- ``cold-pyinstrument`` / ``warm-pyinstrument``: pyinstrument call trees (as shipped; pyinstrument samples the main
  thread, so time spent by the workers shows as waiting on futures);
- ``cold-serial-cprofile``: cProfile of a cold index with the inline executor, so the workers' functions are
  attributed too (top functions by own time and by cumulative time).

Nothing in ``repo_index`` is changed: phases are timed by wrapping its functions from outside.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
from concurrent.futures import Future

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import datasets  # noqa: E402
from mlrepo.repo_index import cache as cache_mod  # noqa: E402
from mlrepo.repo_index import index as index_mod  # noqa: E402
from mlrepo.repo_index import scanner as scanner_mod  # noqa: E402

RESULTS = os.path.join(HERE, "results")


class InlineExecutor:
    """A ThreadPoolExecutor stand-in that runs each task at submit time, in the calling thread."""

    def __init__(self, max_workers: int | None = None) -> None:
        pass

    def submit(self, fn, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001
            fut.set_exception(exc)
        return fut

    def __enter__(self) -> InlineExecutor:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


@contextlib.contextmanager
def serial_scanner(on: bool):
    original = scanner_mod.ThreadPoolExecutor
    if on:
        scanner_mod.ThreadPoolExecutor = InlineExecutor
    try:
        yield
    finally:
        scanner_mod.ThreadPoolExecutor = original


@contextlib.contextmanager
def phase_timer():
    """Wrap the phases of open_index from outside and collect their wall times."""
    times: dict[str, float] = {}
    patches = [(cache_mod.Cache, "load", "cache load (read_ipc + Previous)"),
               (cache_mod.Cache, "save", "cache save (write_ipc + json)"),
               (scanner_mod.Scanner, "scan", "scan (walk + claim + read + size)"),
               (index_mod, "build_frame", "build_frame (records -> polars)"),
               (index_mod, "_drop_empty", "_drop_empty"),
               (index_mod.Index, "__init__", "Index.__init__ (public frame)")]
    saved = []
    for owner, name, label in patches:
        fn = getattr(owner, name)
        saved.append((owner, name, fn))

        def wrapper(*a, __fn=fn, __label=label, **k):
            start = time.perf_counter()
            try:
                return __fn(*a, **k)
            finally:
                times[__label] = times.get(__label, 0.0) + time.perf_counter() - start

        setattr(owner, name, wrapper)
    try:
        yield times
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def timed_open(root: str, rebuild: bool, serial: bool) -> tuple[float, dict[str, float], object]:
    with serial_scanner(serial), phase_timer() as times:
        start = time.perf_counter()
        idx = index_mod.open_index(root, rebuild=rebuild)
        total = time.perf_counter() - start
    return total, times, idx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=20_000)
    ap.add_argument("--root", help="profile this folder instead of a generated benchmark repository")
    args = ap.parse_args()
    root = args.root or datasets.cascade_repo(args.models)[0]
    tag = f"profile-{args.models if not args.root else os.path.basename(os.path.abspath(root))}"
    os.makedirs(RESULTS, exist_ok=True)

    index_mod.open_index(root, rebuild=True)  # warm the page cache and settle the cache
    index_mod.open_index(root)

    lines = [f"open_index phases, {root}", f"scanner WORKERS = {scanner_mod.WORKERS}, cpu_count = {os.cpu_count()}",
             ""]
    for label, rebuild, serial in (("cold, threads (as shipped)", True, False),
                                   ("cold, serial (inline executor)", True, True),
                                   ("warm, as shipped", False, False)):
        total, times, idx = timed_open(root, rebuild, serial)
        lines.append(f"{label}: {total:.3f} s total, {len(idx)} models, read {idx.stats.read}, "
                     f"reused {idx.stats.reused}, cache written {idx.stats.cache_written}")
        for name, sec in sorted(times.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {sec:8.3f} s  {sec / total:6.1%}  {name}")
        rest = total - sum(times.values())  # the phases are disjoint
        lines.append(f"    {rest:8.3f} s  {rest / total:6.1%}  rest of open_index (filter/concat/unique/sort, merge_info)")
        lines.append("")
    phases = "\n".join(lines)
    print(phases)
    with open(os.path.join(RESULTS, f"{tag}-phases.txt"), "w", encoding="utf-8") as fh:
        fh.write(phases + "\n")

    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None
        print("pyinstrument not installed (.venv/bin/pip install pyinstrument): call trees skipped")
    if Profiler is not None:
        for label, rebuild in (("cold", True), ("warm", False)):
            prof = Profiler(interval=0.001)
            prof.start()
            index_mod.open_index(root, rebuild=rebuild)
            prof.stop()
            text = prof.output_text(unicode=False, color=False, show_all=False)
            with open(os.path.join(RESULTS, f"{tag}-{label}-pyinstrument.txt"), "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"--- pyinstrument, {label} ---\n{text}")

    prof = cProfile.Profile()
    with serial_scanner(True):
        prof.enable()
        index_mod.open_index(root, rebuild=True)
        prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    buf.write("=== cold, serial: top 30 by own time (tottime) ===\n")
    st.sort_stats("tottime").print_stats(30)
    buf.write("=== cold, serial: top 40 by cumulative time ===\n")
    st.sort_stats("cumulative").print_stats(40)
    with open(os.path.join(RESULTS, f"{tag}-cold-serial-cprofile.txt"), "w", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
    print(buf.getvalue()[:6000])


if __name__ == "__main__":
    main()

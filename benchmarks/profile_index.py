"""Where does ``open_index`` spend its time? Profiles one cold and one warm index of a benchmark repository.

    .venv/bin/python benchmarks/profile_index.py [--models 20000] [--root DIR]

Writes ``benchmarks/results/profile-<N>-*.txt``:

- ``phases``: wall time of each phase of the real ``open_index`` (cache load, scan, rows, frame, cache save), cold
  (``rebuild=True``) shared with the scan workers as shipped, cold in this process alone, and warm;
- ``cold-pyinstrument`` / ``warm-pyinstrument``: pyinstrument call trees as shipped (the workers' own time is not
  in them: this process waits for them in ``Workers.share``);
- ``cold-serial-cprofile``: cProfile of a cold index scanned in this process alone, so every reader function is
  attributed (top functions by own time and by cumulative time).

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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import datasets  # noqa: E402
from mlrepo.repo_index import cache as cache_mod  # noqa: E402
from mlrepo.repo_index import index as index_mod  # noqa: E402
from mlrepo.repo_index import parallel  # noqa: E402
from mlrepo.repo_index import scanner as scanner_mod  # noqa: E402

RESULTS = os.path.join(HERE, "results")


@contextlib.contextmanager
def serial_scanner(on: bool):
    """A cold scan in this process alone: as on a machine with one usable core."""
    original = parallel.usable_cores
    if on:
        parallel.usable_cores = lambda: 1
    try:
        yield
    finally:
        parallel.usable_cores = original


@contextlib.contextmanager
def phase_timer():
    """Wrap the phases of open_index from outside and collect their wall times."""
    times: dict[str, float] = {}
    patches = [(cache_mod.Cache, "load", "cache load (read_ipc + Previous)"),
               (cache_mod.Cache, "save", "cache save (write_ipc + json)"),
               (parallel, "scan", "cold scan (walk + claim + read + size + rows)"),
               (scanner_mod.Scanner, "scan", "warm scan (stat revalidation)"),
               (index_mod, "scanned_rows", "scanned_rows (records -> lists, warm)"),
               (index_mod, "frame_of", "frame_of (lists -> polars)"),
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

    lines = [f"open_index phases, {root}", f"usable cores = {parallel.usable_cores()}", ""]
    for label, rebuild, serial in (("cold, shared with the scan workers (as shipped)", True, False),
                                   ("cold, this process alone", True, True),
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
    buf.write("=== cold, this process alone: top 30 by own time (tottime) ===\n")
    st.sort_stats("tottime").print_stats(30)
    buf.write("=== cold, this process alone: top 40 by cumulative time ===\n")
    st.sort_stats("cumulative").print_stats(40)
    with open(os.path.join(RESULTS, f"{tag}-cold-serial-cprofile.txt"), "w", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
    print(buf.getvalue()[:6000])


if __name__ == "__main__":
    main()

"""TUI timings at 1k/20k/100k models: first paint from a warm cache, then sort and filter.

    .venv/bin/python benchmarks/tui_bench.py [--sizes 1000,20000,100000] [--repeat 5]

Uses the trees that benchmarks/run.py generates under benchmarks/data/ (run it first). The app runs headless
(Textual's pilot) at 160x45; "first paint" is the time from creating the app to the status line reporting the
models from the warm cache, "revalidated" until the table checked against the disk replaced it; sort and filter are the time for the table to be rebuilt and mounted.
Results go to benchmarks/results/tui-latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from mlrepo.repo_index import open_index
from mlrepo.tui.app import MlrepoApp

HERE = Path(__file__).parent
TARGETS = {"first paint (warm cache), 100k": ("first_paint", 100_000, 0.5), "sort, 100k": ("sort", 100_000, 0.1),
           "filter, 100k": ("filter", 100_000, 0.1)}


async def measure(root: str) -> dict[str, float]:
    start = time.perf_counter()
    app = MlrepoApp(root)
    async with app.run_test(size=(160, 45)) as pilot:
        while str(app.query_one("#status").render()).startswith("indexing"):
            await pilot.pause(0.005)
        first_paint = time.perf_counter() - start
        while not app.checked or "checking" in str(app.query_one("#status").render()):
            await pilot.pause(0.005)
        checked = time.perf_counter() - start
        column = app.index.metric_columns[0]
        app.view.sort = column
        t0 = time.perf_counter()
        await app.refresh_table()
        sort = time.perf_counter() - t0
        app.view.where = f"{column} > 0.5"
        t0 = time.perf_counter()
        await app.refresh_table()
        filtered = time.perf_counter() - t0
    return {"first_paint": first_paint, "revalidated": checked, "sort": sort, "filter": filtered}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,20000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for size in map(int, args.sizes.split(",")):
        root = HERE / "data" / f"cascade-{size}"
        if not root.is_dir():
            print(f"skip {size}: {root} missing (run benchmarks/run.py first)")
            continue
        open_index(root)  # warm the cache
        runs = [asyncio.run(measure(str(root))) for _ in range(args.repeat)]
        for key in ("first_paint", "revalidated", "sort", "filter"):
            values = [r[key] for r in runs]
            rows.append({"size": size, "what": key, "median_s": statistics.median(values), "min_s": min(values),
                         "max_s": max(values), "n": len(values)})
            print(rows[-1])
    frame = pl.DataFrame(rows)
    lines = [f"# TUI timings — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()}", "",
             f"{os.cpu_count()} cores, Python {platform.python_version()}, polars {pl.__version__}; "
             "headless pilot at 160x45; warm index cache; medians of n runs (seconds).", "",
             "| models | what | median | min | max | n |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['size']:,} | {r['what']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['n']} |"
              for r in rows]
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for label, (what, size, limit) in TARGETS.items():
        hit = frame.filter((pl.col("size") == size) & (pl.col("what") == what)) if rows else frame
        if hit.is_empty():
            lines.append(f"| {label} < {limit} s | — | not measured |")
        else:
            value = hit["median_s"][0]
            lines.append(f"| {label} < {limit} s | {value:.3f} s | {'pass' if value < limit else 'FAIL'} |")
    (HERE / "results" / "tui-latest.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

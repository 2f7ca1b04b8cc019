"""TUI timings at 20k/100k models: first paint, then the time from a key to the screen settling.

    .venv/bin/python benchmarks/tui_bench.py [--sizes 20000,100000] [--repeat 3]

Uses the trees that benchmarks/datasets.py generates under benchmarks/data/ (made on first use). The app runs
headless (Textual's pilot) at 160x45 with a warm index cache. Each key is timed from the press until the state it
leads to holds and the app has handled every message that followed (a ``pilot.pause()``): for the table keys that is
the new rows painted; for a screen, its first level on screen ("open") and, for history, the selected model's line
built ("filled"). Results go to benchmarks/results/tui-latest.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
from mlrepo.repo_index import open_index
from mlrepo.tui.app import MlrepoApp
from mlrepo.tui.compare import CompareScreen
from mlrepo.tui.curves import CurvesScreen
from mlrepo.tui.disk import DiskScreen
from mlrepo.tui.history import HistoryScreen

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
TABLE_KEYS = ("sort", "filter", "mark", "live update")
SCREEN_KEYS = ("history open", "history filled", "history close", "disk open", "disk close", "compare open",
               "curves open")


async def _until(pilot, condition: Callable[[], object], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the screen never settled")
        await pilot.pause(0.001)
    await pilot.pause()


async def _timed(pilot, keys: tuple[str, ...], condition: Callable[[], object]) -> float:
    start = time.perf_counter()
    await pilot.press(*keys)
    await _until(pilot, condition)
    return time.perf_counter() - start


async def measure(root: str) -> dict[str, float]:
    out: dict[str, float] = {}
    start = time.perf_counter()
    app = MlrepoApp(root, live=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await _until(pilot, lambda: app.frame is not None)
        out["first paint"] = time.perf_counter() - start
        await _until(pilot, lambda: app.checked)
        out["revalidated"] = time.perf_counter() - start
        metric = app.index.metric_columns[0]
        await pilot.press(*["right"] * app.main_screen.shown_columns().index(metric))
        assert app.main_screen.current_column() == metric
        out["sort"] = await _timed(pilot, ("s",), lambda: app.view.sort == metric)
        await pilot.press("slash", *f"{metric} > 0.5")
        out["filter"] = await _timed(pilot, ("enter",), lambda: app.view.where is not None)
        out["mark"] = await _timed(pilot, ("m",), lambda: len(app.marked) == 1)
        # a live update: the whole index swapped under the cursor, as the watcher's message does it
        index = app.index
        begin = time.perf_counter()
        app.index = None
        app.index = index
        app.main_screen.refresh_table()
        await pilot.pause()
        out["live update"] = time.perf_counter() - begin
        await pilot.press("m")
        out["compare open"] = await _timed(pilot, ("c",), lambda: isinstance(app.screen, CompareScreen)
                                           and app.screen.query("#compare-body"))
        await pilot.press("escape")
        begin = time.perf_counter()
        out["history open"] = await _timed(pilot, ("h",), lambda: isinstance(app.screen, HistoryScreen)
                                           and app.screen.query_one("#history-tree").root.children)
        screen = app.screen
        await _until(pilot, lambda: screen.ready)
        out["history filled"] = time.perf_counter() - begin
        out["history close"] = await _timed(pilot, ("escape",), lambda: len(app.screen_stack) == 1)
        out["disk open"] = await _timed(pilot, ("d",), lambda: isinstance(app.screen, DiskScreen)
                                        and app.screen.query_one("#disk-tree").root.children)
        out["disk close"] = await _timed(pilot, ("escape",), lambda: len(app.screen_stack) == 1)
        out["curves open"] = await _timed(pilot, ("g",), lambda: isinstance(app.screen, CurvesScreen)
                                          and "reading" not in str(app.screen.query_one("#curves-note").render()))
        await pilot.press("escape")
    return out


def main() -> None:
    import datasets

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for size in map(int, args.sizes.split(",")):
        root, _stamp = datasets.cascade_repo(size)
        open_index(root)  # warm the cache
        runs = [asyncio.run(measure(root)) for _ in range(args.repeat)]
        for key in runs[0]:
            values = [r[key] for r in runs]
            rows.append({"size": size, "what": key, "median_s": statistics.median(values), "min_s": min(values),
                         "max_s": max(values), "n": len(values)})
            print(rows[-1], flush=True)
    write(rows)


def write(rows: list[dict]) -> None:
    frame = pl.DataFrame(rows)
    lines = [f"# TUI timings — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()}", "",
             f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} when written), Python {platform.python_version()}, polars {pl.__version__}; headless pilot "
             "at 160x45; warm index cache; from the key press until the state it leads to holds and every message "
             "after it is handled; medians of n runs (seconds). Made by benchmarks/tui_bench.py.", "",
             "| models | what | median | min | max | n |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['size']:,} | {r['what']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['n']} |"
              for r in rows]
    lines += ["", "| target | measured (worst median) | result |", "|---|---|---|"]
    targets = [("table keys (sort, filter, mark, live update) < 0.1 s", TABLE_KEYS, 0.1),
               ("opening or closing a screen < 1 s at 100k (first level)", SCREEN_KEYS, 1.0)]
    for label, keys, limit in targets:
        hit = frame.filter(pl.col("what").is_in(list(keys)) & (pl.col("what") != "history filled"))
        if hit.is_empty():
            lines.append(f"| {label} | — | not measured |")
            continue
        worst = hit.sort("median_s").row(-1, named=True)
        lines.append(f"| {label} | {worst['median_s']:.3f} s ({worst['what']}, {worst['size']:,}) | "
                     f"{'pass' if worst['median_s'] < limit else 'FAIL'} |")
    (HERE / "results" / "tui-latest.md").write_text("\n".join(lines) + "\n")
    (HERE / "results" / "tui-latest.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

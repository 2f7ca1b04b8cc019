"""Regenerate the README's screenshots from the demo repository: python screenshots/make_screenshots.py

Each screen is driven with Textual's pilot and saved as SVG (and PNG when rsvg-convert is installed). Every wait is
for a state (the index checked, a screen's worker done), not for time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mlrepo.commands.operations.demo import write_demo
from mlrepo.tui.app import MlrepoApp
from mlrepo.tui.compare import CompareScreen
from mlrepo.tui.curves import CurvesScreen
from mlrepo.tui.disk import DiskScreen
from mlrepo.tui.history import HistoryScreen
from mlrepo.tui.prune import KeepTopScreen, PlanScreen

HERE = Path(__file__).parent
SIZE = (160, 45)
SMALL = (80, 24)


async def _until(pilot, condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the screen never settled")
        await pilot.pause(0.01)
    await pilot.wait_for_scheduled_animations()


async def _ready(pilot, app: MlrepoApp) -> None:
    await _until(pilot, lambda: app.checked and app.frame is not None)


async def shoot(root: str) -> list[Path]:
    shots = []

    async def save(app: MlrepoApp, pilot, name: str) -> None:
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        path = HERE / f"{name}.svg"
        app.save_screenshot(str(path))
        shots.append(path)

    app = MlrepoApp(root, label="demo", live=False)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        app.main_screen.sort_best("metrics.accuracy.holdout.val")
        await save(app, pilot, "main")
        await pilot.press("slash", *"params.optimizer.name = 'adamw' and epochs >= 60", "enter")
        await save(app, pilot, "filter")
        await pilot.press("escape")
        await pilot.press("m", "m", "m", "c")
        await _until(pilot, lambda: isinstance(app.screen, CompareScreen))
        await save(app, pilot, "compare")
        await pilot.press("escape")
        app.main_screen.sort_best("metrics.loss")
        await pilot.press("h")
        await _until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.ready)
        await save(app, pilot, "history")
        await pilot.press("escape", "d")
        await _until(pilot, lambda: isinstance(app.screen, DiskScreen) and app.screen.usage is not None)
        tree = app.screen.query_one("#disk-tree")
        tree.root.children[0].expand()
        await _until(pilot, lambda: tree.root.children[0].children)
        tree.root.children[0].children[0].expand()
        await _until(pilot, lambda: tree.root.children[0].children[0].children)
        await save(app, pilot, "disk")
        await pilot.press("escape")
        app.main_screen.jump_to(app.index.df.filter(app.index.df["format"] == "mlflow")["id"][0])
        await pilot.press("g")
        await _until(pilot, lambda: isinstance(app.screen, CurvesScreen)
                     and app.screen.query_one("#curves-plot").display)
        await save(app, pilot, "curves")
        await pilot.press("escape")
        app.view.sort = None
        app.view.columns = ["repo", "line", "name", "metrics.loss", "size_bytes", "updated_at", "status"]
        app.main_screen.refresh_table()
        await pilot.press("right", "right", "right", "k")
        await _until(pilot, lambda: isinstance(app.screen, KeepTopScreen))
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, PlanScreen))
        await save(app, pilot, "prune")
    app = MlrepoApp(root, label="demo", live=False)
    async with app.run_test(size=SMALL) as pilot:
        await _ready(pilot, app)
        app.main_screen.sort_best("metrics.accuracy.holdout.val")
        await save(app, pilot, "main-80x24")
    return shots


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "demo")
        write_demo(root)
        old = 1_750_000_000  # the demo's models are months old, as on a real disk: none is "just changed"
        for dirpath, _dirs, files in os.walk(root):
            for name in [*files, "."]:
                os.utime(os.path.join(dirpath, name), (old, old))
        shots = asyncio.run(shoot(root))
    converter = shutil.which("rsvg-convert")
    for svg in shots:
        if converter:  # librsvg collapses runs of spaces unless told to keep them (numbers are right-aligned)
            kept = svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1)
            subprocess.run([converter, "-o", str(svg.with_suffix(".png"))], input=kept.encode(), check=True)
        print(svg)


if __name__ == "__main__":
    main()

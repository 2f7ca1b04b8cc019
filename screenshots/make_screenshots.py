"""Regenerate the README's screenshots from the demo repository: python screenshots/make_screenshots.py

Each screen is driven with Textual's pilot and saved as SVG (and PNG when rsvg-convert is installed).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mlrepo.commands.operations.demo import write_demo
from mlrepo.tui.app import MlrepoApp

HERE = Path(__file__).parent
SIZE = (170, 46)


async def _ready(pilot, app: MlrepoApp) -> None:
    for _ in range(200):
        await pilot.pause(0.05)
        if app.checked and not str(app.query_one("#status").render()).startswith("indexing"):
            break
    await pilot.pause(0.3)


async def shoot(root: str) -> list[Path]:
    shots = []

    async def save(app: MlrepoApp, pilot, name: str) -> None:
        await pilot.pause(0.4)
        path = HERE / f"{name}.svg"
        app.save_screenshot(str(path))
        shots.append(path)

    app = MlrepoApp(root, label="demo")
    async with app.run_test(size=SIZE) as pilot:
        await _ready(pilot, app)
        await app.sort_best("metrics.accuracy.holdout.val")
        await save(app, pilot, "main")
        await pilot.press("slash", *"params.optimizer.name = 'adamw' and epochs >= 60", "enter")
        await save(app, pilot, "filter")
        await pilot.press("escape")
        await pilot.pause(0.3)
        await pilot.press("m", "m", "m", "c")
        await save(app, pilot, "compare")
        await pilot.press("escape")
        await app.sort_best("metrics.loss")
        await pilot.press("h")
        await save(app, pilot, "history")
        await pilot.press("escape", "d")
        await pilot.pause(0.3)
        await pilot.press("down", "enter", "down", "enter")
        await save(app, pilot, "disk")
        await pilot.press("escape")
        await app.jump_to(app.index.df.filter(app.index.df["format"] == "mlflow")["id"][0])
        await pilot.press("g")
        await save(app, pilot, "curves")
        await pilot.press("escape")
        await app.sort_best("metrics.loss")
        app.view.sort = None
        app.view.columns = ["repo", "line", "name", "metrics.loss", "size_bytes", "updated_at"]
        await app.refresh_table()
        await pilot.press("right", "right", "right", "k")
        await pilot.pause(0.3)
        await pilot.press("3", "enter")
        await save(app, pilot, "prune")
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
        if converter:
            subprocess.run([converter, "-o", str(svg.with_suffix(".png")), str(svg)], check=True)
        print(svg)


if __name__ == "__main__":
    main()

"""The Textual app driven by Textual's pilot, plus SVG snapshots of the main screen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CASCADE_018
from mlrepo.tui.app import MlrepoApp

SNAPSHOT_ROOT = Path("/tmp/mlrepo-snapshot-fixture/cascade-0.18")  # fixed: paths show in the detail pane


async def _loaded(pilot, app: MlrepoApp) -> None:
    for _ in range(100):
        await pilot.pause(0.05)
        if not _status(app).startswith("indexing"):  # set once the table is mounted
            break
    await pilot.pause(0.1)


def _status(app: MlrepoApp) -> str:
    return str(app.query_one("#status").render())


@pytest.fixture
def root(copy_fixture):
    return copy_fixture(CASCADE_018)


async def test_loads_filters_and_counts(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        assert _status(app).startswith("14 models")
        await pilot.press("slash", *"params.optimizer.name = 'adam'", "enter")
        await pilot.pause(0.2)
        assert _status(app).startswith("4 of 14 models")
        await pilot.press("slash", *" and", "enter")  # not a valid expression: the table stays, the box says so
        await pilot.pause(0.2)
        assert app.query_one("#filter").has_class("-error")
        assert _status(app).startswith("4 of 14 models")
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert _status(app).startswith("14 models")


async def test_best_sort_and_pick_prints_path(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await app.sort_best("score_d")  # direction down in the metadata: smallest first
        await pilot.pause(0.2)
        assert app.frame["metrics.score_d"][0] == 8.0
        assert "sorted by metrics.score_d" in _status(app)
        await pilot.press("p")
    assert app.return_value == str(root / "tabular" / "sgd_sweep" / "00003")


async def test_sort_key_toggles_direction(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("right", "right")  # past repo and line: "name"
        await pilot.press("s")
        await pilot.pause(0.2)
        assert app.view.sort == "name" and not app.view.descending
        await pilot.press("s")
        await pilot.pause(0.2)
        assert app.view.descending and app.frame["name"][0] == "00003"


def test_main_screen_snapshot(snap_compare):
    if SNAPSHOT_ROOT.exists():
        shutil.rmtree(SNAPSHOT_ROOT)
    shutil.copytree(CASCADE_018, SNAPSHOT_ROOT)

    async def settle(pilot):
        await _loaded(pilot, pilot.app)

    assert snap_compare(MlrepoApp(str(SNAPSHOT_ROOT), label="cascade-0.18"), terminal_size=(150, 36),
                        run_before=settle)

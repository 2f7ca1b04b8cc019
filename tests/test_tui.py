"""The Textual app driven by Textual's pilot, plus SVG snapshots of the main screen."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from mlrepo.tui.app import MlrepoApp
from mlrepo.tui.compare import CompareScreen
from mlrepo.tui.curves import CurvesScreen
from mlrepo.tui.disk import DiskScreen
from mlrepo.tui.history import HistoryScreen
from rich.console import Console
from treeutil import CASCADE_018, FIXTURES

SNAPSHOT_BASE = Path("/tmp/mlrepo-snapshot")  # fixed, one per screen: paths show on screen; tests run in parallel


async def _loaded(pilot, app: MlrepoApp) -> None:
    for _ in range(100):
        await pilot.pause(0.05)
        if app.checked and not _status(app).startswith("indexing"):  # revalidated and mounted
            break
    await pilot.pause(0.1)


async def _wait_screen(pilot, app: MlrepoApp, screen_type: type) -> None:
    """Screens opened from a worker (plans are made off the UI thread) come when they come: wait, up to 10 s."""
    for _ in range(200):
        if isinstance(app.screen, screen_type):
            return
        await pilot.pause(0.05)
    raise AssertionError(f"{screen_type.__name__} never opened; on {app.screen!r}")


def _text(renderable) -> str:
    console = Console(width=300, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


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
        await pilot.press("left", "s")  # now by line; the name order stays on as the tie-breaker
        await pilot.pause(0.2)
        assert app.view.sort_keys() == (["line", "name"], [False, True])
        head = app.frame.head(4)
        assert head["line"].to_list() == ["00000", "00000", "00000", "cnn_small"]
        assert head["name"].to_list() == ["00002", "00001", "00000", "00002"]
        assert "sorted by line, then name" in _status(app)


async def test_mark_and_compare(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("c")  # nothing marked: a hint, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("m", "m")
        await pilot.pause(0.2)
        assert len(app.marked) == 2 and "2 marked" in _status(app)
        await pilot.press("c")
        await pilot.pause(0.2)
        assert isinstance(app.screen, CompareScreen)
        body = _text(app.screen.query_one("#compare-body").content)
        assert "params.optimizer.lr" in body and "params.model" not in body  # only differences
        await pilot.press("a")
        await pilot.pause(0.1)
        assert "params.model" in _text(app.screen.query_one("#compare-body").content)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def test_history_screen_jumps_to_the_selected_model(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 50)) as pilot:
        await _loaded(pilot, app)
        await app.sort_best("score_d")
        await pilot.press("h")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HistoryScreen)
        tree = app.screen.query_one("#history-tree")
        labels = [str(node.label) for node in tree._tree_lines and [line.node for line in tree._tree_lines]]
        assert any(label.startswith("* 00003") and "score_d=8" in label for label in labels)
        target = next(line.node for line in tree._tree_lines if str(line.node.label).startswith("* 00003"))
        tree.select_node(target)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, HistoryScreen)
        assert app.selected_row()["path"].endswith("sgd_sweep/00003")


async def test_disk_screen_lists_largest_first_and_files(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 50)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("d")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DiskScreen)
        tree = app.screen.query_one("#disk-tree")
        repos = [str(n.label) for n in tree.root.children]
        assert len(repos) == 2 and all("%" in r and "█" in r for r in repos)
        line = tree.root.children[0].children[0]
        model = line.children[0]
        model.expand()
        await pilot.pause(0.2)
        assert any("meta" in str(child.label) for child in model.children)


async def test_curves_screen_plots_logged_metrics(copy_fixture):
    root = copy_fixture(FIXTURES / "lightning")
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("g")
        await pilot.pause(0.5)
        assert isinstance(app.screen, CurvesScreen)
        assert "version_" in str(app.screen.query_one("#screen-title").render())


async def test_columns_can_be_moved_and_chosen(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        first = app.shown_columns()[:3]
        await pilot.press("greater_than_sign")  # move "repo" one to the right
        await pilot.pause(0.2)
        assert app.shown_columns()[:3] == [first[1], first[0], first[2]]
        await app.run_action("choose_columns")
        await pilot.pause(0.2)
        app.screen.dismiss(["name", "metrics.score_d"])
        await pilot.pause(0.3)
        assert app.shown_columns() == ["name", "metrics.score_d"]
        assert app.frame.columns == ["id", "name", "metrics.score_d"]


async def test_palette_jumps_to_a_model_by_fuzzy_name(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"cnn_small/00002")
        await pilot.pause(0.6)
        await pilot.press("enter")
        await pilot.pause(0.4)
        assert app.selected_row()["path"].endswith("cnn_small/00002")


async def test_unreadable_and_errors_never_crash(tmp_path):
    bad = tmp_path / "r" / "line" / "00000"
    bad.mkdir(parents=True)
    (tmp_path / "r" / "line" / "meta.json").write_text("[]")
    (bad / "meta.json").write_text('[{"type": "model", "metrics": {')
    app = MlrepoApp(str(tmp_path / "r"))
    async with app.run_test(size=(120, 30)) as pilot:
        await _loaded(pilot, app)
        assert "1 models" in _status(app) and "1 unreadable" in _status(app)
        await pilot.press("h", "escape", "d", "escape", "g", "escape")
        await pilot.pause(0.3)


SCREENS = {"main": [], "history": ["h"], "disk": ["d", "enter"], "compare": ["m", "m", "c"]}


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_screen_snapshots(snap_compare, screen):
    root = SNAPSHOT_BASE / screen / "cascade-0.18"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(CASCADE_018, root)

    async def settle(pilot):
        await _loaded(pilot, pilot.app)
        for key in SCREENS[screen]:
            await pilot.press(key)
            await pilot.pause(0.2)

    assert snap_compare(MlrepoApp(str(root), label="cascade-0.18", live=False), terminal_size=(150, 36),
                        run_before=settle)


async def test_live_models_appear_and_go_without_losing_the_cursor(root):
    """A model saved while the app is open shows within seconds; the selected model stays selected."""
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await app.sort_best("score_d")
        await pilot.press("down")
        selected = app.selected_id()
        for _ in range(100):  # the watcher starts in a worker once the table is checked
            await pilot.pause(0.05)
            if app.live is not None and app.live.running:
                break
        new = root / "tabular" / "sgd_sweep" / "00004"
        shutil.copytree(root / "tabular" / "sgd_sweep" / "00003", new)
        for _ in range(100):
            await pilot.pause(0.1)
            if _status(app).startswith("15 models"):
                break
        assert _status(app).startswith("15 models")
        assert app.selected_id() == selected and app.view.sort == "metrics.score_d"
        shutil.rmtree(new)
        for _ in range(100):
            await pilot.pause(0.1)
            if _status(app).startswith("14 models"):
                break
        assert _status(app).startswith("14 models") and app.selected_id() == selected


async def test_trash_marked_after_confirming_the_plan(copy_fixture, tmp_path, monkeypatch):
    from mlrepo.tui.prune import PlanScreen
    from treeutil import age, trash_env

    for key, value in trash_env(tmp_path / "user").items():
        monkeypatch.setenv(key, value)
    root = copy_fixture(CASCADE_018, "repo")
    age(root)
    app = MlrepoApp(str(root), live=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await _loaded(pilot, app)
        await app.sort_best("score_d")  # sgd_sweep 00003, 00002, 00000, 00001 first
        await pilot.press("m", "m")
        await pilot.press("x")
        await _wait_screen(pilot, app, PlanScreen)
        assert "Trash 2 of 2 models" in str(app.screen.query_one("#plan-title").render())
        await pilot.press("escape")  # cancel: nothing moves
        await pilot.pause(0.2)
        assert (root / "tabular" / "sgd_sweep" / "00003").is_dir()
        await pilot.press("x")
        await _wait_screen(pilot, app, PlanScreen)
        app.screen.query_one("#plan-go").press()
        for _ in range(100):
            await pilot.pause(0.1)
            if not isinstance(app.screen, PlanScreen) and "trashed" in _status(app):
                break
        assert not (root / "tabular" / "sgd_sweep" / "00003").exists()
        assert not (root / "tabular" / "sgd_sweep" / "00002").exists()
        trashed = app.index.df.filter(app.index.df["status"] == "trashed")
        assert sorted(trashed["name"]) == ["00002", "00003"]
        assert list((tmp_path / "user" / "data" / "Trash" / "info").glob("*.trashinfo")) or list(
            (tmp_path / "user").rglob("*.trashinfo"))


async def test_keep_top_rule_shows_a_plan(copy_fixture, tmp_path, monkeypatch):
    from mlrepo.tui.prune import KeepTopScreen, PlanScreen
    from treeutil import age

    root = copy_fixture(CASCADE_018, "repo")
    age(root)
    app = MlrepoApp(str(root), live=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await _loaded(pilot, app)
        app.view.columns = ["name", "metrics.score_d"]
        await app.refresh_table()
        await pilot.press("right")  # onto score_d
        assert app.current_column() == "metrics.score_d"
        await pilot.press("k")
        await _wait_screen(pilot, app, KeepTopScreen)
        await pilot.press("1", "enter")
        await _wait_screen(pilot, app, PlanScreen)
        title = str(app.screen.query_one("#plan-title").render())
        assert "Trash 3 of 14 models" in title  # sgd_sweep keeps its best; the lines without score_d keep all


async def test_updates_while_another_screen_is_open(root):
    """A live update (or a finished load) refreshes the table behind the history screen without a crash."""
    app = MlrepoApp(str(root), live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("h")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HistoryScreen)
        await app.refresh_table()
        app.view.where = "params.optimizer.name = 'adam'"
        await app.refresh_table()
        assert isinstance(app.screen, HistoryScreen)
        assert _status(app).startswith("4 of 14 models")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.focused is app.main_screen.query_one("#models")

"""The Textual app driven by Textual's pilot, plus SVG snapshots at 80x24 and 160x45.

Every wait is for a state (the index checked, a worker done, a screen open), never for a stretch of time.
"""

from __future__ import annotations

import io
import re
import shutil
import time
from collections.abc import Callable

import pytest
from mlrepo.tui.app import MlrepoApp
from mlrepo.tui.compare import CompareScreen
from mlrepo.tui.curves import CurvesScreen
from mlrepo.tui.disk import DiskScreen, Model
from mlrepo.tui.help import HelpScreen
from mlrepo.tui.history import HistoryScreen
from mlrepo.tui.palette import find_models
from rich.console import Console
from treeutil import CASCADE_018, FIXTURES


async def until(pilot, condition: Callable[[], object], what: str, timeout: float = 15) -> None:
    """Let the app run until ``condition`` holds (polled between its message rounds), or fail saying what."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


async def _loaded(pilot, app: MlrepoApp) -> None:
    await until(pilot, lambda: app.checked and app.frame is not None, "the index checked against the disk")
    await pilot.wait_for_scheduled_animations()


def _text(renderable, width: int = 300) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def _status(app: MlrepoApp) -> str:
    return str(app.query_one("#status").render())


def _lines(app: MlrepoApp) -> list[str]:
    """The table as the terminal shows it, header first."""
    table = app.table
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


@pytest.fixture
def root(copy_fixture):
    return copy_fixture(CASCADE_018)


async def test_loads_filters_and_counts(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        assert _status(app).startswith("14 models")
        assert app.focused is app.table
        await pilot.press("slash", *"params.optimizer.name = 'adam'", "enter")
        assert _status(app).startswith("4 of 14 models")
        assert app.focused is app.table  # enter hands the keys back to the table
        await pilot.press("slash", *" and", "enter")  # not a valid expression: the table stays, the box says so
        assert app.query_one("#filter").has_class("-error")
        assert _status(app).startswith("4 of 14 models")
        assert app.focused is app.query_one("#filter")  # still there to fix it
        await pilot.press("escape")
        assert _status(app).startswith("14 models")


async def test_filter_matching_nothing_says_how_to_get_back(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(120, 30)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("slash", *"metrics.accuracy > 5", "enter")
        assert _status(app).startswith("0 of 14 models")
        assert any("No model matches the filter" in line for line in _lines(app))


async def test_best_sort_and_pick_prints_path(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        app.main_screen.sort_best("score_d")  # direction down in the metadata: smallest first
        assert app.frame["metrics.score_d"][0] == 8.0
        assert "sorted by score_d ▲ asc" in _status(app)
        await pilot.press("p")
    assert app.return_value == str(root / "tabular" / "sgd_sweep" / "00003")


async def test_sort_key_toggles_direction_and_the_status_says_it(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("right", "right")  # past repo and line: "name"
        await pilot.press("s")
        assert app.view.sort == "name" and not app.view.descending
        assert re.search(r"name *▲", _lines(app)[0])
        await pilot.press("s")
        assert app.view.descending and app.frame["name"][0] == "00003"
        assert re.search(r"name *▼", _lines(app)[0]) and "sorted by name ▼ desc" in _status(app)
        await pilot.press("left", "s")  # now by line; the name order stays on as the tie-breaker
        assert app.view.sort_keys() == (["line", "name"], [False, True])
        head = app.frame.head(4)
        assert head["line"].to_list() == ["00000", "00000", "00000", "cnn_small"]
        assert head["name"].to_list() == ["00002", "00001", "00000", "00002"]
        assert "sorted by line ▲ asc, then name ▼ desc" in _status(app)


async def test_numbers_right_aligned_with_fixed_decimals_and_the_best_marked(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        app.view.columns = ["name", "metrics.accuracy", "metrics.score_d"]
        app.main_screen.refresh_table()
        header, *rows = _lines(app)
        cells = [line[header.index("accuracy"):header.index("accuracy") + len("accuracy")] for line in rows]
        numbers = [c for c in cells if c.strip()]
        assert numbers and all(re.fullmatch(r" *\d\.\d\d", c) for c in numbers), numbers  # 0.71, 0.10: 2 places
        assert len({len(c) for c in numbers}) == 1 and all(c.endswith(c.strip()) for c in numbers)
        accuracy = next(c for c in app.table.columns if c.key == "metrics.accuracy")
        assert accuracy.best == max(v for v in app.frame["metrics.accuracy"] if v is not None)
        score = next(c for c in app.table.columns if c.key == "metrics.score_d")
        assert score.best == 8.0  # direction down: the smallest is the best


async def test_mark_and_compare_never_rebuild_the_table(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        frame = app.frame
        await pilot.press("c")  # nothing marked: a hint, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("m", "m")
        assert len(app.marked) == 2 and "2 marked" in _status(app)
        assert app.frame is frame and app.table.cursor_row == 2  # the rows stay; the cursor stepped down
        assert [line[:2] for line in _lines(app)[1:4]] == ["● ", "● ", "  "]
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        body = _text(app.screen.query_one("#compare-body").content)
        assert "params.optimizer.lr" in body and "params.model" not in body  # only differences
        await pilot.press("a")
        assert "params.model" in _text(app.screen.query_one("#compare-body").content)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen) and app.focused is app.table


async def test_history_shows_the_lines_at_once_and_builds_a_line_on_demand(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 50)) as pilot:
        await _loaded(pilot, app)
        app.main_screen.sort_best("score_d")  # the cursor on sgd_sweep/00003
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        screen = app.screen
        tree = screen.query_one("#history-tree")
        repos = tree.root.children
        assert [str(n.label).split()[0] for n in repos] == ["tabular", "vision"]
        await until(pilot, lambda: repos[0].children and screen.ready, "the selected model's line built")
        assert not repos[1].children  # the other repo opens when asked
        lines = repos[0].children
        assert [str(n.label).split()[0] for n in lines] == ["rf_baseline", "sgd_sweep"]
        built = [n for n in lines if n.children]
        assert [str(n.label).split()[0] for n in built] == ["sgd_sweep"]  # the other line waits for a key
        labels = [str(line.node.label) for line in tree._tree_lines]
        assert any(label.startswith("* 00003") and "score_d=8" in label for label in labels)
        await until(pilot, lambda: tree.cursor_node and str(tree.cursor_node.label).startswith("* 00003"),
                    "the tree's cursor on the model the table's cursor was on")
        lines[0].expand()
        await until(pilot, lambda: screen.ready and lines[0].children, "a line built on expanding it")
        assert str(lines[0].children[0].label).split()[0] == "00000"
        target = next(n for n in lines[0].children[0].children if str(n.label).startswith("  00001"))
        tree.select_node(target)
        await until(pilot, lambda: not isinstance(app.screen, HistoryScreen), "back on the table")
        assert app.main_screen.selected_row()["path"].endswith("rf_baseline/00001")


async def test_disk_shows_repos_first_then_lines_models_and_files_on_demand(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 50)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("d")
        assert isinstance(app.screen, DiskScreen)
        screen = app.screen
        tree = screen.query_one("#disk-tree")
        await until(pilot, lambda: screen.usage is not None, "the sizes added up")
        repos = [str(n.label) for n in tree.root.children]
        assert len(repos) == 2 and all("%" in r and "█" in r for r in repos)
        assert not tree.root.children[0].children  # lines come when the repo is opened
        repo = tree.root.children[0]
        repo.expand()
        await until(pilot, lambda: repo.children, "the repo's lines")
        line = repo.children[0]
        line.expand()
        await until(pilot, lambda: line.children, "the line's models")
        model = line.children[0]
        assert isinstance(model.data, Model)
        model.expand()
        await until(pilot, lambda: any("meta" in str(c.label) for c in model.children), "the model's files")
        tree.select_node(line.children[1])
        await until(pilot, lambda: not isinstance(app.screen, DiskScreen), "back on the table")
        assert app.main_screen.selected_id() == line.children[1].data.id


async def test_curves_plot_logged_metrics_and_say_so_when_there_are_none(root, copy_fixture):
    app = MlrepoApp(str(copy_fixture(FIXTURES / "lightning")))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("g")
        assert isinstance(app.screen, CurvesScreen)
        plot = app.screen.query_one("#curves-plot")
        await until(pilot, lambda: plot.display, "the curves drawn")
        assert "version_" in str(app.screen.query_one("#screen-title").render())
    app = MlrepoApp(str(root))  # Cascade models log single values: a sentence, no empty chart
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("g")
        note = app.screen.query_one("#curves-note")
        await until(pilot, lambda: "no metric over steps" in str(note.render()), "the note")
        assert not app.screen.query_one("#curves-plot").display


async def test_columns_can_be_moved_and_chosen(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        first = app.main_screen.shown_columns()[:3]
        await pilot.press("greater_than_sign")  # move "repo" one to the right; the cursor goes with it
        assert app.main_screen.shown_columns()[:3] == [first[1], first[0], first[2]]
        assert app.main_screen.current_column() == "repo"
        from mlrepo.tui.columns import ColumnsScreen

        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, ColumnsScreen), "the columns dialog")
        app.screen.dismiss(["name", "metrics.score_d"])
        await until(pilot, lambda: app.main_screen.shown_columns() == ["name", "metrics.score_d"], "the columns applied")
        assert app.frame.columns == ["id", "name", "metrics.score_d"]


async def test_palette_lists_mlrepo_actions_and_finds_models_by_words_in_any_order(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        assert [label for _, label in find_models(app.index.df, "00003 SGD")] == ["tabular/sgd_sweep/00003"]
        await pilot.press("ctrl+p")
        options = app.screen.query_one("CommandList")
        await until(pilot, lambda: options.option_count >= 10, "actions listed before any query")
        listed = " ".join(str(options.get_option_at_index(i).prompt) for i in range(options.option_count))
        assert "History" in listed and "Keep top K" in listed and "Trash" in listed
        await pilot.press(*"small 00002")
        await until(pilot, lambda: options.option_count and "cnn_small/00002" in str(
            options.get_option_at_index(0).prompt), "the model found")
        await pilot.press("enter")
        await until(pilot, lambda: len(app.screen_stack) == 1, "the palette closed")
        assert app.main_screen.selected_row()["path"].endswith("cnn_small/00002")
        await pilot.press("ctrl+p", *"Mark")  # an action run from the palette acts on the table
        options = app.screen.query_one("CommandList")
        await until(pilot, lambda: options.option_count and "Mark" in str(options.get_option_at_index(0).prompt),
                    "the Mark action offered")
        await pilot.press("enter")
        await until(pilot, lambda: app.marked, "the model marked")
        assert app.marked == {app.index.df.filter(app.index.df["path"].str.ends_with("cnn_small/00002"))["id"][0]}


async def test_help_toggles_with_question_mark_and_closes_with_escape(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(100, 30)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = _text(app.screen.query_one("#help-keys").content)
        assert keys.splitlines()[1].split()[0] == "/" and "History" not in keys and "parameter history" in keys
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark", "escape")
        assert not isinstance(app.screen, HelpScreen) and app.focused is app.table


async def test_narrow_terminal_gives_the_table_the_room_and_i_shows_the_detail(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        detail = app.query_one("#detail")
        assert not detail.display
        assert "accuracy" in _lines(app)[0]  # a metric is on screen at 80 columns
        await pilot.press("i")
        assert detail.display
        await pilot.press("i")
        assert not detail.display
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        assert app.query_one("#detail").display
        path = app.main_screen.selected_row()["path"]
        shown = _text(app.query_one("#detail-body").content, width=30)  # narrow: wrapped, never cut
        assert path.replace("/", "") in shown.replace("\n", "").replace(" ", "").replace("/", "")


async def test_unreadable_models_are_shown_with_their_error_and_never_crash(tmp_path):
    bad = tmp_path / "r" / "line" / "00000"
    bad.mkdir(parents=True)
    (tmp_path / "r" / "line" / "meta.json").write_text("[]")
    (bad / "meta.json").write_text('[{"type": "model", "metrics": {')
    app = MlrepoApp(str(tmp_path / "r"))
    async with app.run_test(size=(120, 30)) as pilot:
        await _loaded(pilot, app)
        assert "1 models" in _status(app) and "1 unreadable" in _status(app)
        assert "error" in app.main_screen.shown_columns()
        assert any("every model is unreadable" in (n.title or "") for n in app._notifications)
        await pilot.press("h", "escape", "d", "escape", "g", "escape")
        await until(pilot, lambda: len(app.screen_stack) == 1, "back on the table")


async def test_an_empty_root_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    app = MlrepoApp(str(tmp_path / "empty"))
    async with app.run_test(size=(120, 30)) as pilot:
        await _loaded(pilot, app)
        assert _status(app).startswith("0 models")
        text = "\n".join(_lines(app))
        assert "No models under" in text and "mlrepo demo" in text


async def test_q_then_mashed_keys_quits_cleanly(root):
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("q", "s", "h", "d", "m", "c", "a", "x", "question_mark", "g", "k", "slash", "b")
    assert app.return_code in (0, None) and app.return_value is None


async def test_live_update_keeps_cursor_sort_and_the_focus_in_the_filter_box(root):
    """A model saved while the user types a filter: the table changes, the keys keep going to the box."""
    app = MlrepoApp(str(root))
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        app.main_screen.sort_best("score_d")
        await pilot.press("down")
        selected = app.main_screen.selected_id()
        await until(pilot, lambda: app.live is not None and app.live.running, "the watcher running")
        await pilot.press("slash", *"metrics.f1")
        new = root / "tabular" / "sgd_sweep" / "00004"
        shutil.copytree(root / "tabular" / "sgd_sweep" / "00003", new)
        await until(pilot, lambda: _status(app).startswith("15 models"), "the new model shown")
        await pilot.press(*" > 0.5")
        filter_box = app.query_one("#filter")
        assert app.focused is filter_box and filter_box.value == "metrics.f1 > 0.5"
        assert app.main_screen.selected_id() == selected and app.view.sort == "metrics.score_d"
        assert len(app.screen_stack) == 1 and not app.marked
        await pilot.press("escape")
        shutil.rmtree(new)
        await until(pilot, lambda: _status(app).startswith("14 models"), "the model gone")
        assert app.main_screen.selected_id() == selected and app.focused is app.table


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
        app.main_screen.sort_best("score_d")  # sgd_sweep 00003, 00002, 00000, 00001 first
        await pilot.press("m", "m")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
        assert "Trash 2 of 2 models" in str(app.screen.query_one("#plan-title").render())
        await pilot.press("escape")  # cancel: nothing moves
        assert (root / "tabular" / "sgd_sweep" / "00003").is_dir()
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
        app.screen.query_one("#plan-go").press()
        await until(pilot, lambda: not isinstance(app.screen, PlanScreen) and app.checked
                    and "trashed" in set(app.index.df["status"]), "the models trashed and the index reloaded")
        assert not (root / "tabular" / "sgd_sweep" / "00003").exists()
        assert not (root / "tabular" / "sgd_sweep" / "00002").exists()
        trashed = app.index.df.filter(app.index.df["status"] == "trashed")
        assert sorted(trashed["name"]) == ["00002", "00003"]
        assert list((tmp_path / "user").rglob("*.trashinfo"))


@pytest.mark.parametrize(("per", "k", "removed"), [("line", None, 1), ("all", "1", 3)])
async def test_keep_top_asks_k_with_a_default_and_the_groups(copy_fixture, per, k, removed):
    from mlrepo.tui.prune import KeepTopScreen, PlanScreen
    from treeutil import age

    root = copy_fixture(CASCADE_018, "repo")
    age(root)
    app = MlrepoApp(str(root), live=False)
    async with app.run_test(size=(160, 45)) as pilot:
        await _loaded(pilot, app)
        app.view.columns = ["name", "metrics.score_d"]
        app.main_screen.refresh_table()
        await pilot.press("right")  # onto score_d
        assert app.main_screen.current_column() == "metrics.score_d"
        await pilot.press("k")
        assert isinstance(app.screen, KeepTopScreen)
        assert app.screen.query_one("#keeptop-k").value == "3"  # the default K
        app.screen.query_one(f"#per-{per}").value = True
        if k is not None:
            await pilot.press("backspace", k)
        app.screen.query_one("#keeptop-k").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PlanScreen), "the plan")
        title = str(app.screen.query_one("#plan-title").render())
        # sgd_sweep has 4 models with score_d, the other lines none (a model without the metric is kept)
        assert f"Trash {removed} of 14 models" in title


async def test_updates_while_another_screen_is_open(root):
    """A live update (or a finished load) refreshes the table behind the history screen without a crash."""
    app = MlrepoApp(str(root), live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        app.main_screen.refresh_table()
        app.view.where = "params.optimizer.name = 'adam'"
        app.main_screen.refresh_table()
        assert isinstance(app.screen, HistoryScreen)
        assert _status(app).startswith("4 of 14 models")
        await pilot.press("escape")
        assert app.focused is app.table


SCREENS = {"main": [], "marked": ["down", "m", "right", "right", "right", "s"], "history": ["h"],
           "disk": ["d"], "compare": ["m", "m", "c"], "help": ["question_mark"]}


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_screen_snapshots(snap_compare, copy_fixture, monkeypatch, tmp_path, screen, size):
    """Paths show in the detail pane: under HOME they read ~/…, the same wherever the test's tmp folder is."""
    monkeypatch.setenv("HOME", str(tmp_path))
    root = copy_fixture(CASCADE_018)

    async def settle(pilot):
        app = pilot.app
        await _loaded(pilot, app)
        await pilot.press(*SCREENS[screen])
        if isinstance(app.screen, HistoryScreen):
            await until(pilot, lambda: app.screen.ready, "the line built")
        if isinstance(app.screen, DiskScreen):
            await until(pilot, lambda: app.screen.usage is not None, "the sizes")
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(MlrepoApp(str(root), label="cascade-0.18", live=False), terminal_size=size,
                        run_before=settle)

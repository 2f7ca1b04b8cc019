"""The Textual app: it loads the index (cached first, then checked against the disk), follows the disk while
open, and carries out what the models table asks for: the screens for parameter history, disk usage, comparison
and metric curves, the plans that trash or archive models, and picking a model's path on exit.

The table itself is the main screen (``main_screen.py``), the keys are in ``bindings.py``, the messages the
workers post in ``messages.py``. The index is loaded in a thread worker and handed back by message, so the UI
answers keys while a large root loads; every error from a worker surfaces as a notification, never a crash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl
from mlrepo.repo_index import Index, open_index
from mlrepo.repo_index.index import cached_index
from mlrepo.repo_index.live import LiveIndex
from mlrepo.repo_index.ranking import direction_by_name
from mlrepo.repo_index.units import human_size
from mlrepo.tui import bindings
from mlrepo.tui.main_screen import MainScreen
from mlrepo.tui.messages import IndexChanged, IndexLoaded
from mlrepo.tui.palette import ActionsProvider, ModelsProvider
from mlrepo.tui.table import ModelsTable
from mlrepo.tui.view import View
from textual import events, work
from textual.app import App
from textual.widgets import Input
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from mlrepo.commands.operations import How
    from mlrepo.commands.operations.plan import Plan


class MlrepoApp(App[str | None]):
    """Browse the models under a root; ``p`` quits and returns the selected model's path."""

    CSS_PATH = "app.tcss"
    TITLE = "mlrepo"
    AUTO_FOCUS = "#models"
    COMMANDS = {ActionsProvider, ModelsProvider} | App.COMMANDS  # type: ignore[operator]  # Textual's own set
    BINDINGS = bindings.APP

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys act on nothing once quitting, nor while typing in a box; the table's actions that the app carries
        out only while the table is on top."""
        if self.quitting or isinstance(self.focused, Input):
            return False
        return action not in bindings.TABLE_ACTIONS or len(self.screen_stack) == 1

    def __init__(self, root: str, label: str | None = None, live: bool = True,
                 source: Callable[[], Index] | None = None) -> None:
        """``source``, when given, makes the index instead of ``open_index(root)`` (a remote root, a team index):
        the app is then read-only (no live updates, no prune or archive)."""
        super().__init__()
        self.root = root
        self.source = source
        self.live_enabled = live and source is None
        self.live: LiveIndex | None = None
        self._painted = threading.Event()  # the cached table is on screen
        self.label = label or root
        self.index: Index | None = None
        self.checked = False
        self.quitting = False
        self._main = MainScreen(self.label)

    def get_default_screen(self) -> MainScreen:
        return self._main

    @property
    def main_screen(self) -> MainScreen:
        """The models table's screen: queries go there even while a dialog or another screen is on top."""
        return self._main

    # What the table shows, read by the command palette, the tests and the screenshots.
    @property
    def table(self) -> ModelsTable:
        return self._main.table

    @property
    def view(self) -> View:
        return self._main.view

    @property
    def rows(self) -> pl.DataFrame | None:
        return self._main.rows

    @property
    def frame(self) -> pl.DataFrame | None:
        return self._main.frame

    @property
    def marked(self) -> set[str]:
        return self._main.marked

    def on_mount(self) -> None:
        self.sub_title = self.label
        self.load()

    def on_resize(self, event: events.Resize) -> None:
        self._main.apply_detail()

    # -- loading -------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="index")
    def load(self) -> None:
        """Paint the cached table at once, then the one revalidated against the disk."""
        if self.source is not None:
            self.post_message(IndexLoaded(self.source()))
            return
        if self.index is None:
            cached = cached_index(self.root)
            if cached is not None:
                self.post_message(IndexLoaded(cached, checked=False))
                # the first paint has the CPU to itself: revalidating alongside made it twice as slow at 100k
                self._painted.wait(timeout=5)
        self.post_message(IndexLoaded(open_index(self.root)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Errors of every worker end here, as a notification."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(str(event.worker.error), title="error", severity="error", timeout=8)

    def on_index_loaded(self, message: IndexLoaded) -> None:
        first = self.index is None
        self.index = message.index
        self.checked = message.checked
        self._main.show_index()
        if not message.checked:
            self.call_after_refresh(self._painted.set)
        if message.checked and (first or self.live is None) and len(self.index) and \
                self.index.unreadable().height == len(self.index):
            self.notify("no model here could be read: the error column and the detail pane say why",
                        title="every model is unreadable", severity="warning", timeout=10)
        if message.checked and self.live_enabled and self.live is None:
            self.follow_disk(message.index)

    # -- live updates --------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="live")
    def follow_disk(self, index: Index) -> None:
        """Watch the root (watchdog) and post each applied change; the table follows within a second or two."""
        self.live = LiveIndex(
            self.root,
            on_change=lambda batch: self.post_message(IndexChanged(batch)),
            on_warning=lambda text: self.call_from_thread(self.notify, text, title="live", severity="warning"),
        )
        self.live.start(index=index)

    def on_index_changed(self, message: IndexChanged) -> None:
        """The rows change under the cursor; the cursor, the sort and the focus stay where the user left them."""
        self.index = message.batch.index
        self._main.show_index()

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.stop()

    # -- the screens the table opens -----------------------------------------------------------------------
    def action_compare(self) -> None:
        if self.index is None:
            return
        ids = self.marked or ({self._main.selected_id()} - {None})
        if len(ids) < 2:
            self.notify("mark two or more models with m, then press c", severity="warning")
            return
        from mlrepo.tui.compare import CompareScreen

        rows = self.index.df.filter(pl.col("id").is_in(list(ids))).sort("repo", "line", "name").to_dicts()
        self.push_screen(CompareScreen(rows, self.index))

    def _history_metric(self) -> tuple[str | None, str]:
        assert self.index is not None
        for column in (self._main.current_column(), self.view.sort):
            if column and column.startswith("metrics."):
                info = self.index.metrics.get(column)
                mode = info.direction if info and info.direction else direction_by_name(column)
                return column, mode
        return None, "max"

    def action_history(self) -> None:
        if self.index is None or self.rows is None:
            return
        from mlrepo.tui.history import HistoryScreen

        metric, mode = self._history_metric()
        self.push_screen(HistoryScreen(self.rows, metric, mode, self._main.selected_id()), self._jump_back)

    def action_disk(self) -> None:
        if self.index is None or self.rows is None:
            return
        from mlrepo.tui.disk import DiskScreen

        self.push_screen(DiskScreen(self.rows), self._jump_back)

    def action_curves(self) -> None:
        row = self._main.selected_row()
        if row is not None:
            from mlrepo.tui.curves import CurvesScreen

            self.push_screen(CurvesScreen(row))

    def _jump_back(self, model_id: str | None) -> None:
        if model_id:
            self._main.jump_to(model_id)

    # -- prune and archive ----------------------------------------------------------------------------------
    def _act_on(self, plan: Plan, how: How) -> None:
        from mlrepo.tui.prune import PlanScreen

        if self.quitting or len(self.screen_stack) != 1:  # the plan came after the user moved on
            return

        async def done(report) -> None:
            if report is None:
                return
            moved, failed = len(report.succeeded), len(report.failed)
            freed = human_size(sum(o.bytes_freed for o in report.succeeded))
            text = f"{moved} models {'trashed' if how == 'trash' else 'archived'}, {freed} freed"
            if failed:
                text += f"; {failed} not moved: " + "; ".join(f"{o.label}: {o.message}" for o in report.failed[:3])
            self.notify(text, title=how, severity="warning" if failed else "information", timeout=8)
            self.marked.clear()
            self.load()  # the live index follows too; this makes the statuses current at once

        self.push_screen(PlanScreen(plan, how), done)

    @work(thread=True, exclusive=True, group="plan")
    def plan_then_confirm(self, make_plan: Callable[[], Plan], how: How) -> None:
        """Plans look at every candidate's files (the recent-change rule): made in a worker, then confirmed."""
        plan = make_plan()
        self.call_from_thread(self._act_on, plan, how)

    def action_remove(self, how: How) -> None:
        """Trash or archive the marked models (or the one under the cursor), after the plan is confirmed."""
        if self.index is None or not self.checked or self._read_only():
            return
        from mlrepo.commands.operations.plan import plan_selection

        index, ids = self.index, sorted(self.marked) or [i for i in [self._main.selected_id()] if i]
        kind = "prune" if how == "trash" else "archive"
        if ids:
            self.plan_then_confirm(lambda: plan_selection(index, refs=ids, kind=kind), how)

    def _read_only(self) -> bool:
        if self.source is not None:
            self.notify(f"{self.label} is opened read-only: prune and archive act on a local ROOT",
                        severity="warning")
        return self.source is not None

    def action_keep_top(self) -> None:
        """A keep-top rule on the metric under the cursor: the plan shows what the rest would free."""
        column = self._main.current_column()
        if self._read_only():
            return
        if self.index is None or not self.checked or column is None or not column.startswith("metrics."):
            self.notify("move the cursor to a metric column first", severity="warning")
            return
        from mlrepo.commands.operations.plan import KeepRules, plan_prune
        from mlrepo.tui.prune import KeepTop, KeepTopScreen

        index, where_text = self.index, self.view.where

        def chosen(choice: KeepTop | None) -> None:
            if choice is not None:
                rules = KeepRules(keep_top=choice.k, metrics=(column,), per=choice.per, where=where_text)
                self.plan_then_confirm(lambda: plan_prune(index, rules), "trash")

        self.push_screen(KeepTopScreen(column), chosen)

    # -- anywhere --------------------------------------------------------------------------------------------
    def action_pick(self) -> None:
        row = self._main.selected_row()
        if row is not None:
            self.quitting = True
            self.exit(row["path"])

    async def action_quit(self) -> None:
        self.quitting = True
        self.exit()

    def action_help(self) -> None:
        from mlrepo.tui.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        seen: set[str] = set()
        keys: list[tuple[str, str]] = []
        for binding in bindings.ALL:
            if binding.system:
                continue
            name = bindings.action_name(binding)
            key = binding.key_display or self.get_key_display(binding)
            if name in seen and keys:
                keys[-1] = (f"{keys[-1][0]} {key}", keys[-1][1])
                continue
            seen.add(name)
            keys.append((key, bindings.KEY_HELP.get(name, binding.description)))
        self.push_screen(HelpScreen(keys))

    def action_reload(self) -> None:
        self.load()

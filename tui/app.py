"""The Textual app: the models table with a filter box, a detail pane and a status line, and the screens
for parameter history, disk usage, comparison and metric curves.

The index is loaded in a thread worker and handed back by message, so the UI answers keys while a large root
loads; every error from a worker surfaces as a notification, never a crash.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl
from mlrepo.commands.views.tables import model_panel
from mlrepo.commands.views.text import plain, visible, visible_frame
from mlrepo.errors import UsageError
from mlrepo.repo_index import Index, open_index
from mlrepo.repo_index.columns import resolve_column
from mlrepo.repo_index.filtering import where
from mlrepo.repo_index.index import cached_index
from mlrepo.repo_index.live import ChangeBatch, LiveIndex
from mlrepo.repo_index.ranking import direction_by_name, rank_keys
from mlrepo.repo_index.units import human_size, human_size_expr
from mlrepo.tui.palette import ActionsProvider, ModelsProvider
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState
from textual_fastdatatable import DataTable

if TYPE_CHECKING:
    from mlrepo.commands.operations.plan import Plan

GROUPING = ("repo", "line", "name")
FACTS = ("size_bytes", "updated_at", "status", "format")
MARK = "●"


@dataclass
class View:
    """What the table shows: filter, sort and columns the user chose (kept across reloads)."""

    where: str | None = None
    sort: str | None = None
    descending: bool = False
    then: list[tuple[str, bool]] = field(default_factory=list)  # earlier sorts, kept as tie-breakers

    def sort_keys(self) -> tuple[list[str], list[bool]]:
        keys = [(self.sort, self.descending), *self.then] if self.sort else []
        return [k for k, _ in keys], [d for _, d in keys]
    columns: list[str] | None = None  # None: the defaults (grouping, all metrics, params that vary)
    recent: list[str] = field(default_factory=list)  # filters used, newest first


class IndexChanged(Message):
    """Models saved, changed or removed on disk while the app is open. Each carries the whole index after the
    change, so a burst collapses into its latest message (``can_replace``), as toolong does with file events."""

    def __init__(self, batch: ChangeBatch) -> None:
        super().__init__()
        self.batch = batch

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, IndexChanged)


class IndexLoaded(Message):
    def __init__(self, index: Index, checked: bool = True) -> None:
        super().__init__()
        self.index = index
        self.checked = checked  # False: straight from the cache, the disk not yet looked at


class MlrepoApp(App[str | None]):
    """Browse the models under a root; ``p`` quits and returns the selected model's path."""

    CSS_PATH = "app.tcss"
    TITLE = "mlrepo"
    COMMANDS = App.COMMANDS | {ActionsProvider, ModelsProvider}
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="filter"),
        Binding("s", "sort", "Sort", id="sort"),
        Binding("b", "best", "Best", id="best"),
        Binding("m", "mark", "Mark", id="mark"),
        Binding("c", "compare", "Compare", id="compare"),
        Binding("h", "history", "History", id="history"),
        Binding("d", "disk", "Disk", id="disk"),
        Binding("g", "curves", "Curves", id="curves"),
        Binding("o", "choose_columns", "Columns", show=False, id="columns"),
        Binding("less_than_sign", "move_column(-1)", "Move column left", show=False, id="column_left"),
        Binding("greater_than_sign", "move_column(1)", "Move column right", show=False, id="column_right"),
        Binding("x", "remove('trash')", "Trash", id="trash"),
        Binding("a", "remove('archive')", "Archive", id="archive"),
        Binding("k", "keep_top", "Keep top K by column", show=False, id="keep_top"),
        Binding("p", "pick", "Pick", id="pick"),
        Binding("r", "reload", "Reload", show=False, id="reload"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("question_mark", "show_help_panel", "Keys", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    #: actions of the models table; other screens have their own keys and do not show these
    TABLE_ACTIONS = frozenset({"focus_filter", "sort", "best", "mark", "compare", "history", "disk", "curves",
                               "choose_columns", "move_column", "pick", "clear_filter", "remove", "keep_top"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action not in self.TABLE_ACTIONS or len(self.screen_stack) == 1

    def __init__(self, root: str, label: str | None = None, live: bool = True) -> None:
        super().__init__()
        self.root = root
        self.live_enabled = live
        self.live: LiveIndex | None = None
        self._painted = threading.Event()  # the cached table is on screen
        self.label = label or root
        self.index: Index | None = None
        self.view = View()
        self.frame: pl.DataFrame | None = None
        self.checked = False
        self.marked: set[str] = set()
        self._refresh_lock = asyncio.Lock()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter, e.g.  metrics.f1 > 0.8 and params.optimizer.name = 'sgd'   (/ to focus)",
                    id="filter")
        with Horizontal(id="body"):
            yield DataTable(id="models", data=pl.DataFrame({"loading": []}))
            with VerticalScroll(id="detail"):
                yield Static("", id="detail-body")
        yield Static(f"indexing {self.label} …", id="status")
        yield Footer()

    @property
    def main_screen(self) -> Screen:
        """The models table's screen: queries go there even while a dialog or another screen is on top."""
        return self.screen_stack[0]

    def pop_screen(self):  # noqa: ANN201 - Textual's AwaitComplete
        """Back on the models table: focus the table (the widget focused before may have been replaced)."""
        done = super().pop_screen()
        if len(self.screen_stack) == 1:
            self.call_after_refresh(self._focus_table)
        return done

    def _focus_table(self) -> None:
        for table in self.main_screen.query("#models"):  # none while a refresh swaps it: that one focuses itself
            table.focus()

    def on_mount(self) -> None:
        self.sub_title = self.label
        self.load()

    # -- loading -------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="index")
    def load(self) -> None:
        """Paint the cached table at once, then the one revalidated against the disk."""
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
            self.notify(visible(str(event.worker.error)), title="error", severity="error", timeout=8, markup=False)

    async def on_index_loaded(self, message: IndexLoaded) -> None:
        self.index = message.index
        self.checked = message.checked
        self.marked &= set(self.index.df["id"])
        await self.refresh_table()
        if not message.checked:
            self.call_after_refresh(self._painted.set)
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

    async def on_index_changed(self, message: IndexChanged) -> None:
        self.index = message.batch.index
        self.marked &= set(self.index.df["id"])
        await self.refresh_table()

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.stop()

    # -- the table -----------------------------------------------------------------------------------------
    def default_columns(self) -> list[str]:
        assert self.index is not None
        df = self.index.df
        varying = [c for c in self.index.param_columns if df[c].n_unique() > 1]
        return [*GROUPING, *self.index.metric_columns, *FACTS, *varying]

    def shown_columns(self) -> list[str]:
        assert self.index is not None
        wanted = self.view.columns or self.default_columns()
        return [c for c in wanted if c in self.index.df.columns and c != "id"]

    async def refresh_table(self, keep_cursor: bool = True, focus_id: str | None = None) -> None:
        """Apply the view to the index and show it, keeping the selected model (or ``focus_id``) and the column
        under the cursor. One refresh at a time: each swaps the table widget across awaits."""
        async with self._refresh_lock:
            await self._refresh_table(keep_cursor, focus_id)

    async def _refresh_table(self, keep_cursor: bool, focus_id: str | None) -> None:
        if self.index is None or not self.screen_stack:  # nothing yet, or the app is closing
            return
        selected = focus_id or (self.selected_id() if keep_cursor else None)
        column = self.main_screen.query_one("#models", DataTable).cursor_column
        frame = self.index.df
        filter_box = self.main_screen.query_one("#filter", Input)
        try:
            frame = where(frame, self.view.where, self.index.metrics)
            filter_box.remove_class("-error")
        except UsageError as exc:
            filter_box.add_class("-error")
            self.notify(visible(str(exc)), title="filter", severity="error", markup=False)
            return
        if self.view.sort:
            by, descending = self.view.sort_keys()
            frame = frame.sort(by, descending=descending, nulls_last=True, maintain_order=True)
        cols = self.shown_columns()
        self.frame = frame.select("id", *cols)  # the table shows a mark column where the frame has the id
        display = [
            pl.when(pl.col("id").is_in(list(self.marked))).then(pl.lit(MARK)).otherwise(pl.lit("")).alias(" "),
            pl.col(pl.Float64).round(4),
            pl.col(pl.List(pl.String)).list.join(", "),
        ]
        if "size_bytes" in cols:
            display.append(human_size_expr("size_bytes"))
        if "updated_at" in cols:
            display.append(pl.col("updated_at").dt.strftime("%Y-%m-%d %H:%M"))
        shown = visible_frame(self.frame.with_columns(display).select(" ", *cols))  # names from disk as text
        labels: list[str | Text] = [" "] + [
            plain(("size" if c == "size_bytes" else c.removeprefix("metrics."))
                  + (("▼" if self.view.descending else "▲") if c == self.view.sort else "")) for c in cols]
        await self.main_screen.query_one("#models", DataTable).remove()
        table = DataTable(id="models", data=shown, column_labels=labels, max_column_content_width=40,
                          show_row_labels=False, zebra_stripes=True, render_markup=False)
        await self.main_screen.query_one("#body", Horizontal).mount(table, before=0)
        hit = self.frame["id"].index_of(selected) if selected is not None else None
        # set at once (not after the next refresh), so keys pressed right after a refresh act on the right cell
        table.move_cursor(row=hit or 0, column=min(max(column, 1), len(cols)))
        self.call_after_refresh(table._scroll_cursor_into_view)  # a new table scrolls once it has a size
        if self.screen is self.main_screen:  # a live update may land while another screen is open
            table.focus()
        self.update_status()
        self.show_detail(hit or 0 if self.frame.height else None)

    def update_status(self) -> None:
        assert self.index is not None and self.frame is not None
        total = len(self.index)
        count = f"{self.frame.height} of {total} models" if self.frame.height != total else f"{total} models"
        size = human_size(int(self.index.df["size_bytes"].sum() or 0))
        bad = self.index.unreadable().height
        parts = [count]
        if self.view.sort:
            parts.append(f"sorted by {', then '.join(self.view.sort_keys()[0])}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if bad:
            parts.append(f"{bad} unreadable (filter: error is not null)")
        parts += [size, self.label]
        if not self.checked:
            parts.append("checking the disk …")
        self.main_screen.query_one("#status", Static).update("  ·  ".join(parts))

    def selected_id(self) -> str | None:
        if self.frame is None or self.frame.is_empty():
            return None
        row = self.main_screen.query_one("#models", DataTable).cursor_row
        return self.frame["id"][row] if 0 <= row < self.frame.height else None

    def selected_row(self) -> dict | None:
        model_id = self.selected_id()
        if model_id is None or self.index is None:
            return None
        return self.index.df.row(by_predicate=pl.col("id") == model_id, named=True)

    def show_detail(self, row_index: int | None) -> None:
        bodies = self.main_screen.query("#detail-body") if self.screen_stack else None
        if not bodies:  # the app is closing
            return
        body = bodies.first(Static)
        if self.index is None or self.frame is None or row_index is None or row_index >= self.frame.height:
            body.update("")
            return
        model_id = self.frame["id"][row_index]
        body.update(model_panel(self.index.df.row(by_predicate=pl.col("id") == model_id, named=True), self.index))

    def current_column(self) -> str | None:
        """The index column under the cursor (the table's mark column stands where the frame has the id)."""
        if self.frame is None:
            return None
        col = self.main_screen.query_one("#models", DataTable).cursor_column
        return self.frame.columns[col] if 1 <= col < self.frame.width else None

    @on(DataTable.CellHighlighted)
    def _cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self.show_detail(event.coordinate.row)

    @on(DataTable.HeaderSelected)
    async def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        if self.frame is not None and 1 <= event.column_index < self.frame.width:
            await self.sort_by(self.frame.columns[event.column_index])

    # -- filter --------------------------------------------------------------------------------------------
    @on(Input.Submitted, "#filter")
    async def _filter(self, event: Input.Submitted) -> None:
        text = event.value.strip() or None
        self.view.where = text
        await self.refresh_table()
        if text and not event.input.has_class("-error"):
            self.view.recent = [text, *(r for r in self.view.recent if r != text)][:20]
            event.input.suggester = SuggestFromList(self.view.recent, case_sensitive=False)

    def action_focus_filter(self) -> None:
        self.main_screen.query_one("#filter", Input).focus()

    async def action_clear_filter(self) -> None:
        self.main_screen.query_one("#filter", Input).value = ""
        self.view.where = None
        await self.refresh_table()

    # -- sorting and columns -------------------------------------------------------------------------------
    async def sort_by(self, column: str) -> None:
        self._sort_first(column, not self.view.descending if self.view.sort == column else False)
        await self.refresh_table()

    def _sort_first(self, column: str, descending: bool) -> None:
        """Sort by ``column``; the sort it replaces stays on as the first tie-breaker (at most two kept)."""
        view = self.view
        if view.sort and view.sort != column:
            view.then = [(view.sort, view.descending), *(k for k in view.then if k[0] != view.sort)]
        view.then = [k for k in view.then if k[0] != column][:2]
        view.sort, view.descending = column, descending

    async def action_sort(self) -> None:
        column = self.current_column()
        if column is not None:
            await self.sort_by(column)

    async def sort_best(self, metric: str) -> None:
        """Sort so the best model by ``metric`` is on top (its direction from metadata or name)."""
        assert self.index is not None
        column = resolve_column(metric, self.index.df.columns, self.index.metrics)
        key = rank_keys([column], [], self.index.df.columns, self.index.metrics)[0]
        self._sort_first(column, key.mode == "max")
        await self.refresh_table(keep_cursor=False)
        self.notify(visible(f"best first: {key.describe()}"), markup=False)

    async def action_best(self) -> None:
        column = self.current_column()
        if column is None or not column.startswith("metrics."):
            self.notify("move the cursor to a metric column first", severity="warning")
            return
        await self.sort_best(column)

    def action_choose_columns(self) -> None:
        if self.index is None:
            return
        from mlrepo.tui.columns import ColumnsScreen

        available = [c for c in self.index.df.columns if c != "id"]

        async def apply(chosen: list[str] | None) -> None:
            if chosen:
                self.view.columns = chosen
                await self.refresh_table()

        self.push_screen(ColumnsScreen(available, self.shown_columns()), apply)

    async def action_move_column(self, step: int) -> None:
        column = self.current_column()
        if column is None:
            return
        cols = self.shown_columns()
        i = cols.index(column)
        j = max(0, min(len(cols) - 1, i + step))
        cols.insert(j, cols.pop(i))
        self.view.columns = cols
        await self.refresh_table()
        self.call_after_refresh(lambda: self.main_screen.query_one("#models", DataTable).move_cursor(column=j + 1))

    # -- marks and screens ---------------------------------------------------------------------------------
    async def action_mark(self) -> None:
        model_id = self.selected_id()
        if model_id is None or self.frame is None:
            return
        self.marked ^= {model_id}
        row = self.main_screen.query_one("#models", DataTable).cursor_row
        following = self.frame["id"][min(row + 1, self.frame.height - 1)]
        await self.refresh_table(focus_id=following)

    def action_compare(self) -> None:
        if self.index is None:
            return
        ids = self.marked or ({self.selected_id()} - {None})
        if len(ids) < 2:
            self.notify("mark two or more models with m, then press c", severity="warning")
            return
        from mlrepo.tui.compare import CompareScreen

        rows = self.index.df.filter(pl.col("id").is_in(list(ids))).sort("repo", "line", "name").to_dicts()
        self.push_screen(CompareScreen(rows, self.index))

    def _history_metric(self) -> tuple[str | None, str]:
        assert self.index is not None
        for column in (self.current_column(), self.view.sort):
            if column and column.startswith("metrics."):
                info = self.index.metrics.get(column)
                mode = info.direction if info and info.direction else direction_by_name(column)
                return column, mode
        return None, "max"

    def action_history(self) -> None:
        if self.index is None or self.frame is None:
            return
        from mlrepo.tui.history import HistoryScreen

        metric, mode = self._history_metric()
        frame = self.index.df.filter(pl.col("id").is_in(self.frame["id"].implode()))
        self.push_screen(HistoryScreen(frame, metric, mode), self._jump_back)

    def action_disk(self) -> None:
        if self.index is None or self.frame is None:
            return
        from mlrepo.tui.disk import DiskScreen

        frame = self.index.df.filter(pl.col("id").is_in(self.frame["id"].implode()))
        self.push_screen(DiskScreen(frame), self._jump_back)

    def action_curves(self) -> None:
        row = self.selected_row()
        if row is not None:
            from mlrepo.tui.curves import CurvesScreen

            self.push_screen(CurvesScreen(row))

    async def _jump_back(self, model_id: str | None) -> None:
        if model_id:
            await self.jump_to(model_id)

    async def jump_to(self, model_id: str) -> None:
        """Put the cursor on a model, clearing a filter that hides it."""
        if self.frame is None:
            return
        if model_id not in self.frame["id"]:
            self.view.where = None
            self.main_screen.query_one("#filter", Input).value = ""
            await self.refresh_table()
        assert self.frame is not None
        row = self.frame["id"].index_of(model_id)
        if row is not None:
            self.main_screen.query_one("#models", DataTable).move_cursor(row=row)

    # -- prune and archive ----------------------------------------------------------------------------------
    def _act_on(self, plan: Plan, how: str) -> None:
        from mlrepo.tui.prune import PlanScreen

        async def done(report) -> None:
            if report is None:
                return
            moved, failed = len(report.succeeded), len(report.failed)
            freed = human_size(sum(o.bytes_freed for o in report.succeeded))
            text = f"{moved} models {'trashed' if how == 'trash' else 'archived'}, {freed} freed"
            if failed:
                text += f"; {failed} not moved: " + "; ".join(f"{o.label}: {o.message}" for o in report.failed[:3])
            self.notify(visible(text), title=how, severity="warning" if failed else "information", timeout=8,
                        markup=False)
            self.marked.clear()
            self.load()  # the live index follows too; this makes the statuses current at once

        self.push_screen(PlanScreen(plan, how), done)

    @work(thread=True, exclusive=True, group="plan")
    def plan_then_confirm(self, make_plan: Callable[[], Plan], how: str) -> None:
        """Plans look at every candidate's files (the recent-change rule): made in a worker, then confirmed."""
        plan = make_plan()
        self.call_from_thread(self._act_on, plan, how)

    def action_remove(self, how: str) -> None:
        """Trash or archive the marked models (or the one under the cursor), after the plan is confirmed."""
        if self.index is None or not self.checked:
            return
        from mlrepo.commands.operations.plan import plan_selection

        index, ids = self.index, sorted(self.marked) or [i for i in [self.selected_id()] if i]
        kind = "prune" if how == "trash" else "archive"
        if ids:
            self.plan_then_confirm(lambda: plan_selection(index, refs=ids, kind=kind), how)

    def action_keep_top(self) -> None:
        """A keep-top rule on the metric under the cursor, per line: the plan shows what the rest would free."""
        column = self.current_column()
        if self.index is None or not self.checked or column is None or not column.startswith("metrics."):
            self.notify("move the cursor to a metric column first", severity="warning")
            return
        from mlrepo.commands.operations.plan import KeepRules, plan_prune
        from mlrepo.tui.prune import KeepTopScreen

        index, where_text = self.index, self.view.where

        def chosen(k: int | None) -> None:
            if k is not None:
                rules = KeepRules(keep_top=k, metrics=(column,), per="line", where=where_text)
                self.plan_then_confirm(lambda: plan_prune(index, rules), "trash")

        self.push_screen(KeepTopScreen(column, "line"), chosen)

    def action_pick(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.exit(row["path"])

    def action_reload(self) -> None:
        self.load()

"""The Textual app: the models table with a filter box, a detail pane and a status line.

The index is loaded in a thread worker and handed back by message, so the UI answers keys while a large root
loads; every error from a worker surfaces as a notification, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Input, Static
from textual.worker import Worker, WorkerState
from textual_fastdatatable import DataTable

from mlrepo.commands.output import human_size
from mlrepo.commands.views import model_panel
from mlrepo.repo_index import Index, open_index
from mlrepo.repo_index.columns import UsageError, resolve_column
from mlrepo.repo_index.filtering import where
from mlrepo.repo_index.ranking import rank_keys

SHOWN = ("repo", "line", "name", "format", "status", "size_bytes", "updated_at")


@dataclass
class View:
    """What the table shows: the filter and sort the user chose (kept across reloads)."""

    where: str | None = None
    sort: str | None = None
    descending: bool = False


class IndexLoaded(Message):
    def __init__(self, index: Index) -> None:
        super().__init__()
        self.index = index


class MlrepoApp(App[str | None]):
    """Browse the models under a root; ``p`` quits and returns the selected model's path."""

    CSS_PATH = "app.tcss"
    TITLE = "mlrepo"
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="filter"),
        Binding("s", "sort", "Sort by column", id="sort"),
        Binding("b", "best", "Best by column", id="best"),
        Binding("p", "pick", "Pick & quit", id="pick"),
        Binding("r", "reload", "Reload", id="reload"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("question_mark", "show_help_panel", "Keys", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, root: str, label: str | None = None) -> None:
        super().__init__()
        self.root = root
        self.label = label or root
        self.index: Index | None = None
        self.view = View()
        self.frame: pl.DataFrame | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter, e.g.  metrics.f1 > 0.8 and params.optimizer.name = 'sgd'", id="filter")
        with Horizontal(id="body"):
            yield DataTable(id="models", data=pl.DataFrame({"loading": []}))
            with VerticalScroll(id="detail"):
                yield Static("", id="detail-body")
        yield Static(f"indexing {self.label} …", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.label
        self.load()

    # -- loading -------------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="index")
    def load(self) -> None:
        self.post_message(IndexLoaded(open_index(self.root)))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Errors of every worker end here, as a notification."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.notify(str(event.worker.error), title="error", severity="error", timeout=8)

    async def on_index_loaded(self, message: IndexLoaded) -> None:
        self.index = message.index
        await self.refresh_table()

    # -- the table -----------------------------------------------------------------------------------------
    def columns(self) -> list[str]:
        assert self.index is not None
        df = self.index.df
        varying = [c for c in self.index.param_columns if df[c].n_unique() > 1]
        return ["id", *SHOWN, *self.index.metric_columns, *varying]

    async def refresh_table(self, keep_cursor: bool = True) -> None:
        """Apply the view to the index and show it, keeping the selected model under the cursor."""
        if self.index is None:
            return
        selected = self.selected_id() if keep_cursor else None
        column = self.query_one("#models", DataTable).cursor_column
        frame = self.index.df
        filter_box = self.query_one("#filter", Input)
        try:
            frame = where(frame, self.view.where, self.index.metrics)
            filter_box.remove_class("-error")
        except UsageError as exc:
            filter_box.add_class("-error")
            self.notify(str(exc), title="filter", severity="error")
            return
        if self.view.sort:
            frame = frame.sort(self.view.sort, descending=self.view.descending, nulls_last=True,
                               maintain_order=True)
        cols = self.columns()
        self.frame = frame.select(cols)
        shown = self.frame.with_columns(
            pl.col("size_bytes").map_elements(human_size, return_dtype=pl.String),
            pl.col("updated_at").dt.strftime("%Y-%m-%d %H:%M"),
            pl.col(pl.Float64).round(4),
        )
        labels = [("size" if c == "size_bytes" else c.removeprefix("metrics."))
                  + (("▼" if self.view.descending else "▲") if c == self.view.sort else "") for c in cols]
        await self.query_one("#models", DataTable).remove()
        table = DataTable(id="models", data=shown, column_labels=labels,
                          max_column_content_width=40, show_row_labels=False, zebra_stripes=True)
        await self.query_one("#body", Horizontal).mount(table, before=0)
        hit = self.frame["id"].index_of(selected) if selected is not None else None
        self.call_after_refresh(table.move_cursor, row=hit or 0, column=min(column, len(cols) - 1))
        table.focus()
        self.update_status()
        self.show_detail(0 if self.frame.height else None)

    def update_status(self) -> None:
        assert self.index is not None and self.frame is not None
        total = len(self.index)
        count = f"{self.frame.height} of {total} models" if self.frame.height != total else f"{total} models"
        size = human_size(int(self.index.df["size_bytes"].sum() or 0))
        bad = self.index.unreadable().height
        extra = f"  ·  {bad} unreadable" if bad else ""
        sort = f"  ·  sorted by {self.view.sort}" if self.view.sort else ""
        self.query_one("#status", Static).update(f"{count}{sort}{extra}  ·  {size}  ·  {self.label}")

    def selected_id(self) -> str | None:
        if self.frame is None or self.frame.is_empty():
            return None
        row = self.query_one("#models", DataTable).cursor_row
        return self.frame["id"][row] if 0 <= row < self.frame.height else None

    def show_detail(self, row_index: int | None) -> None:
        body = self.query_one("#detail-body", Static)
        if self.index is None or self.frame is None or row_index is None or row_index >= self.frame.height:
            body.update("")
            return
        model_id = self.frame["id"][row_index]
        row = self.index.df.row(by_predicate=pl.col("id") == model_id, named=True)
        body.update(model_panel(row, self.index))

    @on(DataTable.CellHighlighted)
    def _cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self.show_detail(event.coordinate.row)

    # -- actions -------------------------------------------------------------------------------------------
    @on(Input.Submitted, "#filter")
    async def _filter(self, event: Input.Submitted) -> None:
        self.view.where = event.value.strip() or None
        await self.refresh_table()

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    async def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.view.where = None
        await self.refresh_table()

    def _current_column(self) -> str | None:
        if self.frame is None:
            return None
        col = self.query_one("#models", DataTable).cursor_column
        return self.frame.columns[col] if 0 <= col < self.frame.width else None

    async def action_sort(self) -> None:
        column = self._current_column()
        if column is None:
            return
        if self.view.sort == column:
            self.view.descending = not self.view.descending
        else:
            self.view.sort, self.view.descending = column, False
        await self.refresh_table()

    async def sort_best(self, metric: str) -> None:
        """Sort so the best model by ``metric`` is on top (its direction from metadata or name)."""
        assert self.index is not None
        column = resolve_column(metric, self.index.df.columns, self.index.metrics)
        key = rank_keys([column], [], self.index.df.columns, self.index.metrics)[0]
        self.view.sort, self.view.descending = column, key.mode == "max"
        await self.refresh_table(keep_cursor=False)
        self.notify(f"best first: {key.describe()}")

    async def action_best(self) -> None:
        column = self._current_column()
        if column is None or not column.startswith("metrics."):
            self.notify("move the cursor to a metric column first", severity="warning")
            return
        await self.sort_best(column)

    def action_pick(self) -> None:
        model_id = self.selected_id()
        if model_id is not None and self.index is not None:
            self.exit(self.index.df.row(by_predicate=pl.col("id") == model_id, named=True)["path"])

    def action_reload(self) -> None:
        self.load()

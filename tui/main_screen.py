"""The main screen: the models table with its filter box, detail pane, status line and key bar.

It owns what the table shows (the view, the rows, the marks) and the keys that act on the table alone; the app
owns the index, its loading and live updates, and the actions that open other screens or move models."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import polars as pl
from mlrepo.errors import UsageError
from mlrepo.repo_index import Index
from mlrepo.repo_index.columns import resolve_column
from mlrepo.repo_index.filtering import where
from mlrepo.repo_index.ranking import rank_keys
from mlrepo.repo_index.units import human_size
from mlrepo.tui import bindings
from mlrepo.tui.bars import KeyBar, StatusLine
from mlrepo.tui.detail import detail
from mlrepo.tui.layout import layout, mark_best
from mlrepo.tui.table import Column, ModelsTable
from mlrepo.tui.view import FACTS, GROUPING, View
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Input, Static

if TYPE_CHECKING:
    from mlrepo.tui.app import MlrepoApp


class MainScreen(Screen[None]):
    """The models table; its keys act only while it is the screen on top."""

    BINDINGS = bindings.MAIN
    NARROW = 120  # below this many columns the detail pane hides unless asked for

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.view = View()
        self.rows: pl.DataFrame | None = None  # the index filtered and sorted as shown, every column
        self.frame: pl.DataFrame | None = None  # the same rows, the id and the shown columns
        self.marked: set[str] = set()
        self.detail_choice: bool | None = None  # None: by width
        self._layout: tuple[object, list[str], list[Column]] | None = None
        self._defaults: tuple[object, list[str], int, int] | None = None  # per index: columns, unreadable, bytes
        self._detail_of: tuple[str, object] | None = None  # the model and index the detail pane shows

    @property
    def mlrepo(self) -> MlrepoApp:
        return cast("MlrepoApp", self.app)

    @property
    def index(self) -> Index | None:
        return self.mlrepo.index

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Which keys act where: the table's keys only on the table, none while typing in a box (there the
        filter box has enter and esc), none at all once quitting (keys mashed after q act on nothing)."""
        app = self.mlrepo
        if app.quitting:
            return False
        focused = app.focused
        on_table = len(app.screen_stack) == 1
        if action.startswith("table_"):
            return on_table and focused is not None and focused.id == "models"
        typing_filter = on_table and focused is not None and focused.id == "filter"
        if action in ("submit_filter", "cancel_filter"):  # the footer shows these two while the filter is typed
            return typing_filter
        if action == "clear_filter":
            return on_table and not typing_filter
        if isinstance(focused, Input):
            return False
        return action not in bindings.TABLE_ACTIONS or on_table

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter, e.g.  metrics.f1 > 0.8 and params.optimizer.name = 'sgd'   (/ to focus)",
                    id="filter")
        with Horizontal(id="body"):
            table = ModelsTable(id="models")
            table.is_marked = self.marked.__contains__
            table.dim_key = "status"
            yield table
            with VerticalScroll(id="detail"):
                yield Static("", id="detail-body")
        yield StatusLine(f"indexing {self.label} …", id="status")
        yield KeyBar(bindings.TABLE_KEYS, id="keys")

    @property
    def table(self) -> ModelsTable:
        return self.query_one("#models", ModelsTable)

    def on_mount(self) -> None:
        self.apply_detail()

    def apply_detail(self) -> None:
        """The detail pane by width unless asked for; the app's first resize comes before the pane exists."""
        panes = self.query("#detail")
        if panes:
            wide = self.app.size.width >= self.NARROW
            panes.first().display = wide if self.detail_choice is None else self.detail_choice

    def action_toggle_detail(self) -> None:
        self.detail_choice = not self.query_one("#detail").display
        self.apply_detail()

    def show_index(self) -> None:
        """A new index (loaded, or changed on disk): marks of models gone are dropped, the rows swapped."""
        assert self.index is not None
        self.marked &= set(self.index.df["id"])
        self.refresh_table()

    # -- the table -----------------------------------------------------------------------------------------
    def default_columns(self) -> list[str]:
        """Grouping, every metric, the facts, the error column where a model has one, the params that vary:
        worked out once per index (it looks at every value)."""
        assert self.index is not None
        df = self.index.df
        if self._defaults is None or self._defaults[0] is not df:
            varying = [c for c in self.index.param_columns if df[c].n_unique() > 1]
            errors = ["error"] if df["error"].null_count() < df.height else []
            self._defaults = (df, [*GROUPING, *self.index.metric_columns, *FACTS, *errors, *varying], df.height - df[
                "error"].null_count(), int(df["size_bytes"].sum() or 0))
        return list(self._defaults[1])

    def shown_columns(self) -> list[str]:
        assert self.index is not None
        wanted = self.view.columns or self.default_columns()
        return [c for c in wanted if c in self.index.df.columns and c != "id"]

    def _columns(self, cols: list[str]) -> list[Column]:
        """Widths from the values of the whole index, worked out again only when the index or columns change."""
        assert self.index is not None
        if self._layout is None or self._layout[0] is not self.index.df or self._layout[1] != cols:
            self._layout = (self.index.df, cols, layout(self.index.df, cols))
        return self._layout[2]

    def refresh_table(self, keep: str | None = None, column: str | None = None) -> None:
        """Apply the view to the index and swap the rows in place: the cursor stays on its model (or goes to
        ``keep``) and the focus stays where it is. Synchronous: a key pressed next acts on these rows."""
        if self.index is None or self.mlrepo.quitting or not self.app.screen_stack:
            return
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
            by, descending = self.view.sort_keys()
            frame = frame.sort(by, descending=descending, nulls_last=True, maintain_order=True)
        cols = self.shown_columns()
        self.rows = frame
        self.frame = frame.select("id", *cols)
        columns = mark_best(self._columns(cols), frame, self.index)
        sort = (self.view.sort, self.view.descending) if self.view.sort else None
        self.table.show(frame, columns, keep=keep, sort=sort, hint=self.empty_hint(), column=column)
        self.update_status()
        self.show_detail(self.table.current_id())

    def empty_hint(self) -> list[str]:
        assert self.index is not None
        if not len(self.index):
            return [f"No models under {self.mlrepo.root}.",
                    "mlrepo finds the folders that Cascade, MLflow, Lightning and the HF Trainer write,",
                    "and any folder with a metrics.json. To try it:  mlrepo demo /tmp/mlrepo-demo",
                    "then  mlrepo tui /tmp/mlrepo-demo  (or mlrepo tui --demo).  r reads the disk again."]
        return ["No model matches the filter.", "esc clears it; / edits it."]

    def update_status(self) -> None:
        assert self.index is not None and self.frame is not None
        total = len(self.index)
        count = f"{self.frame.height} of {total} models" if self.frame.height != total else f"{total} models"
        self.default_columns()
        assert self._defaults is not None
        bad, size = self._defaults[2], human_size(self._defaults[3])
        parts = [count]
        if self.view.sort:
            parts.append(f"sorted by {self.view.sort_text()}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if bad:
            parts.append(f"{bad} unreadable (filter: error is not null)")
        parts += [size, self.label]
        if not self.mlrepo.checked:
            parts.append("checking the disk …")
        self.query_one("#status", StatusLine).show("  ·  ".join(parts))

    def selected_id(self) -> str | None:
        return self.table.current_id() if self.app.screen_stack else None

    def selected_row(self) -> dict | None:
        model_id = self.selected_id()
        if model_id is None or self.index is None:
            return None
        return self.index.df.row(by_predicate=pl.col("id") == model_id, named=True)

    def show_detail(self, model_id: str | None) -> None:
        bodies = self.query("#detail-body") if self.app.screen_stack else None
        if not bodies:  # the app is closing
            return
        body = bodies.first(Static)
        if self.index is None or model_id is None:
            self._detail_of = None
            body.update("")
            return
        if self._detail_of and self._detail_of[0] == model_id and self._detail_of[1] is self.index.df:
            return
        self._detail_of = (model_id, self.index.df)
        row = self.index.df.row(by_predicate=pl.col("id") == model_id, named=True)
        body.update(detail(row, self.index))

    def current_column(self) -> str | None:
        """The index column under the cursor."""
        return self.table.current_key() if self.frame is not None else None

    @on(ModelsTable.Highlighted)
    def _highlighted(self, event: ModelsTable.Highlighted) -> None:
        self.show_detail(event.model_id)

    @on(ModelsTable.HeaderClicked)
    def _header_clicked(self, event: ModelsTable.HeaderClicked) -> None:
        self.sort_by(event.key)

    # -- filter --------------------------------------------------------------------------------------------
    def action_submit_filter(self) -> None:
        """Enter in the filter box: the keys go back to the table at once (keys typed right after act there), and
        the filter is applied once the box has taken the characters typed before the enter (they wait in its own
        queue: reading its value now could miss the last of them). A bad filter gives the box the keys back."""
        box = self.query_one("#filter", Input)
        self.focus_now(self.table)
        box.call_later(self._apply_filter, box)

    def _apply_filter(self, box: Input) -> None:
        text = box.value.strip() or None
        self.view.where = text
        self.refresh_table()
        if box.has_class("-error"):
            self.focus_now(box)
        elif text:
            self.view.recent = [text, *(r for r in self.view.recent if r != text)][:20]
            box.suggester = SuggestFromList(self.view.recent, case_sensitive=False)

    def action_table_move(self, rows: int, columns: int) -> None:
        self.table.action_move(rows, columns)

    def action_table_page(self, direction: int) -> None:
        self.table.action_page(direction)

    def action_table_edge(self, direction: int) -> None:
        self.table.action_edge(direction)

    def focus_now(self, widget: Widget) -> None:
        """Move the focus before the next key is handled. ``Widget.focus()`` waits for the message queue, so a key
        already queued behind ``/`` (typed fast, or while live updates queue up) still went to the table."""
        self.set_focus(widget)
        self.show_keys()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.show_keys()

    def show_keys(self) -> None:
        if self.app.screen_stack:
            typing = self.focused is not None and self.focused.id == "filter"
            self.query_one("#keys", KeyBar).show(bindings.FILTER_KEYS if typing else bindings.TABLE_KEYS)

    def action_focus_filter(self) -> None:
        self.focus_now(self.query_one("#filter", Input))

    def action_cancel_filter(self) -> None:
        """Esc in the filter box: as for enter, the box is cleared after the characters typed before the esc."""
        box = self.query_one("#filter", Input)
        self.focus_now(self.table)
        box.call_later(self.action_clear_filter)

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.view.where = None
        self.refresh_table()
        self.focus_now(self.table)

    # -- sorting, columns, marks ---------------------------------------------------------------------------
    def sort_by(self, column: str) -> None:
        self.view.sort_first(column, not self.view.descending if self.view.sort == column else False)
        self.refresh_table()

    def action_sort(self) -> None:
        column = self.current_column()
        if column is not None:
            self.sort_by(column)

    def sort_best(self, metric: str) -> None:
        """Sort so the best model by ``metric`` is on top (its direction from metadata or name)."""
        assert self.index is not None
        column = resolve_column(metric, self.index.df.columns, self.index.metrics)
        key = rank_keys([column], [], self.index.df.columns, self.index.metrics)[0]
        self.view.sort_first(column, key.mode == "max")
        self.refresh_table()
        if self.rows is not None and self.rows.height:
            self.table.move_to(self.rows["id"][0])
        self.notify(f"best first: {key.describe()}")

    def action_best(self) -> None:
        column = self.current_column()
        if column is None or not column.startswith("metrics."):
            self.notify("move the cursor to a metric column first", severity="warning")
            return
        self.sort_best(column)

    def action_choose_columns(self) -> None:
        if self.index is None:
            return
        from mlrepo.tui.columns import ColumnsScreen

        available = [c for c in self.index.df.columns if c != "id"]

        def apply(chosen: list[str] | None) -> None:
            if chosen:
                self.view.columns = chosen
                self.refresh_table()

        self.app.push_screen(ColumnsScreen(available, self.shown_columns()), apply)

    def action_move_column(self, step: int) -> None:
        column = self.current_column()
        if column is None:
            return
        cols = self.shown_columns()
        i = cols.index(column)
        cols.insert(max(0, min(len(cols) - 1, i + step)), cols.pop(i))
        self.view.columns = cols
        self.refresh_table(column=column)

    def action_mark(self) -> None:
        """Mark or unmark the model and step down: the rows stay, only their marks are painted again."""
        model_id = self.selected_id()
        if model_id is None:
            return
        self.marked ^= {model_id}
        self.table.refresh_row(self.table.cursor_row)
        self.table.action_move(1, 0)
        self.update_status()

    def jump_to(self, model_id: str) -> None:
        """Put the cursor on a model, clearing a filter that hides it."""
        if self.frame is None:
            return
        if not self.table.move_to(model_id):
            self.view.where = None
            self.query_one("#filter", Input).value = ""
            self.refresh_table(keep=model_id)

    def action_copy_path(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.app.copy_to_clipboard(row["path"])
            self.notify(row["path"], title="path copied")

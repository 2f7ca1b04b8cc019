"""The Textual app: the models table with a filter box, a detail pane and a status line, and the screens
for parameter history, disk usage, comparison and metric curves.

The index is loaded in a thread worker and handed back by message, so the UI answers keys while a large root
loads; every error from a worker surfaces as a notification, never a crash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl
from mlrepo.errors import UsageError
from mlrepo.repo_index import Index, open_index
from mlrepo.repo_index.columns import resolve_column
from mlrepo.repo_index.filtering import where
from mlrepo.repo_index.index import cached_index
from mlrepo.repo_index.live import ChangeBatch, LiveIndex
from mlrepo.repo_index.ranking import direction_by_name, rank_keys
from mlrepo.repo_index.units import human_size
from mlrepo.tui.bars import KeyBar, StatusLine
from mlrepo.tui.detail import detail
from mlrepo.tui.layout import label_of, layout, mark_best
from mlrepo.tui.palette import ActionsProvider, ModelsProvider
from mlrepo.tui.table import Column, ModelsTable
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from mlrepo.commands.operations import How
    from mlrepo.commands.operations.plan import Plan

GROUPING = ("repo", "line", "name")
FACTS = ("size_bytes", "updated_at", "status", "format")


@dataclass
class View:
    """What the table shows: filter, sort and columns the user chose (kept across reloads)."""

    where: str | None = None
    sort: str | None = None
    descending: bool = False
    then: list[tuple[str, bool]] = field(default_factory=list)  # earlier sorts, kept as tie-breakers
    columns: list[str] | None = None  # None: the defaults (grouping, all metrics, params that vary)
    recent: list[str] = field(default_factory=list)  # filters used, newest first

    def sort_keys(self) -> tuple[list[str], list[bool]]:
        keys = [(self.sort, self.descending), *self.then] if self.sort else []
        return [k for k, _ in keys], [d for _, d in keys]


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
    AUTO_FOCUS = "#models"
    COMMANDS = {ActionsProvider, ModelsProvider} | App.COMMANDS  # type: ignore[operator]  # Textual's own set
    BINDINGS = [
        Binding("slash", "focus_filter", "Filter", id="filter"),
        Binding("s", "sort", "Sort", id="sort"),
        Binding("b", "best", "Best", id="best"),
        Binding("m", "mark", "Mark", id="mark"),
        Binding("c", "compare", "Compare", id="compare"),
        Binding("h", "history", "History", id="history"),
        Binding("d", "disk", "Disk", id="disk"),
        Binding("g", "curves", "Curves", id="curves"),
        Binding("o", "choose_columns", "Choose columns", show=False, id="columns"),
        Binding("less_than_sign", "move_column(-1)", "Move column left", show=False, id="column_left"),
        Binding("greater_than_sign", "move_column(1)", "Move column right", show=False, id="column_right"),
        Binding("x", "remove('trash')", "Trash", id="trash"),
        Binding("a", "remove('archive')", "Archive", id="archive"),
        Binding("k", "keep_top", "Keep top K by this metric", show=False, id="keep_top"),
        Binding("y", "copy_path", "Copy path", show=False, id="copy_path"),
        Binding("i", "toggle_detail", "Detail pane", show=False, id="detail"),
        Binding("p", "pick", "Pick", id="pick"),
        Binding("r", "reload", "Reload", show=False, id="reload"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("enter", "submit_filter", "Apply filter", id="submit_filter"),
        Binding("escape", "cancel_filter", "Clear filter", id="cancel_filter"),
        Binding("question_mark", "help", "Keys", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        *(Binding(key, f"table_{action}", "", show=False, system=True) for key, action in [
            ("up", "move(-1, 0)"), ("down", "move(1, 0)"), ("left", "move(0, -1)"), ("right", "move(0, 1)"),
            ("pageup", "page(-1)"), ("pagedown", "page(1)"), ("home", "edge(-1)"), ("end", "edge(1)")]),
    ]
    # Every key of the table is handled here, in the order typed, before Textual hands keys to the focused
    # widget: a key queued behind "/" (or behind enter in the filter box) while the app was busy went to the
    # widget that had the focus when it was queued, and a mark queued behind an arrow acted before the arrow.
    BINDINGS = [Binding(b.key, b.action, b.description, show=b.show, id=b.id, system=b.system, priority=True)
                for b in BINDINGS if isinstance(b, Binding)]
    KEY_HELP = {"focus_filter": "filter with the --where language; enter applies, esc clears",
            "sort": "sort by the column under the cursor (again: reverse); the old sort breaks ties",
            "best": "sort so the best model by the metric under the cursor is on top",
            "mark": "mark or unmark the model, then c, x or a act on the marked ones",
            "compare": "marked models side by side, differences highlighted",
            "history": "parameter history of the lines shown: each model under its closest ancestor",
            "disk": "disk usage, repo → line → model → files, largest first",
            "curves": "the metrics the model logged over steps",
            "choose_columns": "choose the columns shown", "move_column": "move the column under the cursor",
            "remove": "trash (x) or archive (a) the marked models, after a plan you confirm",
            "keep_top": "keep the top K by the metric under the cursor per line, repo or all; trash the rest",
            "copy_path": "copy the model's path to the clipboard",
            "toggle_detail": "show or hide the detail pane (hidden by default below 120 columns)",
            "pick": "quit, printing the model's path (cp -r \"$(mlrepo tui)\" deploy/)",
            "reload": "read the disk again", "clear_filter": "clear the filter",
            "submit_filter": "in the filter box: apply it, back to the table",
            "cancel_filter": "in the filter box: clear it, back to the table", "help": "this help",
            "quit": "quit"}
    #: actions of the models table; other screens have their own keys and do not show these
    TABLE_ACTIONS = frozenset({"focus_filter", "sort", "best", "mark", "compare", "history", "disk", "curves",
                               "choose_columns", "move_column", "pick", "clear_filter", "remove", "keep_top",
                               "copy_path", "toggle_detail"})
    TABLE_KEYS = [("/", "Filter"), ("s", "Sort"), ("b", "Best"), ("m", "Mark"), ("c", "Compare"), ("h", "History"),
                  ("d", "Disk"), ("g", "Curves"), ("x", "Trash"), ("a", "Archive"), ("p", "Pick"), ("?", "Keys"),
                  ("q", "Quit")]
    FILTER_KEYS = [("⏎", "Apply filter"), ("esc", "Clear filter"), ("tab", "Back to the table")]
    NARROW = 120  # below this many columns the detail pane hides unless asked for

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Which keys act where: the table's keys only on the table, none while typing in a box (there the
        filter box has enter and esc), none at all once quitting (keys mashed after q act on nothing)."""
        if self.quitting:
            return False
        focused = self.focused
        on_table = len(self.screen_stack) == 1
        if action.startswith("table_"):
            return on_table and focused is not None and focused.id == "models"
        typing_filter = on_table and focused is not None and focused.id == "filter"
        if action in ("submit_filter", "cancel_filter"):  # the footer shows these two while the filter is typed
            return typing_filter
        if action == "clear_filter":
            return on_table and not typing_filter
        if isinstance(focused, Input):
            return False
        return action not in self.TABLE_ACTIONS or on_table

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
        self.view = View()
        self.rows: pl.DataFrame | None = None  # the index filtered and sorted as shown, every column
        self.frame: pl.DataFrame | None = None  # the same rows, the id and the shown columns
        self.checked = False
        self.quitting = False
        self.detail_choice: bool | None = None  # None: by width
        self.marked: set[str] = set()
        self._layout: tuple[object, list[str], list[Column]] | None = None
        self._defaults: tuple[object, list[str], int, int] | None = None  # per index: columns, unreadable, bytes
        self._detail_of: tuple[str, object] | None = None  # the model and index the detail pane shows

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
        yield KeyBar(self.TABLE_KEYS, id="keys")

    @property
    def main_screen(self) -> Screen:
        """The models table's screen: queries go there even while a dialog or another screen is on top."""
        return self.screen_stack[0]

    @property
    def table(self) -> ModelsTable:
        return self.main_screen.query_one("#models", ModelsTable)

    def on_mount(self) -> None:
        self.sub_title = self.label
        self.load()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_detail()

    def _apply_detail(self) -> None:
        wide = self.size.width >= self.NARROW
        self.main_screen.query_one("#detail").display = wide if self.detail_choice is None else self.detail_choice

    def action_toggle_detail(self) -> None:
        self.detail_choice = not self.main_screen.query_one("#detail").display
        self._apply_detail()

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
        self.marked &= set(self.index.df["id"])
        self.refresh_table()
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
        self.marked &= set(self.index.df["id"])
        self.refresh_table()

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.stop()

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
        if self.index is None or self.quitting or not self.screen_stack:
            return
        frame = self.index.df
        filter_box = self.main_screen.query_one("#filter", Input)
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
            return [f"No models under {self.root}.",
                    "mlrepo finds the folders that Cascade, MLflow, Lightning and the HF Trainer write,",
                    "and any folder with a metrics.json. To try it:  mlrepo demo /tmp/mlrepo-demo",
                    "then  mlrepo tui /tmp/mlrepo-demo  (or mlrepo tui --demo).  r reads the disk again."]
        return ["No model matches the filter.", "esc clears it; / edits it."]

    def sort_text(self) -> str:
        keys = [(self.view.sort, self.view.descending), *self.view.then] if self.view.sort else []
        return ", then ".join(f"{label_of(k)} {'▼ desc' if d else '▲ asc'}" for k, d in keys)

    def update_status(self) -> None:
        assert self.index is not None and self.frame is not None
        total = len(self.index)
        count = f"{self.frame.height} of {total} models" if self.frame.height != total else f"{total} models"
        self.default_columns()
        assert self._defaults is not None
        bad, size = self._defaults[2], human_size(self._defaults[3])
        parts = [count]
        if self.view.sort:
            parts.append(f"sorted by {self.sort_text()}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        if bad:
            parts.append(f"{bad} unreadable (filter: error is not null)")
        parts += [size, self.label]
        if not self.checked:
            parts.append("checking the disk …")
        self.main_screen.query_one("#status", StatusLine).show("  ·  ".join(parts))

    def selected_id(self) -> str | None:
        return self.table.current_id() if self.screen_stack else None

    def selected_row(self) -> dict | None:
        model_id = self.selected_id()
        if model_id is None or self.index is None:
            return None
        return self.index.df.row(by_predicate=pl.col("id") == model_id, named=True)

    def show_detail(self, model_id: str | None) -> None:
        bodies = self.main_screen.query("#detail-body") if self.screen_stack else None
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
        box = self.main_screen.query_one("#filter", Input)
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
        self.main_screen.set_focus(widget)
        self._show_keys()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._show_keys()

    def _show_keys(self) -> None:
        if self.screen_stack:
            typing = self.main_screen.focused is not None and self.main_screen.focused.id == "filter"
            self.main_screen.query_one("#keys", KeyBar).show(self.FILTER_KEYS if typing else self.TABLE_KEYS)

    def action_focus_filter(self) -> None:
        self.focus_now(self.main_screen.query_one("#filter", Input))

    def action_cancel_filter(self) -> None:
        """Esc in the filter box: as for enter, the box is cleared after the characters typed before the esc."""
        box = self.main_screen.query_one("#filter", Input)
        self.focus_now(self.table)
        box.call_later(self.action_clear_filter)

    def action_clear_filter(self) -> None:
        self.main_screen.query_one("#filter", Input).value = ""
        self.view.where = None
        self.refresh_table()
        self.focus_now(self.table)

    # -- sorting and columns -------------------------------------------------------------------------------
    def sort_by(self, column: str) -> None:
        self._sort_first(column, not self.view.descending if self.view.sort == column else False)
        self.refresh_table()

    def _sort_first(self, column: str, descending: bool) -> None:
        """Sort by ``column``; the sort it replaces stays on as the first tie-breaker (at most two kept)."""
        view = self.view
        if view.sort and view.sort != column:
            view.then = [(view.sort, view.descending), *(k for k in view.then if k[0] != view.sort)]
        view.then = [k for k in view.then if k[0] != column][:2]
        view.sort, view.descending = column, descending

    def action_sort(self) -> None:
        column = self.current_column()
        if column is not None:
            self.sort_by(column)

    def sort_best(self, metric: str) -> None:
        """Sort so the best model by ``metric`` is on top (its direction from metadata or name)."""
        assert self.index is not None
        column = resolve_column(metric, self.index.df.columns, self.index.metrics)
        key = rank_keys([column], [], self.index.df.columns, self.index.metrics)[0]
        self._sort_first(column, key.mode == "max")
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

        self.push_screen(ColumnsScreen(available, self.shown_columns()), apply)

    def action_move_column(self, step: int) -> None:
        column = self.current_column()
        if column is None:
            return
        cols = self.shown_columns()
        i = cols.index(column)
        cols.insert(max(0, min(len(cols) - 1, i + step)), cols.pop(i))
        self.view.columns = cols
        self.refresh_table(column=column)

    # -- marks and screens ---------------------------------------------------------------------------------
    def action_mark(self) -> None:
        """Mark or unmark the model and step down: the rows stay, only their marks are painted again."""
        model_id = self.selected_id()
        if model_id is None:
            return
        self.marked ^= {model_id}
        self.table.refresh_row(self.table.cursor_row)
        self.table.action_move(1, 0)
        self.update_status()

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
        if self.index is None or self.rows is None:
            return
        from mlrepo.tui.history import HistoryScreen

        metric, mode = self._history_metric()
        self.push_screen(HistoryScreen(self.rows, metric, mode, self.selected_id()), self._jump_back)

    def action_disk(self) -> None:
        if self.index is None or self.rows is None:
            return
        from mlrepo.tui.disk import DiskScreen

        self.push_screen(DiskScreen(self.rows), self._jump_back)

    def action_curves(self) -> None:
        row = self.selected_row()
        if row is not None:
            from mlrepo.tui.curves import CurvesScreen

            self.push_screen(CurvesScreen(row))

    def _jump_back(self, model_id: str | None) -> None:
        if model_id:
            self.jump_to(model_id)

    def jump_to(self, model_id: str) -> None:
        """Put the cursor on a model, clearing a filter that hides it."""
        if self.frame is None:
            return
        if not self.table.move_to(model_id):
            self.view.where = None
            self.main_screen.query_one("#filter", Input).value = ""
            self.refresh_table(keep=model_id)

    def action_copy_path(self) -> None:
        row = self.selected_row()
        if row is not None:
            self.copy_to_clipboard(row["path"])
            self.notify(row["path"], title="path copied")

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

        index, ids = self.index, sorted(self.marked) or [i for i in [self.selected_id()] if i]
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
        column = self.current_column()
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

    def action_pick(self) -> None:
        row = self.selected_row()
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
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.system:
                continue
            name = binding.action.split("(")[0]
            key = binding.key_display or self.get_key_display(binding)
            if name in seen and keys:
                keys[-1] = (f"{keys[-1][0]} {key}", keys[-1][1])
                continue
            seen.add(name)
            keys.append((key, self.KEY_HELP.get(name, binding.description)))
        self.push_screen(HelpScreen(keys))

    def action_reload(self) -> None:
        self.load()


"""The models table: one widget for the app's whole life, whose rows are swapped in place.

Textual's DataTable (and textual-fastdatatable) are rebuilt or remounted to change their data; at 100k models that
took up to a second, and keys typed meanwhile went to whatever held the focus. This table keeps a polars frame and
formats only the rows on screen (the Line API), so a new sort, filter, mark or live update is one assignment: the
cursor stays on its model, the focus never moves, and a key typed right after acts on the new rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

import polars as pl
from mlrepo.commands.views.text import visible
from mlrepo.repo_index.units import human_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Kind = Literal["text", "float", "int", "size", "time", "list"]
MARK = "●"
MARK_WIDTH = 2
WINDOW = 256  # rows formatted per fetch from the frame


@dataclass(frozen=True, slots=True)
class Column:
    """How one index column is shown: its width comes from the values, not the header."""

    key: str
    label: str
    width: int
    kind: Kind
    decimals: int = 0
    best: float | None = None  # the best value among the rows shown (metric columns)

    @property
    def right(self) -> bool:
        return self.kind in ("float", "int", "size")

    def format(self, value: object) -> str:
        if value is None:
            return ""
        if self.kind == "float" and isinstance(value, float):
            return f"{value:.{self.decimals}f}" if value == value else "nan"
        if self.kind == "size" and isinstance(value, int):
            return human_size(value)
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, list):
            return visible(", ".join(map(str, value)))
        return visible(str(value))


def fit_label(text: str, width: int, right: bool) -> str:
    """A header cut in the middle: ``accuracy.cifar10.val`` and ``.test`` stay told apart by their ends."""
    if len(text) <= width:
        return text.rjust(width) if right else text.ljust(width)
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def fit(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…"
    return text.rjust(width) if right else text.ljust(width)


class ModelsTable(ScrollView, can_focus=True):
    """Rows of a polars frame (its ``id`` column keys them), a row cursor and a current column. The app binds the
    keys that move the cursor (see ``MlrepoApp.BINDINGS``: all table keys are handled in one place, in order)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "models--header", "models--header-current", "models--cursor", "models--cursor-cell", "models--dim",
        "models--best", "models--mark", "models--stripe", "models--hint",
    }
    DEFAULT_CSS = """
    ModelsTable { background: $surface; overflow-x: hidden; }
    ModelsTable > .models--header { background: $panel; text-style: bold; }
    ModelsTable > .models--header-current { background: $panel; color: $accent; text-style: bold underline; }
    ModelsTable > .models--cursor { background: $surface-lighten-2; }
    ModelsTable:focus > .models--cursor { background: $primary 45%; }
    ModelsTable > .models--cursor-cell { text-style: bold; }
    ModelsTable:focus > .models--cursor-cell { background: $primary 80%; text-style: bold; }
    ModelsTable > .models--dim { color: $text-muted; }
    ModelsTable > .models--best { color: $text-success; }
    ModelsTable > .models--mark { color: $warning; text-style: bold; }
    ModelsTable > .models--stripe { background: $surface-lighten-1; }
    ModelsTable > .models--hint { color: $text-muted; }
    """
    class Highlighted(Message):
        """The cursor is on another model (or on none)."""

        def __init__(self, model_id: str | None) -> None:
            super().__init__()
            self.model_id = model_id

    class HeaderClicked(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.frame = pl.DataFrame({"id": []}, schema={"id": pl.String})
        self.columns: list[Column] = []
        self.sort: tuple[str, bool] | None = None  # (column, descending), shown in its header
        self.is_marked: Callable[[str], bool] = lambda _id: False
        self.dim_key: str | None = None  # rows whose value here is not "active" are dimmed
        self.hint: list[str] = []  # shown when there are no rows
        self.cursor_row = 0
        self.cursor_column = 0
        self.left = 0  # first column on screen (columns scroll whole)
        self._window: tuple[int, list[tuple]] = (-1, [])
        self._highlighted: str | None = None
        self._styles: dict[str, Style] | None = None  # looked up once per change of theme or focus, not per line

    # -- data -----------------------------------------------------------------------------------------------
    def show(self, frame: pl.DataFrame, columns: list[Column], *, keep: str | None = None,
             sort: tuple[str, bool] | None = None, hint: list[str] | None = None,
             column: str | None = None) -> None:
        """Swap in new rows: the cursor goes to ``keep`` (the model it was on, by default) where that model is
        still shown, else stays at its row; it keeps its place on screen, and its column (or goes to ``column``)."""
        old_key = self.current_key()
        keep = keep if keep is not None else self.current_id()
        offset = self.cursor_row - int(self.scroll_y)
        self.frame, self.columns, self.sort, self.hint = frame, columns, sort, hint or []
        self._window = (-1, [])
        row = frame["id"].index_of(keep) if keep is not None and frame.height else None
        self.cursor_row = max(0, min(row if row is not None else self.cursor_row, frame.height - 1))
        keys = [c.key for c in columns]
        want = column or old_key
        self.cursor_column = keys.index(want) if want in keys else min(self.cursor_column, max(len(keys) - 1, 0))
        self.virtual_size = Size(self.size.width, frame.height + 1)
        self.scroll_to(y=max(0, self.cursor_row - max(offset, 0)), animate=False, immediate=True)
        self._follow_cursor()
        self.refresh()
        self._announce()

    def current_id(self) -> str | None:
        if 0 <= self.cursor_row < self.frame.height:
            return self.frame["id"][self.cursor_row]
        return None

    def current_key(self) -> str | None:
        return self.columns[self.cursor_column].key if 0 <= self.cursor_column < len(self.columns) else None

    def move_to(self, model_id: str) -> bool:
        row = self.frame["id"].index_of(model_id) if self.frame.height else None
        if row is None:
            return False
        self._set_cursor(row, self.cursor_column)
        return True

    def refresh_row(self, row: int) -> None:
        """One row changed (a mark): only its line is painted again."""
        self.refresh_line(row + 1)

    # -- cursor -----------------------------------------------------------------------------------------------
    def _set_cursor(self, row: int, column: int) -> None:
        """Move the cursor; unless the view scrolled, only the two rows (and the header) are painted again."""
        before = (self.cursor_row, self.cursor_column, int(self.scroll_y), self.left)
        self.cursor_row = max(0, min(row, self.frame.height - 1))
        self.cursor_column = max(0, min(column, len(self.columns) - 1))
        self._follow_cursor()
        if (int(self.scroll_y), self.left) == before[2:]:
            self.refresh_line(before[0] + 1)
            self.refresh_line(self.cursor_row + 1)
            if self.cursor_column != before[1]:
                self.refresh_line(int(self.scroll_y))  # the header: the current column is marked there
        else:
            self.refresh()
        self._announce()

    def _announce(self) -> None:
        model_id = self.current_id()
        if model_id != self._highlighted:
            self._highlighted = model_id
            self.post_message(self.Highlighted(model_id))

    def _body_height(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _follow_cursor(self) -> None:
        top, height = int(self.scroll_y), self._body_height()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False, immediate=True)
        self.left = min(self.left, self.cursor_column)
        width = self.scrollable_content_region.width - MARK_WIDTH
        while self.left < self.cursor_column and sum(c.width + 2 for c in self.columns[self.left:self.cursor_column + 1]) > width:
            self.left += 1

    def action_move(self, rows: int, columns: int) -> None:
        self._set_cursor(self.cursor_row + rows, self.cursor_column + columns)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor_row + direction * self._body_height(), self.cursor_column)

    def action_edge(self, direction: int) -> None:
        self._set_cursor(0 if direction < 0 else self.frame.height - 1, self.cursor_column)

    def _on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, self.frame.height + 1)
        self._follow_cursor()

    def _column_at(self, x: int) -> int | None:
        x -= MARK_WIDTH
        for i in range(self.left, len(self.columns)):
            x -= self.columns[i].width + 2
            if x < 0:
                return i
        return None

    async def _on_click(self, event: events.Click) -> None:
        column = self._column_at(event.x)
        if event.y == 0:
            if column is not None:
                self.post_message(self.HeaderClicked(self.columns[column].key))
            return
        row = int(self.scroll_y) + event.y - 1
        if row < self.frame.height:
            self._set_cursor(row, column if column is not None else self.cursor_column)

    # -- rendering --------------------------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        self._styles = None
        super().notify_style_update()

    def _on_focus(self, event: events.Focus) -> None:
        self._styles = None
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._styles = None
        self.refresh()

    def _style(self, name: str) -> Style:
        if self._styles is None:
            self._styles = {"base": self.rich_style}
            self._styles |= {c: self.get_component_rich_style(c, partial=True) for c in self.COMPONENT_CLASSES}
            for name in ("models--header", "models--header-current"):  # whole: their background is their own
                self._styles[name] = self.get_component_rich_style(name)
        return self._styles[name]

    def _row(self, index: int) -> tuple:
        start, rows = self._window
        if not start <= index < start + len(rows):
            start = max(0, index - WINDOW // 4)
            exprs = [pl.col("id"), *(pl.col(c.key) for c in self.columns)]
            if self.dim_key and self.dim_key in self.frame.columns:
                exprs.append(pl.col(self.dim_key).alias("\0dim"))
            rows = self.frame.slice(start, WINDOW).select(exprs).rows()
            self._window = (start, rows)
        return rows[index - start]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._style("base")
        if y == 0:
            return self._header(width, base)
        index = int(self.scroll_y) + y - 1
        if index >= self.frame.height:
            hint = self.hint[index - self.frame.height] if not self.frame.height and index < len(self.hint) else ""
            style = base + self._style("models--hint")
            return Strip([Segment(fit(f"  {hint}" if hint else "", width, False), style)]).crop(0, width)
        return self._body(index, width, base)

    def _header(self, width: int, base: Style) -> Strip:
        header = base + self._style("models--header")
        current = base + self._style("models--header-current")
        segments = [Segment(" " * MARK_WIDTH, header)]
        for i in range(self.left, len(self.columns)):
            column = self.columns[i]
            arrow = ("▼" if self.sort[1] else "▲") if self.sort and self.sort[0] == column.key else " "
            segments.append(Segment(" " + fit_label(column.label, column.width, column.right) + arrow,
                                    current if i == self.cursor_column else header))
        return Strip(segments).extend_cell_length(width, header).crop(0, width)

    def _body(self, index: int, width: int, base: Style) -> Strip:
        values = self._row(index)
        model_id = values[0]
        cursor = index == self.cursor_row
        style = base
        if cursor:
            style += self._style("models--cursor")
        elif index % 2:
            style += self._style("models--stripe")
        if self.dim_key and len(values) > len(self.columns) + 1 and values[-1] not in (None, "active"):
            style += self._style("models--dim")
        marked = self.is_marked(model_id)
        mark_style = style + self._style("models--mark")
        segments = [Segment(f"{MARK} " if marked else "  ", mark_style)]
        best = self._style("models--best")
        cell_cursor = self._style("models--cursor-cell")
        for i in range(self.left, len(self.columns)):
            column = self.columns[i]
            value = values[1 + i]
            text = visible(column.format(value))
            cell_style = style
            if column.best is not None and value is not None and value == column.best:
                cell_style += best
            if cursor and i == self.cursor_column:
                cell_style += cell_cursor
            segments.append(Segment(" " + fit(text, column.width, column.right) + " ", cell_style))
        return Strip(segments).extend_cell_length(width, style).crop(0, width)

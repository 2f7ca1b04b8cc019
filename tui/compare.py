"""Compare screen: marked models side by side, differing params and metrics highlighted."""

from __future__ import annotations

from mlrepo.commands.views.text import cell
from mlrepo.repo_index import Index
from mlrepo.repo_index.labels import model_label
from mlrepo.tui.bars import KeyBar
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static


def compare_table(rows: list[dict], index: Index, only_differences: bool) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("key")
    for row in rows:
        table.add_column(model_label(row))
    for col in ["size_bytes", *index.metric_columns, *index.param_columns]:
        values = [row.get(col) for row in rows]
        if all(v is None for v in values):
            continue
        differs = len({repr(v) for v in values}) > 1
        if only_differences and not differs:
            continue
        style = "bold yellow" if differs else "dim"
        table.add_row(Text(col, style=style), *(Text(cell(v, col), style=style) for v in values))
    return table


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,c", "app.pop_screen", "Back", id="compare.back"),
        Binding("a", "toggle_all", "All keys / differences", id="compare.all"),
    ]

    def __init__(self, rows: list[dict], index: Index) -> None:
        super().__init__()
        self.rows, self.index, self.only_differences = rows, index, True

    def compose(self) -> ComposeResult:
        yield Static(f"Compare {len(self.rows)} models · differences in yellow", id="screen-title")
        with VerticalScroll():
            yield Static(compare_table(self.rows, self.index, True), id="compare-body")
        yield KeyBar([("esc", "Back"), ("a", "All keys / only differences"), ("?", "Keys"), ("q", "Quit")])

    def action_toggle_all(self) -> None:
        self.only_differences = not self.only_differences
        self.query_one("#compare-body", Static).update(compare_table(self.rows, self.index, self.only_differences))

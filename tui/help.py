"""The keys, mlrepo's own first: ``?`` opens and closes it, ``esc`` closes it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

MOVING = [("↑ ↓ ← →", "move the cursor (← → choose the column that s, b, k and < > act on)"),
          ("pgup pgdn home end", "page, first and last model"), ("click a header", "sort by it"),
          ("ctrl+p", "command palette: every action, and a model by words of its name (vit 00003)")]
SCREENS = [("esc or its own key", "leaves history (h), disk (d), compare (c), curves (g)"),
           ("enter", "on a model in history or disk: back to the table, the cursor on it")]


def keys_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.title, table.title_justify, table.title_style = title, "left", "bold underline"
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    for key, what in rows:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(Text("Keys  ·  ? or esc closes", style="bold"), id="screen-title")
            with VerticalScroll():
                yield Static(keys_table("mlrepo", self.keys), id="help-keys")
                yield Static(keys_table("\nmoving", MOVING))
                yield Static(keys_table("\nother screens", SCREENS))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)

"""Choose which columns the models table shows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, SelectionList, Static
from textual.widgets.selection_list import Selection


class ColumnsScreen(ModalScreen[list[str] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="columns.cancel")]

    def __init__(self, available: list[str], shown: list[str]) -> None:
        super().__init__()
        self.available, self.shown = available, shown

    def compose(self) -> ComposeResult:
        with Vertical(id="columns-dialog"):
            yield Static("Columns (space toggles; < and > in the table move a column)", id="screen-title")
            yield SelectionList[str](*(Selection(c, c, c in self.shown) for c in self.available),
                                     id="columns-list")
            yield Button("Apply", variant="primary", id="columns-apply")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        chosen = set(self.query_one(SelectionList).selected)
        # keep the current order for columns already shown, then add the new ones in list order
        order = [c for c in self.shown if c in chosen] + [c for c in self.available
                                                          if c in chosen and c not in self.shown]
        self.dismiss(order)

    def action_cancel(self) -> None:
        self.dismiss(None)

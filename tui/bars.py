"""The one-line bars: the status line and the key line, repainted in place.

Textual's Footer mounts a widget per key and composes itself again on every focus change; with the table's keys
that cost 0.2-0.5 s each time the filter box was entered or left on a busy machine. A Static's ``update`` lays the
whole screen out again (its size may change); these bars keep their size, so a change repaints one line.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

Keys = list[tuple[str, str]]
BACK: Keys = [("esc", "Back"), ("?", "Keys"), ("q", "Quit")]


class KeyBar(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"keybar--key"}
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $footer-background; color: $footer-foreground; }
    KeyBar > .keybar--key { color: $footer-key-foreground; text-style: bold; }
    """

    def __init__(self, keys: Keys, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.keys = keys

    def show(self, keys: Keys) -> None:
        if keys != self.keys:
            self.keys = keys
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keybar--key", partial=True)
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for key, what in self.keys:
            text.append(f" {key} ", style=key_style)
            text.append(f"{what} ")
        palette = Text.assemble(("^p", key_style), " palette ")
        room = self.size.width - palette.cell_len
        if text.cell_len > room:
            text.truncate(max(room - 1, 0), overflow="ellipsis")
        text.append(" " * max(room - text.cell_len, 0))
        text.append_text(palette)
        return text


class StatusLine(Widget):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    """

    def __init__(self, text: str, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.text = Text(text, no_wrap=True, overflow="ellipsis", end="")

    def show(self, text: str) -> None:
        if text != self.text.plain:
            self.text = Text(text, no_wrap=True, overflow="ellipsis", end="")
            self.refresh()

    def render(self) -> Text:
        return self.text

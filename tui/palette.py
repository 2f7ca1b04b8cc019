"""Command palette: mlrepo's actions (listed before anything is typed), and a jump to any model by the words of
its name in any order (``vit 00003`` finds ``vision/vit_tiny/00003``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import polars as pl
from mlrepo.repo_index.labels import label_expr
from mlrepo.tui import bindings
from rich.text import Text
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from mlrepo.tui.app import MlrepoApp

MOST = 50  # models offered at once


class ActionsProvider(Provider):
    def _actions(self) -> list[tuple[str, Callable[[], Awaitable[bool]], str]]:
        """(description, run it, key) of each action that would act where the palette was opened: the table's
        own actions run on the main screen, the others on the app."""
        app: MlrepoApp = self.app  # type: ignore[assignment]
        under = [s for s in app.screen_stack if not isinstance(s, CommandPalette)]  # where the action will run
        out: list[tuple[str, Callable[[], Awaitable[bool]], str]] = []
        for binding in bindings.ALL:
            name = bindings.action_name(binding) if not binding.system else ""
            if name and not app.quitting and (name not in bindings.TABLE_ACTIONS or len(under) == 1):
                namespace = app if name in bindings.ON_APP else app.main_screen
                out.append((binding.description, partial(app.run_action, binding.action, namespace),
                            app.get_key_display(binding)))
        return out

    async def discover(self) -> Hits:
        for description, run, key in self._actions():
            yield DiscoveryHit(description, run, help=f"key: {key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for description, run, key in self._actions():
            score = matcher.match(description)
            if score > 0:
                yield Hit(score, matcher.highlight(description), run, help=f"key: {key}")


def find_models(df: pl.DataFrame, query: str, most: int = MOST) -> list[tuple[str, str]]:
    """(id, repo/line/name) of models whose name or id holds every word of ``query``, in any order, any case."""
    words = query.lower().split()
    if not words or df.is_empty():
        return []
    label = label_expr()
    frame = df.select("id", label.alias("label"))
    haystack = pl.concat_str([pl.col("label"), pl.col("id")], separator=" ").str.to_lowercase()
    for word in words:
        frame = frame.filter(haystack.str.contains(word, literal=True))
    return list(frame.head(most).iter_rows())


def highlight(label: str, words: list[str]) -> Text:
    text = Text(label)
    lower = label.lower()
    for word in words:
        start = lower.find(word)
        if start >= 0:
            text.stylize("bold reverse", start, start + len(word))
    return text


class ModelsProvider(Provider):
    async def search(self, query: str) -> Hits:
        app: MlrepoApp = self.app  # type: ignore[assignment]
        if app.index is None:
            return
        words = query.lower().split()
        for rank, (model_id, label) in enumerate(find_models(app.index.df, query)):
            score = 1.0 - rank / (2 * MOST)  # shorter labels, holding the words more tightly, come first below
            score *= min(1.0, 12 / max(len(label), 1)) ** 0.1
            yield Hit(score, highlight(label, words), partial(app.main_screen.jump_to, model_id),
                      help="jump to model")

"""Command palette: every action of the current screen, plus a fuzzy jump to any model by name."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import Hit, Hits, Provider

if TYPE_CHECKING:
    from mlrepo.tui.app import MlrepoApp


class ActionsProvider(Provider):
    async def search(self, query: str) -> Hits:
        app: MlrepoApp = self.app  # type: ignore[assignment]
        matcher = self.matcher(query)
        for binding in app.BINDINGS:
            action, description = binding.action, binding.description  # type: ignore[union-attr]
            score = matcher.match(description)
            if score > 0:
                yield Hit(score, matcher.highlight(description), partial(app.run_action, action),
                          help=f"key: {binding.key}")  # type: ignore[union-attr]


class ModelsProvider(Provider):
    async def search(self, query: str) -> Hits:
        app: MlrepoApp = self.app  # type: ignore[assignment]
        if app.index is None:
            return
        matcher = self.matcher(query)
        for model_id, repo, line, name in app.index.df.select("id", "repo", "line", "name").iter_rows():
            label = "/".join(p for p in (repo, line, name) if p)
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(app.jump_to, model_id), help="jump to model")

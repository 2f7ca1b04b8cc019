"""Parameter history screen: per line, each model under the earlier model whose params differ least."""

from __future__ import annotations

import polars as pl
from mlrepo.commands.views.text import cell, plain, visible
from mlrepo.repo_index.lineage import Node, build_history
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree


def best_path(roots: list[Node], mode: str) -> set[str]:
    """Ids on the way from a root to the line's best model (by the node metric)."""
    parents: dict[str, Node | None] = {}
    nodes: list[Node] = []
    stack = [(n, None) for n in roots]
    while stack:
        node, parent = stack.pop()
        parents[node.id] = parent
        nodes.append(node)
        stack.extend((child, node) for child in node.children)
    scored = [n for n in nodes if n.metric is not None]
    if not scored:
        return set()
    best = (max if mode == "max" else min)(scored, key=lambda n: n.metric)
    path: set[str] = set()
    current: Node | None = best
    while current is not None:
        path.add(current.id)
        current = parents[current.id]
    return path


def node_label(node: Node, metric: str | None, on_best_path: bool, is_root: bool) -> Text:
    text = Text(("* " if on_best_path else "  ") + visible(str(node.name)), style="bold green" if on_best_path else "bold")
    if metric:
        text.append(f"  {visible(metric.removeprefix('metrics.'))}={cell(node.metric) or '–'}", style="cyan")
    if node.changes:
        text.append("  " + ", ".join(f"{visible(k)}: {cell(a) or '∅'} → {cell(b) or '∅'}"
                                     for k, (a, b) in sorted(node.changes.items())), style="yellow")
    elif not is_root:
        text.append("  same params", style="dim")
    return text


class HistoryScreen(Screen[str | None]):
    """Select a node to jump to its model in the table (the screen returns its id)."""

    BINDINGS = [Binding("escape,h", "app.pop_screen", "Back", id="history.back")]

    def __init__(self, frame: pl.DataFrame, metric: str | None, mode: str) -> None:
        super().__init__()
        self.frame, self.metric, self.mode = frame, metric, mode

    def compose(self) -> ComposeResult:
        what = f"best path by {self.metric} ({self.mode}) marked *" if self.metric else "no metric chosen"
        yield Static(plain(f"Parameter history · {what}"), id="screen-title")
        tree: Tree[str] = Tree("lines", id="history-tree")
        tree.show_root = False
        for line in build_history(self.frame, self.metric):
            branch = tree.root.add(Text(visible(str(line.title)), style="bold magenta"), expand=True)
            on_path = best_path(line.roots, self.mode) if self.metric else set()
            stack = [(branch, n, True) for n in reversed(line.roots)]
            while stack:
                parent, node, is_root = stack.pop()
                leaf = parent.add(node_label(node, self.metric, node.id in on_path, is_root), data=node.id,
                                  expand=True, allow_expand=bool(node.children))
                stack.extend((leaf, child, False) for child in reversed(node.children))
        yield tree
        yield Footer()

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:
            self.dismiss(event.node.data)

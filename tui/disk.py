"""Disk usage screen: repo → line → model → largest files, largest first, with bars, like ncdu."""

from __future__ import annotations

import os

import polars as pl
from mlrepo.repo_index.disk import usage
from mlrepo.repo_index.units import human_size
from rich.text import Text
from mlrepo.commands.views.text import visible
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree

BAR = 20


def bar_label(name: str, size: int, total: int, largest: int) -> Text:
    filled = round(BAR * size / largest) if largest else 0
    text = Text(f"{human_size(size):>10} ", style="bold")
    text.append(f"{100 * size / total if total else 0:5.1f}% ")
    text.append("█" * filled + "░" * (BAR - filled), style="green")
    text.append(f"  {visible(str(name))}")
    return text


def largest_files(path: str, limit: int = 20) -> list[tuple[str, int]]:
    files: list[tuple[str, int]] = []
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            try:
                files.append((os.path.relpath(os.path.join(dirpath, name), path),
                              os.lstat(os.path.join(dirpath, name)).st_size))
            except OSError:
                continue
    return sorted(files, key=lambda f: -f[1])[:limit]


class DiskScreen(Screen[str | None]):
    """Expand a model to see its largest files; select a model to jump to it."""

    BINDINGS = [Binding("escape,d", "app.pop_screen", "Back", id="disk.back")]

    def __init__(self, frame: pl.DataFrame) -> None:
        super().__init__()
        self.frame = frame

    def compose(self) -> ComposeResult:
        total = int(self.frame["size_bytes"].sum() or 0)
        yield Static(f"Disk usage · {human_size(total)} in {self.frame.height} models", id="screen-title")
        tree: Tree[dict] = Tree("root", id="disk-tree")
        tree.show_root = False
        repos = usage(self.frame, "repo")
        lines = usage(self.frame, "line")
        models = usage(self.frame, "model")
        top = int(repos["size_bytes"].max() or 0) if repos.height else 0
        for repo in repos.iter_rows(named=True):
            r_node = tree.root.add(bar_label(repo["repo"] or "(root)", repo["size_bytes"], total, top),
                                   expand=repos.height == 1)
            for line in lines.filter(pl.col("repo").eq_missing(repo["repo"])).iter_rows(named=True):
                l_node = r_node.add(bar_label(line["line"] or "(none)", line["size_bytes"], total, top))
                for model in models.filter(pl.col("repo").eq_missing(repo["repo"])
                                           & pl.col("line").eq_missing(line["line"])).iter_rows(named=True):
                    l_node.add(bar_label(model["name"], model["size_bytes"], total, top),
                               data={"id": model["id"], "path": model["path"], "size": model["size_bytes"]})
        yield tree
        yield Footer()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[dict]) -> None:
        data = event.node.data
        if data and "path" in data and not event.node.children:
            for name, size in largest_files(data["path"]):
                event.node.add_leaf(bar_label(name, size, data["size"] or 1, data["size"] or 1))

    def on_tree_node_selected(self, event: Tree.NodeSelected[dict]) -> None:
        data = event.node.data
        if data and "id" in data and event.node.children:
            return  # expanded models keep their files on screen; select again from the table
        if data and "id" in data:
            self.dismiss(data["id"])

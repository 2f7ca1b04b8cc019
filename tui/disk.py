"""Disk usage screen: repo → line → model → largest files, largest first, with bars, like ncdu."""

from __future__ import annotations

import os
from dataclasses import dataclass

import polars as pl
from mlrepo.commands.views.text import visible
from mlrepo.repo_index.disk import usage
from mlrepo.repo_index.units import human_size
from mlrepo.tui.bars import KeyBar
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

BAR = 20


def bar_label(name: str, size: int, total: int, largest: int) -> Text:
    filled = round(BAR * size / largest) if largest else 0
    text = Text(f"{human_size(size):>10} ", style="bold")
    text.append(f"{100 * size / total if total else 0:5.1f}% ")
    text.append("█" * filled + "░" * (BAR - filled), style="green")
    text.append(f"  {visible(name)}")
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


@dataclass(frozen=True, slots=True)
class Group:
    """A repo or a line node; its children are added when it is first expanded."""

    repo: str | None
    line: str | None = None
    is_line: bool = False


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    path: str
    size: int


class UsageReady(Message):
    def __init__(self, repos: pl.DataFrame, lines: pl.DataFrame, models: pl.DataFrame) -> None:
        super().__init__()
        self.repos, self.lines, self.models = repos, lines, models


class FilesListed(Message):
    def __init__(self, model: Model, files: list[tuple[str, int]]) -> None:
        super().__init__()
        self.model, self.files = model, files


class DiskScreen(Screen[str | None]):
    """Sizes are added up in a thread, the repos shown as soon as they are, the rest as each node is expanded
    (at 100k models a whole tree cost seconds to build). Expand a model to see its largest files; select a model
    to jump to it."""

    BINDINGS = [Binding("escape,d", "app.pop_screen", "Back", id="disk.back")]

    def __init__(self, frame: pl.DataFrame) -> None:
        super().__init__()
        self.frame = frame
        self.usage: UsageReady | None = None
        self.total = self.top = 0

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Disk usage · adding up {self.frame.height} models …", style="bold yellow"),
                     id="screen-title")
        tree: Tree[object] = Tree("root", id="disk-tree")
        tree.show_root = False
        yield tree
        yield KeyBar([("esc", "Back"), ("enter", "Jump to the model"), ("space", "Open / close"), ("?", "Keys"), ("q", "Quit")])

    def on_mount(self) -> None:
        self.add_up()

    @work(thread=True, group="disk")
    def add_up(self) -> None:
        frame = self.frame
        self.post_message(UsageReady(usage(frame, "repo"), usage(frame, "line"), usage(frame, "model")))

    def on_usage_ready(self, message: UsageReady) -> None:
        self.usage = message
        self.total = int(message.repos["size_bytes"].cast(pl.Int64).sum() or 0)
        self.top = int(message.repos["size_bytes"].cast(pl.Int64).max() or 0) if message.repos.height else 0
        self.query_one("#screen-title", Static).update(
            f"Disk usage · {human_size(self.total)} in {self.frame.height} models")
        tree = self.query_one(Tree)
        for repo in message.repos.iter_rows(named=True):
            node = tree.root.add(bar_label(repo["repo"] or "(root)", repo["size_bytes"], self.total, self.top),
                                 data=Group(repo["repo"]))
            if message.repos.height == 1:
                node.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[object]) -> None:
        data, node = event.node.data, event.node
        if node.children or self.usage is None:
            return
        if isinstance(data, Group) and not data.is_line:
            rows = self.usage.lines.filter(pl.col("repo").eq_missing(data.repo))
            for line in rows.iter_rows(named=True):
                node.add(bar_label(line["line"] or "(none)", line["size_bytes"], self.total, self.top),
                         data=Group(data.repo, line["line"], is_line=True))
        elif isinstance(data, Group):
            rows = self.usage.models.filter(pl.col("repo").eq_missing(data.repo)
                                            & pl.col("line").eq_missing(data.line))
            for model in rows.iter_rows(named=True):
                node.add(bar_label(model["name"], model["size_bytes"], self.total, self.top),
                         data=Model(model["id"], model["path"], model["size_bytes"] or 0))
        elif isinstance(data, Model):
            node.add_leaf(Text("listing …", style="dim italic"))
            self.list_files(data)

    @work(thread=True, group="disk-files")
    def list_files(self, model: Model) -> None:
        self.post_message(FilesListed(model, largest_files(model.path)))

    def on_files_listed(self, message: FilesListed) -> None:
        node = self._find(message.model)
        if node is None:
            return
        node.remove_children()
        size = message.model.size or 1
        for name, file_size in message.files:
            node.add_leaf(bar_label(visible(name), file_size, size, size))
        if not message.files:
            node.add_leaf(Text("no files", style="dim"))

    def _find(self, model: Model) -> TreeNode[object] | None:
        stack = list(self.query_one(Tree).root.children)
        while stack:
            node = stack.pop()
            if node.data == model:
                return node
            stack.extend(node.children)
        return None

    def on_tree_node_selected(self, event: Tree.NodeSelected[object]) -> None:
        data = event.node.data
        if isinstance(data, Model) and not event.node.children:
            self.dismiss(data.id)

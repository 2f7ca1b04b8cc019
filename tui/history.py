"""Parameter history screen: per line, each model under the earlier model whose params differ least."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from mlrepo.commands.views.text import cell
from mlrepo.repo_index.lineage import LineHistory, Node, build_history
from mlrepo.tui.bars import KeyBar
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode


def best_path(roots: list[Node], mode: str) -> set[str]:
    """Ids on the way from a root to the line's best model (by the node metric)."""
    parents: dict[str, Node | None] = {}
    nodes: list[Node] = []
    stack: list[tuple[Node, Node | None]] = [(n, None) for n in roots]
    while stack:
        node, parent = stack.pop()
        parents[node.id] = parent
        nodes.append(node)
        stack.extend((child, node) for child in node.children)
    scored = [n for n in nodes if n.metric is not None]
    if not scored:
        return set()
    best = (max if mode == "max" else min)(scored, key=lambda n: n.metric or 0.0)  # scored: metric not None
    path: set[str] = set()
    current: Node | None = best
    while current is not None:
        path.add(current.id)
        current = parents[current.id]
    return path


def node_label(node: Node, metric: str | None, on_best_path: bool, is_root: bool) -> Text:
    text = Text(("* " if on_best_path else "  ") + node.name, style="bold green" if on_best_path else "bold")
    if metric:
        text.append(f"  {metric.removeprefix('metrics.')}={cell(node.metric) or '–'}", style="cyan")
    if node.changes:
        text.append("  " + ", ".join(f"{k}: {cell(a) or '∅'} → {cell(b) or '∅'}"
                                     for k, (a, b) in sorted(node.changes.items())), style="yellow")
    elif not is_root:
        text.append("  same params", style="dim")
    return text


@dataclass(frozen=True, slots=True)
class RepoRef:
    repo: str | None


@dataclass(frozen=True, slots=True)
class LineRef:
    repo: str | None
    line: str | None
    size: int


class LineBuilt(Message):
    def __init__(self, ref: LineRef, history: LineHistory | None) -> None:
        super().__init__()
        self.ref, self.history = ref, history


class HistoryScreen(Screen[str | None]):
    """Repos and their lines at once, each line's tree built in a thread when it is expanded (the one holding the
    selected model first): a tree costs O(models²) in its line, so at 100k models building them all took a minute.
    Select a model to jump to it in the table (the screen returns its id)."""

    BINDINGS = [Binding("escape,h", "app.pop_screen", "Back", id="history.back")]

    def __init__(self, frame: pl.DataFrame, metric: str | None, mode: str, selected: str | None = None) -> None:
        super().__init__()
        self.frame, self.metric, self.mode, self.selected = frame, metric, mode, selected
        self.pending: set[LineRef] = set()
        self.lines = pl.DataFrame({"repo": [], "line": [], "len": []})
        self.here: tuple[str | None, str | None] | None = None  # the selected model's repo and line
        self.opened = False

    def compose(self) -> ComposeResult:
        yield Static(self.title_text(), id="screen-title")
        tree: Tree[object] = Tree("lines", id="history-tree")
        tree.show_root = False
        yield tree
        yield KeyBar([("esc", "Back"), ("enter", "Jump to the model"), ("space", "Open / close"), ("?", "Keys"), ("q", "Quit")])

    @property
    def ready(self) -> bool:
        """The selected model's line is built and the cursor is on it (nothing is being built)."""
        return (self.opened or self.lines.is_empty()) and not self.pending

    def title_text(self) -> Text:
        what = f"best path by {self.metric} ({self.mode}) marked *" if self.metric else "no metric column chosen"
        text = Text(f"Parameter history · {what}")
        if self.pending:
            text.append(f"  · building {len(self.pending)} line{'s' if len(self.pending) > 1 else ''} …",
                        style="bold yellow")
        return text

    def on_mount(self) -> None:
        """Repos first (a handful of nodes: a tree of 1,000 lines took a second to lay out at 100k models), the
        selected model's repo and line opened."""
        self.lines = self.frame.group_by(["repo", "line"]).len().sort(["repo", "line"], nulls_last=True)
        repos = self.lines.group_by("repo", maintain_order=True).agg(pl.len().alias("lines"), pl.col("len").sum())
        if self.selected is not None:
            hit = self.frame.filter(pl.col("id") == self.selected).select("repo", "line")
            self.here = hit.row(0) if hit.height else None
        tree = self.query_one(Tree)
        opened = None
        for repo, lines, size in repos.iter_rows():
            title = Text(repo or "(root)", style="bold magenta")
            title.append(f"  {lines} line{'s' if lines != 1 else ''}, {size} model{'s' if size != 1 else ''}",
                         style="dim")
            node = tree.root.add(title, data=RepoRef(repo), allow_expand=True)
            if opened is None or (self.here is not None and repo == self.here[0]):
                opened = node
        if opened is not None:
            opened.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[object]) -> None:
        ref, node = event.node.data, event.node
        if isinstance(ref, RepoRef) and not node.children:
            rows = self.lines.filter(pl.col("repo").eq_missing(ref.repo))
            first = None
            for _repo, line, size in rows.iter_rows():
                title = Text(line or "(none)", style="bold magenta")
                title.append(f"  {size} model{'s' if size != 1 else ''}", style="dim")
                child = node.add(title, data=LineRef(ref.repo, line, size), allow_expand=True)
                if first is None or (self.here is not None and (ref.repo, line) == self.here):
                    first = child
            if first is not None and (self.here is None or self.here[0] == ref.repo) and not self.opened:
                self.opened = True  # the selected model's line, once; the user opens the others
                self._start(first)
                first.expand()
        elif isinstance(ref, LineRef) and not node.children:
            self._start(node)

    def _start(self, node: TreeNode[object]) -> None:
        """Build a line's tree in a thread; a placeholder says so meanwhile."""
        ref = node.data
        if isinstance(ref, LineRef) and ref not in self.pending and not node.children:
            self.pending.add(ref)
            node.add_leaf(Text("building …", style="dim italic"))
            self.query_one("#screen-title", Static).update(self.title_text())
            self.build(ref)

    @work(thread=True, group="history")
    def build(self, ref: LineRef) -> None:
        rows = self.frame.filter(pl.col("repo").eq_missing(ref.repo) & pl.col("line").eq_missing(ref.line))
        built = build_history(rows, self.metric)
        self.post_message(LineBuilt(ref, built[0] if built else None))

    def on_line_built(self, message: LineBuilt) -> None:
        tree = self.query_one(Tree)
        branch = next((n for repo in tree.root.children for n in repo.children if n.data == message.ref), None)
        if branch is None:
            return
        branch.remove_children()
        roots = message.history.roots if message.history else []
        on_path = best_path(roots, self.mode) if self.metric else set()
        stack = [(branch, n, True) for n in reversed(roots)]
        selected = None
        while stack:
            parent, node, is_root = stack.pop()
            leaf = parent.add(node_label(node, self.metric, node.id in on_path, is_root), data=node.id,
                              expand=True, allow_expand=bool(node.children))
            stack.extend((leaf, child, False) for child in reversed(node.children))
            if node.id == self.selected:
                selected = leaf
        self.call_after_refresh(self._built, message.ref, selected)

    def _built(self, ref: LineRef, selected: TreeNode[object] | None, tries: int = 0) -> None:
        """The line is done once the cursor is on the selected model: the tree numbers new nodes' lines when it is
        next idle, so this looks again shortly (for up to 2 s: a node the user folded away meanwhile has none)."""
        if selected is not None and selected.line < 0 and tries < 100:
            self.set_timer(0.02, lambda: self._built(ref, selected, tries + 1))
            return
        if selected is not None and selected.line >= 0:
            self.query_one(Tree).move_cursor(selected)
        self.pending.discard(ref)
        self.query_one("#screen-title", Static).update(self.title_text())

    def on_tree_node_selected(self, event: Tree.NodeSelected[object]) -> None:
        if isinstance(event.node.data, str):
            self.dismiss(event.node.data)

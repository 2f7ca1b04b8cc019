"""Rich renderables for the CLI: a model's panel, a diff, history trees, disk usage bars. Every string from disk
goes in as ``Text`` with its control characters visible (``views.text``), never as markup."""

from __future__ import annotations

import os

import polars as pl
from mlrepo.commands.views.text import cell, plain, visible
from mlrepo.repo_index import Index
from mlrepo.repo_index.disk import LEVELS
from mlrepo.repo_index.labels import model_label
from mlrepo.repo_index.lineage import Node, build_history
from mlrepo.repo_index.ranking import direction_by_name
from mlrepo.repo_index.units import human_size
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

_BASE = ("id", "path", "format", "repo", "line", "name", "status", "created_at", "updated_at", "size_bytes",
         "n_files", "tags", "error")


def _files(path: str, limit: int = 15) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column()
    table.add_column(justify="right")
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        table.add_row(plain(f"(cannot list: {exc.strerror})"), "")
        return table
    for entry in entries[:limit]:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            size = "" if is_dir else human_size(entry.stat(follow_symlinks=False).st_size)
        except OSError:
            is_dir, size = False, "?"
        table.add_row(plain(entry.name + ("/" if is_dir else "")), size)
    if len(entries) > limit:
        table.add_row(f"… {len(entries) - limit} more", "")
    return table


def model_panel(row: dict, index: Index) -> Panel:
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    for key in _BASE:
        if row.get(key) not in (None, []):
            facts.add_row(key, Text(cell(row[key], key), style="red" if key == "error" else ""))
    metrics = Table(title="metrics", title_justify="left", show_edge=False)
    metrics.add_column("name")
    metrics.add_column("value", justify="right")
    metrics.add_column("direction")
    for col in index.metric_columns:
        if row.get(col) is not None:
            info = index.metrics.get(col)
            direction = info.direction if info and info.direction else direction_by_name(col) + " (by name)"
            metrics.add_row(plain(col.removeprefix("metrics.")), Text(cell(row[col])), plain(direction))
    params = Table(title="params", title_justify="left", show_edge=False)
    params.add_column("name")
    params.add_column("value")
    for col in index.param_columns:
        if row.get(col) is not None:
            params.add_row(plain(col.removeprefix("params.")), Text(cell(row[col])))
    parts: list[RenderableType] = [facts, metrics, params]
    if row.get("format") != "dvc-exp":  # a DVC experiment is a git ref (perhaps packed): no folder of its own
        parts.append(Panel(_files(row["path"]), title="files", title_align="left", expand=False))
    return Panel(Group(*parts), title=plain(model_label(row)), title_align="left", expand=False)


def diff_table(a: dict, b: dict, index: Index, changed_only: bool = False) -> Table:
    """Every param and metric either model has, side by side; a differing one is marked ``*`` and highlighted."""
    def label(row: dict) -> Text:
        return plain(row["id"]) + "\n" + plain(model_label(row))

    table = Table(show_edge=False)
    table.add_column("")
    table.add_column("key")
    table.add_column(label(a))
    table.add_column(label(b))
    same = differ = 0
    for col in [*index.metric_columns, *index.param_columns]:
        va, vb = a.get(col), b.get(col)
        if va is None and vb is None:
            continue
        differs = va != vb
        differ += differs
        same += not differs
        if changed_only and not differs:
            continue
        style = "bold yellow" if differs else ""
        table.add_row("*" if differs else "", Text(visible(col), style=style), Text(cell(va)), Text(cell(vb)))
    table.caption = f"{differ} differ (*), {same} equal" + (" (hidden)" if changed_only and same else "")
    return table


def _node_label(node: Node, metric: str | None, is_root: bool) -> Text:
    text = Text(visible(str(node.name)), style="bold")
    text.append(f"  {visible(str(node.id))}", style="dim")
    if metric:
        text.append(f"  {visible(metric.removeprefix('metrics.'))}=", style="cyan")
        text.append(cell(node.metric) or "–", style="cyan")
    if node.changes:
        changed = ", ".join(f"{visible(k)}: {cell(old) or '∅'} → {cell(new) or '∅'}"
                            for k, (old, new) in sorted(node.changes.items()))
        text.append(f"  {changed}", style="yellow")
    elif is_root:
        text.append(f"  ({len(node.params)} params)", style="dim")
    else:
        text.append("  same params", style="dim")
    return text


def history_trees(frame: pl.DataFrame, metric: str | None) -> list[Tree]:
    trees = []
    for line in build_history(frame, metric):
        tree = Tree(Text(visible(str(line.title)), style="bold magenta"))
        stack = [(tree, node) for node in reversed(line.roots)]
        while stack:
            parent, node = stack.pop()
            branch = parent.add(_node_label(node, metric, parent is tree))
            stack.extend((branch, child) for child in reversed(node.children))
        trees.append(tree)
    return trees


def usage_table(frame: pl.DataFrame, by: str, width: int = 30) -> Table:
    table = Table(show_edge=False)
    keys = [k for k in LEVELS[by] if k not in ("id", "path")]
    table.add_column("size", justify="right")
    table.add_column("%", justify="right")
    table.add_column("")
    table.add_column("models", justify="right")
    table.add_column("/".join(keys))
    largest = max(frame["size_bytes"].max() or 1, 1) if frame.height else 1
    for row in frame.iter_rows(named=True):
        filled = round(width * row["size_bytes"] / largest)
        bar = Text("█" * filled + "░" * (width - filled), style="green")
        name = "/".join(str(row[k]) for k in keys if row[k] is not None) or "(root)"
        if "host" in row:  # a team index: the same repo on two machines is two rows
            name = f"{row['host']}:{row['root']}  {name}"
        table.add_row(human_size(row["size_bytes"]), f"{row['percent']:.1f}", bar, str(row["models"]), plain(name))
    return table

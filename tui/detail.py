"""The detail pane: everything about the selected model, its path whole (wrapped, never cut) and copyable."""

from __future__ import annotations

import os

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlrepo.commands.output import cell
from mlrepo.repo_index import Index
from mlrepo.repo_index.ranking import direction_by_name
from mlrepo.tui.table import printable

FACTS = ("id", "format", "status", "created_at", "updated_at", "size_bytes", "n_files", "tags", "error")


def home_relative(path: str) -> str:
    """``~/…`` for a path under the home folder, as shells show it (the copy action copies the full path)."""
    home = os.path.expanduser("~").rstrip("/")
    return "~" + path[len(home):] if home and home != "/" and (path == home or path.startswith(home + "/")) else path


def _grid() -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", overflow="fold", max_width=24)
    grid.add_column(overflow="fold")
    return grid


def detail(row: dict, index: Index) -> RenderableType:
    title = "/".join(printable(str(p)) for p in (row["repo"], row["line"], row["name"]) if p)
    parts: list[RenderableType] = [Text(title, style="bold"),
                                   Text(printable(home_relative(row["path"])), style="underline", overflow="fold"),
                                   Text("y copies the path · p quits printing it", style="dim"), Text("")]
    facts = _grid()
    for key in FACTS:
        if row.get(key) not in (None, []):
            facts.add_row("size" if key == "size_bytes" else key,
                          Text(printable(cell(row[key], key)), style="red" if key == "error" else ""))
    parts.append(facts)
    metrics = _grid()
    metrics.columns[1].justify = "right"
    metrics.add_column(style="dim")
    for col in index.metric_columns:
        if row.get(col) is not None:
            info = index.metrics.get(col)
            mode = info.direction if info and info.direction else direction_by_name(col)
            metrics.add_row(printable(col.removeprefix("metrics.")), cell(row[col]), "↑" if mode == "max" else "↓")
    if metrics.row_count:
        parts += [Text("\nmetrics", style="bold underline"), metrics]
    params = _grid()
    for col in index.param_columns:
        if row.get(col) is not None:
            params.add_row(printable(col.removeprefix("params.")), printable(cell(row[col])))
    if params.row_count:
        parts += [Text("\nparams", style="bold underline"), params]
    return Group(*parts)

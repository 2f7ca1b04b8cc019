"""The detail pane: everything about the selected model, its path whole (wrapped, never cut) and copyable."""

from __future__ import annotations

import os

from mlrepo.commands.views.text import cell, visible
from mlrepo.repo_index import Index
from mlrepo.repo_index.labels import model_label
from mlrepo.repo_index.ranking import direction_by_name
from rich.console import RenderableType
from rich.text import Text

FACTS = ("id", "format", "status", "created_at", "updated_at", "size_bytes", "n_files", "tags", "error")


def home_relative(path: str) -> str:
    """``~/…`` for a path under the home folder, as shells show it (the copy action copies the full path)."""
    home = os.path.expanduser("~").rstrip("/")
    return "~" + path[len(home):] if home and home != "/" and (path == home or path.startswith(home + "/")) else path


def _rows(text: Text, rows: list[tuple[str, str, str]], value_style: str = "") -> None:
    """Name and value columns: one ``Text`` (rich tables cost ~20 ms a paint here, on every cursor move).
    A long name or value wraps within the pane (the Text folds), never cut."""
    width = min(max((len(name) for name, _, _ in rows), default=0), 24)
    for name, value, style in rows:
        text.append(name.ljust(width), style="bold")
        text.append(" " + value + "\n", style=style or value_style)


def detail(row: dict, index: Index) -> RenderableType:
    title = visible(model_label(row))
    text = Text(overflow="fold")
    text.append(title + "\n", style="bold")
    text.append(visible(home_relative(row["path"])) + "\n", style="underline")
    text.append("y copies the path · p quits printing it\n\n", style="dim")
    _rows(text, [("size" if key == "size_bytes" else key, visible(cell(row[key], key)),
                  "red" if key == "error" else "") for key in FACTS if row.get(key) not in (None, [])])
    metrics = []
    values = [cell(row[col]) for col in index.metric_columns if row.get(col) is not None]
    value_width = max((len(v) for v in values), default=0)
    for col in index.metric_columns:
        if row.get(col) is not None:
            info = index.metrics.get(col)
            mode = info.direction if info and info.direction else direction_by_name(col)
            metrics.append((visible(col.removeprefix("metrics.")),
                            f"{cell(row[col]):>{value_width}} {'↑' if mode == 'max' else '↓'}", ""))
    if metrics:
        text.append("\nmetrics\n", style="bold underline")
        _rows(text, metrics)
    params = [(visible(col.removeprefix("params.")), visible(cell(row[col])), "")
              for col in index.param_columns if row.get(col) is not None]
    if params:
        text.append("\nparams\n", style="bold underline")
        _rows(text, params)
    text.rstrip()
    return text

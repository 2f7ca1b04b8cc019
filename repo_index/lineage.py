"""Parameter history: per line, each model hangs under the earlier model whose parameters differ least.

Ties go to the latest such model, as Cascade's HistoryViewer does, so a sweep that keeps changing one knob reads
as a chain rather than a star.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

_MISSING = object()


@dataclass(slots=True)
class Node:
    id: str
    name: str
    path: str
    params: dict[str, object]
    metric: float | None
    changes: dict[str, tuple[object, object]] = field(default_factory=dict)  # key -> (parent's value, own)
    children: list["Node"] = field(default_factory=list)


@dataclass(slots=True)
class LineHistory:
    repo: str | None
    line: str | None
    roots: list[Node]

    @property
    def title(self) -> str:
        return "/".join(p for p in (self.repo, self.line) if p) or "(root)"


def _differences(a: dict[str, object], b: dict[str, object]) -> dict[str, tuple[object, object]]:
    out = {}
    for key in a.keys() | b.keys():
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            out[key] = (None if va is _MISSING else va, None if vb is _MISSING else vb)
    return out


def build_history(frame: pl.DataFrame, metric: str | None = None) -> list[LineHistory]:
    """One tree per (repo, line), models in creation order."""
    params = [c for c in frame.columns if c.startswith("params.")]
    cols = ["id", "name", "path", "repo", "line", "created_at", *params] + ([metric] if metric else [])
    lines: list[LineHistory] = []
    ordered = frame.select(cols).sort(["repo", "line", "created_at", "name"], nulls_last=True)
    for (repo, line), group in ordered.group_by(["repo", "line"], maintain_order=True):
        nodes: list[Node] = []
        roots: list[Node] = []
        for row in group.iter_rows(named=True):
            own = {k.removeprefix("params."): row[k] for k in params if row[k] is not None}
            node = Node(row["id"], row["name"], row["path"], own, row[metric] if metric else None)
            parent, parent_diff = None, None
            for earlier in nodes:  # later ones win ties: <=
                diff = _differences(earlier.params, own)
                if parent_diff is None or len(diff) <= len(parent_diff):
                    parent, parent_diff = earlier, diff
            if parent is None:
                roots.append(node)
            else:
                node.changes = parent_diff or {}
                parent.children.append(node)
            nodes.append(node)
        lines.append(LineHistory(repo, line, roots))
    return lines

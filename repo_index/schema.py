"""The machine-readable output's schema: one version number for every JSON document, JSON line and Parquet file
mlrepo writes (README, "Machine-readable output"). Raise ``SCHEMA_VERSION`` when a field changes meaning or goes
away; adding a field or a column does not change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl
from mlrepo.repo_index.lineage import LineHistory, Node

SCHEMA_VERSION = 1
FIELD = "schema_version"  # the first key of every JSON object mlrepo prints
PARQUET_KEY = "mlrepo.schema_version"  # key-value metadata of an exported Parquet file


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the schema version as its first key."""
    return {FIELD: SCHEMA_VERSION, **obj}


def with_version_column(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``ls``/``export`` JSON: each object starts with ``schema_version``."""
    return frame.select(pl.lit(SCHEMA_VERSION, dtype=pl.Int32).alias(FIELD), pl.all())


def diff_document(a: dict, b: dict, columns: Sequence[str]) -> dict[str, Any]:
    """Two models and every param and metric either has, each marked whether it differs."""
    keys = []
    for col in columns:
        va, vb = a.get(col), b.get(col)
        if va is None and vb is None:
            continue
        keys.append({"key": col, "a": va, "b": vb, "differs": va != vb})
    return stamped({"a": a, "b": b, "keys": keys})


def _node(node: Node, metric: str | None) -> dict[str, Any]:
    return {
        "id": node.id, "name": node.name, "path": node.path,
        **({"metric": node.metric} if metric else {}),
        "changes": {k: {"from": old, "to": new} for k, (old, new) in sorted(node.changes.items())},
        "children": [_node(child, metric) for child in node.children],
    }


def history_document(lines: Iterable[LineHistory], metric: str | None) -> dict[str, Any]:
    """Every line's parameter-history tree: nodes nest under the model they differ least from."""
    return stamped({"metric": metric, "lines": [
        {"repo": line.repo, "line": line.line, "roots": [_node(n, metric) for n in line.roots]} for line in lines]})

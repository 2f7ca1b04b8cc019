"""Ranking models by metrics: direction from metadata, else from the metric's name; ties broken by further metrics."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from mlrepo.errors import UsageError
from mlrepo.repo_index.columns import resolve_metric
from mlrepo.repo_index.rows import MetricInfo
from mlrepo.repo_index.table import SOURCE_COLUMNS

#: Words that mark a metric as minimised when its metadata does not say.
MINIMISED = frozenset({
    "loss", "error", "err", "mse", "mae", "rmse", "rmsle", "msle", "mape", "smape", "wer", "cer", "ter",
    "perplexity", "ppl", "latency", "nll", "logloss", "cost", "regret", "distance", "fid", "eer", "fpr", "fnr",
    "runtime", "duration", "seconds", "time", "brier", "hamming",
})
_WORDS = re.compile(r"[A-Za-z]+")
GROUPS = {"line": ["repo", "line"], "repo": ["repo"], "all": []}


def direction_by_name(name: str) -> str:
    words = {w.lower() for w in _WORDS.findall(name)}
    lowered = name.lower()
    if words & MINIMISED or lowered.endswith(("loss", "error")):
        return "min"
    return "max"


@dataclass(frozen=True, slots=True)
class RankKey:
    column: str
    mode: str  # "max" | "min"
    source: str  # "metadata" | "name" | "--mode"

    def describe(self) -> str:
        verb = "maximised" if self.mode == "max" else "minimised"
        return f"{self.column} {verb} (from {self.source})"


def rank_keys(names: Sequence[str], modes: Sequence[str], columns: Sequence[str],
              metrics: dict[str, MetricInfo]) -> list[RankKey]:
    """Resolve ``--metric`` names (the first ranks, the rest break ties) and their directions.

    ``--mode`` given once applies to the first metric; given as often as ``--metric``, pairwise.
    """
    if not names:
        raise UsageError("--metric is required")
    if len(modes) > 1 and len(modes) != len(names):
        raise UsageError("give --mode once (for the first metric) or once per --metric")
    keys = []
    for i, name in enumerate(names):
        col = resolve_metric(name, columns, metrics)
        mode = modes[i] if i < len(modes) else None
        if mode:
            keys.append(RankKey(col, mode, "--mode"))
            continue
        info = metrics.get(col)
        if info is not None and info.direction:
            keys.append(RankKey(col, info.direction, "metadata"))
        else:
            keys.append(RankKey(col, direction_by_name(info.name if info else col), "name"))
    return keys


def _order(frame: pl.DataFrame, keys: Sequence[RankKey], per: str) -> pl.DataFrame:
    """Row numbers of ``frame`` best first within each group, with their ``rank`` (1 = best). Sorts only the
    columns that decide the order: the rows themselves are gathered once, at the end (a million-row team index
    holds dozens of columns)."""
    sources = [c for c in SOURCE_COLUMNS if c in frame.columns and per != "all"]  # a team index: one line per root
    group = [*sources, *GROUPS[per]]
    by = list(dict.fromkeys([*group, *(k.column for k in keys), "updated_at"]))
    lean = frame.select(by).with_row_index("_row")
    lean = lean.filter(pl.col(keys[0].column).is_not_null() & pl.col(keys[0].column).is_not_nan())
    lean = lean.sort(
        [*group, *(k.column for k in keys), "updated_at"],
        descending=[*([False] * len(group)), *(k.mode == "max" for k in keys), True],
        nulls_last=True,
        maintain_order=True,
    )
    order = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    return lean.select("_row", (order.over(group) if group else order).alias("rank"))


def _gather(frame: pl.DataFrame, order: pl.DataFrame) -> pl.DataFrame:
    return frame[order["_row"]].with_columns(order["rank"])


def rank(frame: pl.DataFrame, keys: Sequence[RankKey], per: str = "all") -> pl.DataFrame:
    """Rows ordered best first within each group, with a ``rank`` column (1 = best); rows lacking the first
    metric are left out."""
    return _gather(frame, _order(frame, keys, per))


def best(frame: pl.DataFrame, keys: Sequence[RankKey], per: str = "all") -> pl.DataFrame:
    order = _order(frame, keys, per)
    return _gather(frame, order.filter(pl.col("rank") == 1))

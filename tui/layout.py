"""How the table lays out index columns: kind, fixed decimals and width from the values, the best value marked."""

from __future__ import annotations

import math

import polars as pl
from mlrepo.commands.views.text import visible
from mlrepo.repo_index import Index
from mlrepo.repo_index.ranking import direction_by_name
from mlrepo.tui.table import Column, Kind

TEXT_CAP = 28  # a text column never takes more (its cells end in …; the detail pane shows them whole)
LABEL_CAP = 14  # a header longer than its values is cut to this, never the values


def label_of(key: str) -> str:
    return "size" if key == "size_bytes" else visible(key.removeprefix("metrics.").removeprefix("params."))


def kind_of(key: str, dtype: pl.DataType) -> Kind:
    if key == "size_bytes":
        return "size"
    if dtype.is_float():
        return "float"
    if dtype.is_integer():
        return "int"
    if isinstance(dtype, pl.Datetime):
        return "time"
    if isinstance(dtype, pl.List):
        return "list"
    return "text"


def decimals_for(series: pl.Series) -> int:
    """As few decimals as show every value exactly, else four significant digits of the largest value; never
    more than four."""
    values = series.drop_nulls().drop_nans().filter(series.drop_nulls().drop_nans().is_finite())
    if values.is_empty():
        return 0
    for decimals in range(5):
        if bool(((values - values.round(decimals)).abs() < 1e-9).all()):
            return decimals
    largest = float(values.abs().max())
    return max(0, min(4, 3 - math.floor(math.log10(largest)))) if largest > 0 else 4


def layout(df: pl.DataFrame, keys: list[str]) -> list[Column]:
    """Columns sized from all the index's values (not the filtered rows: widths stay put while filtering)."""
    columns = []
    for key in keys:
        series = df[key]
        kind = kind_of(key, series.dtype)
        decimals = 0
        if kind == "float":
            decimals = decimals_for(series)
            values = series.drop_nulls().drop_nans()
            ends = [f"{float(v):.{decimals}f}" for v in (values.min(), values.max())] if len(values) else []  # type: ignore[arg-type]
            width = max((len(e) for e in ends), default=1)
        elif kind == "int":
            width = max((len(str(v)) for v in (series.min(), series.max()) if v is not None), default=1)
        elif kind == "size":
            width = 9  # "1023.9 MB"
        elif kind == "time":
            width = 16
        else:
            text = series.list.join(", ") if kind == "list" else series.cast(pl.String)
            width = min(int(text.str.len_chars().max() or 1), TEXT_CAP)  # type: ignore[arg-type]
        label = label_of(key)
        columns.append(Column(key, label, max(width, min(len(label), LABEL_CAP), 2), kind, decimals))
    return columns


def mark_best(columns: list[Column], frame: pl.DataFrame, index: Index) -> list[Column]:
    """Each metric column gets the best value among the rows shown (its direction from metadata or name)."""
    metric_keys = [c.key for c in columns if c.key.startswith("metrics.") and c.kind in ("float", "int")]
    if not metric_keys or frame.is_empty():
        return columns
    exprs = []
    for key in metric_keys:
        info = index.metrics.get(key)
        mode = info.direction if info and info.direction else direction_by_name(key)
        values = pl.col(key).fill_nan(None)
        exprs.append((values.max() if mode == "max" else values.min()).alias(key))
    best = frame.select(exprs).row(0, named=True)
    return [Column(c.key, c.label, c.width, c.kind, c.decimals, best.get(c.key)) if c.key in best else c
            for c in columns]

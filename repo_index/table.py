"""Column lists (``rows``) to one polars table, and the public names of its metric columns.

Metrics are stored under a raw key (name plus dataset/split qualifiers); ``public_names`` then gives each a
column name: ``metrics.f1`` when the name is recorded one way only, ``metrics.f1.val``/``metrics.f1.test`` when it
repeats across datasets or splits. The raw keys are what the cache keeps, so qualification follows the whole index.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from mlrepo.repo_index.rows import SEP, MetricInfo, Rows, collect_rows
from mlrepo.repo_index.scanner import Found

BASE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "path": pl.String(),
    "format": pl.String(),
    "repo": pl.String(),
    "line": pl.String(),
    "name": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "updated_at": pl.Datetime("us", "UTC"),
    "size_bytes": pl.Int64(),
    "n_files": pl.Int64(),
    "tags": pl.List(pl.String()),
    "status": pl.String(),
    "error": pl.String(),
}
HIDDEN_SCHEMA: dict[str, pl.DataType] = {"_rel": pl.String(), "_dirs": pl.String(), "_meta": pl.String(),
                                         "_stamp": pl.Int64(), "_store": pl.String(), "_source_id": pl.String(),
                                         "_nested": pl.String()}
BASE_COLUMNS = tuple(BASE_SCHEMA)
SOURCE_COLUMNS = ("host", "root")  # a team index's rows also say which machine and root they came from


class ColumnLists:
    """The metric and param columns of a table ``df``, as an index (a root's, or a team's) shows them."""

    df: pl.DataFrame

    @property
    def metric_columns(self) -> list[str]:
        return [c for c in self.df.columns if c.startswith("metrics.")]

    @property
    def param_columns(self) -> list[str]:
        return [c for c in self.df.columns if c.startswith("params.")]

def _column(values: list[object]) -> pl.Series | list[object]:
    """One params column: numbers stay numbers when every value is one, otherwise text."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pl.Series(values, dtype=pl.Null)
    if kinds <= {int}:
        return pl.Series(values, dtype=pl.Int64, strict=False)
    if kinds <= {int, float}:
        return pl.Series(values, dtype=pl.Float64, strict=False)
    if kinds == {bool}:
        return pl.Series(values, dtype=pl.Boolean)
    return pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)


def _list_column(name: str, values: list[object]) -> pl.Series:
    """A list-of-strings column, split in polars from joined text: building it from Python lists makes a Series
    per row (seconds at 100k), and going through arrow makes polars load pandas (200 ms)."""
    joined = [SEP.join(items) if isinstance(items, list) and items else None for items in values]
    return (pl.Series(name, joined, dtype=pl.String).str.split(SEP)
            .fill_null(pl.lit([], dtype=pl.List(pl.String))).alias(name))


def frame_of(rows: Rows) -> pl.DataFrame:
    """The frame of collected rows: base and hidden columns first, then params and metrics by name. Each of
    ``rows``' lists is dropped once it is a Series (``rows`` keeps ``n`` and ``info``): at 100k models the lists
    and the frame side by side were the scan's peak of memory."""
    columns: dict[str, object] = {}
    for name, dtype in {**BASE_SCHEMA, **HIDDEN_SCHEMA}.items():
        values = rows.base.pop(name)
        if isinstance(dtype, pl.List):
            columns[name] = _list_column(name, values)
        elif isinstance(dtype, pl.Datetime):  # epoch microseconds (rows._micros)
            columns[name] = pl.Series(name, values, dtype=pl.Int64).cast(dtype)
        else:
            columns[name] = pl.Series(name, values, dtype=dtype)
    for key in sorted(rows.params):
        columns[key] = _column(rows.params.pop(key))
    for key in sorted(rows.metrics):
        columns[key] = pl.Series(key, rows.metrics.pop(key), dtype=pl.Float64)
    return pl.DataFrame(columns)


def build_frame(found: Sequence[Found], store_of: dict[str, str] | None = None
                ) -> tuple[pl.DataFrame, dict[str, MetricInfo]]:
    """Records to a frame with raw metric keys and hidden revalidation columns."""
    rows = collect_rows(found, store_of)
    return frame_of(rows), rows.info


def public_names(info: dict[str, MetricInfo]) -> dict[str, str]:
    """Raw metric keys to column names, qualifying only names recorded in more than one way."""
    by_name: dict[str, list[str]] = {}
    for key, meta in info.items():
        by_name.setdefault(meta.name, []).append(key)
    names: dict[str, str] = {}
    for name, keys in by_name.items():
        for key in keys:
            qualifier = info[key].qualifier
            names[key] = f"metrics.{name}" if len(keys) == 1 or not qualifier else f"metrics.{name}.{qualifier}"
    return names

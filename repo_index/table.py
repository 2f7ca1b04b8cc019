"""Scanned records to one polars table, built column by column.

Metrics are first stored under a raw key (name plus dataset/split qualifiers); ``public_names`` then gives each a
column name: ``metrics.f1`` when the name is recorded one way only, ``metrics.f1.val``/``metrics.f1.test`` when it
repeats across datasets or splits. The raw keys are what the cache keeps, so qualification follows the whole index.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
import polars as pl

from mlrepo.repo_index.records import ModelRecord
from mlrepo.repo_index.scanner import Found

SEP = "\x1f"  # separates a raw metric key's parts; never in a public column name
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
# ``_dirs``/``_meta`` are path lists joined by SEP (``join_paths``): text loads from the cache ten times faster
# than a list column, and a warm start reads them for every model.
HIDDEN_SCHEMA: dict[str, pl.DataType] = {"_rel": pl.String(), "_dirs": pl.String(), "_meta": pl.String(),
                                         "_stamp": pl.Int64(), "_store": pl.String()}
BASE_COLUMNS = tuple(BASE_SCHEMA)


@dataclass(slots=True)
class MetricInfo:
    """What a metric column holds: its recorded name, qualifiers and direction (None: decided by name)."""

    name: str
    dataset: str | None
    split: str | None
    direction: str | None

    @property
    def qualifier(self) -> str:
        return ".".join(p for p in (self.dataset, self.split) if p)


def model_id(rel: str) -> str:
    """Short and stable: the same relative path always gives the same id."""
    return hashlib.blake2b(rel.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def join_paths(paths: Sequence[str]) -> str | None:
    """A list of relative paths as one text value (None for none); ``split_paths`` undoes it."""
    return SEP.join(paths) if paths else None


@functools.lru_cache(maxsize=4096)
def split_paths(joined: str | None) -> tuple[str, ...]:
    """Memoised, and a tuple so the shared value cannot be changed: most models of a root share one layout."""
    return tuple(joined.split(SEP)) if joined is not None else ()


def raw_metric_key(name: str, dataset: str | None, split: str | None) -> str:
    if dataset is None and split is None:
        return f"metrics.{name}"
    return SEP.join((f"metrics.{name}", dataset or "", split or ""))


def _clean_text(value: str) -> tuple[str, bool]:
    """Polars strings must be valid UTF-8; undecodable file names are shown escaped."""
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        return os.fsencode(value).decode("utf-8", "backslashreplace"), True


def _param_value(value: object) -> object:
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


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


def _list_column(name: str, values: list[list[str]]) -> pl.Series:
    """A list-of-strings column, split in polars from joined text: building it from Python lists makes a Series
    per row (seconds at 100k), and going through arrow makes polars load pandas (200 ms)."""
    joined = [SEP.join(items) if items else None for items in values]
    return (pl.Series(name, joined, dtype=pl.String).str.split(SEP)
            .fill_null(pl.lit([], dtype=pl.List(pl.String))).alias(name))


def build_frame(found: Sequence[Found], status_of: dict[str, str] | None = None,
                store_of: dict[str, str] | None = None) -> tuple[pl.DataFrame, dict[str, MetricInfo]]:
    """Records to a frame with raw metric keys and hidden revalidation columns."""
    n = len(found)
    base: dict[str, list[object]] = {name: [] for name in (*BASE_COLUMNS, *HIDDEN_SCHEMA)}
    params: dict[str, list[object]] = {}
    metrics: dict[str, list[object]] = {}
    info: dict[str, MetricInfo] = {}
    for i, item in enumerate(found):
        rec: ModelRecord = item.record
        path, bad_path = _clean_text(rec.path)
        errors = list(rec.errors)
        if bad_path:
            errors.append("folder name is not valid UTF-8")
        base["id"].append(model_id(item.rel))
        base["path"].append(path)
        base["format"].append(rec.format)
        base["repo"].append(_clean_text(rec.repo)[0] if rec.repo else None)
        base["line"].append(_clean_text(rec.line)[0] if rec.line else None)
        base["name"].append(_clean_text(rec.name)[0] if rec.name else None)
        base["created_at"].append(rec.created_at)
        base["updated_at"].append(rec.updated_at)
        base["size_bytes"].append(rec.size_bytes)
        base["n_files"].append(rec.n_files)
        base["tags"].append(rec.tags)
        base["status"].append((status_of or {}).get(item.rel, rec.status))
        base["_rel"].append(_clean_text(item.rel)[0])
        base["_dirs"].append(join_paths(item.dirs))
        base["_meta"].append(join_paths(rec.meta_files))
        base["_stamp"].append(item.stamp)
        base["_store"].append((store_of or {}).get(item.rel))
        for key, value in rec.params.items():
            column = params.get(f"params.{key}")
            if column is None:  # not setdefault: its default would allocate a list of n for every value
                column = params[f"params.{key}"] = [None] * n
            column[i] = _param_value(value)
        for metric in rec.metrics:
            key = raw_metric_key(metric.name, metric.dataset, metric.split)
            value = metric.value
            if value is not None and math.isnan(value):
                errors.append(f"metric {metric.name!r} is NaN")
                value = None
            column = metrics.get(key)
            if column is None:
                column = metrics[key] = [None] * n
            column[i] = value
            known = info.get(key)
            if known is None:
                info[key] = MetricInfo(metric.name, metric.dataset, metric.split, metric.direction)
            elif known.direction is None and metric.direction:
                known.direction = metric.direction
        base["error"].append("; ".join(errors) if errors else None)
    columns: dict[str, object] = {}
    for name, dtype in {**BASE_SCHEMA, **HIDDEN_SCHEMA}.items():
        columns[name] = _list_column(name, base[name]) if isinstance(dtype, pl.List) else pl.Series(
            name, base[name], dtype=dtype)
    for key in sorted(params):
        columns[key] = _column(params[key])
    for key in sorted(metrics):
        columns[key] = pl.Series(key, metrics[key], dtype=pl.Float64)
    return pl.DataFrame(columns), info


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


def merge_info(infos: Iterable[dict[str, MetricInfo]]) -> dict[str, MetricInfo]:
    merged: dict[str, MetricInfo] = {}
    for info in infos:
        for key, meta in info.items():
            known = merged.get(key)
            if known is None:
                merged[key] = MetricInfo(meta.name, meta.dataset, meta.split, meta.direction)
            elif known.direction is None and meta.direction:
                known.direction = meta.direction
    return merged

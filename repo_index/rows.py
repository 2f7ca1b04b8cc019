"""Scanned records to plain column lists: the half of building the table that needs no polars.

A parallel scan runs this in its worker process (which never imports polars) and sends back the lists; the main
process merges every part and makes the frame once (``table.frame_of``), so the result does not depend on how the
scan was split. Metrics are stored under a raw key (name plus dataset/split qualifiers); ``table.public_names``
gives each its column name.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson
from mlrepo.repo_index.records import ModelRecord
from mlrepo.repo_index.scanner import Found, ScanResult

SEP = "\x1f"  # separates a raw metric key's parts and joined paths; never in a public column name
BASE_NAMES = ("id", "path", "format", "repo", "line", "name", "created_at", "updated_at", "size_bytes", "n_files",
              "tags", "status", "error")
# ``_dirs``/``_meta`` are path lists joined by SEP (``join_paths``): text loads from the cache ten times faster
# than a list column, and a warm start reads them for every model.
# ``_nested``: sub-folders of the model that are models of their own (``ModelRecord.nested``): removing the model
# must leave them in place.
HIDDEN_NAMES = ("_rel", "_dirs", "_meta", "_stamp", "_store", "_source_id", "_nested")


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


@dataclass(slots=True)
class Rows:
    """``n`` models as columns: base and hidden columns (times as epoch microseconds), then params and metrics
    (None where a model has none)."""

    n: int = 0
    base: dict[str, list[object]] = field(default_factory=lambda: {k: [] for k in (*BASE_NAMES, *HIDDEN_NAMES)})
    params: dict[str, list[object]] = field(default_factory=dict)
    metrics: dict[str, list[object]] = field(default_factory=dict)
    info: dict[str, MetricInfo] = field(default_factory=dict)


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
    if value.isascii():  # nearly every name, and much cheaper than encoding
        return value, False
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        return os.fsencode(value).decode("utf-8", "backslashreplace"), True


def _param_value(value: object) -> object:
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and math.isnan(value):
            return None
        return value
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _micros(when: datetime | None) -> int | None:
    """A time as microseconds since the epoch (UTC; a naive time is taken as UTC, as polars would): polars turns
    a list of ints into a datetime column ten times faster than a list of datetimes."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // _MICROSECOND


def collect_rows(found: Sequence[Found], store_of: dict[str, str] | None = None) -> Rows:
    """Records to columns, with raw metric keys and the hidden revalidation columns."""
    n = len(found)
    rows = Rows(n)
    base, params, metrics, info = rows.base, rows.params, rows.metrics, rows.info
    store_of = store_of or {}
    for i, item in enumerate(found):
        rec: ModelRecord = item.record
        path, bad_path = _clean_text(rec.path)
        errors = rec.errors.copy()
        if bad_path:
            errors.append("folder name is not valid UTF-8")
        base["id"].append(model_id(item.rel))
        base["path"].append(path)
        base["format"].append(rec.format)
        base["repo"].append(_clean_text(rec.repo)[0] if rec.repo else None)
        base["line"].append(_clean_text(rec.line)[0] if rec.line else None)
        base["name"].append(_clean_text(rec.name)[0] if rec.name else None)
        base["created_at"].append(_micros(rec.created_at))
        base["updated_at"].append(_micros(rec.updated_at))
        base["size_bytes"].append(rec.size_bytes)
        base["n_files"].append(rec.n_files)
        base["tags"].append(rec.tags)
        base["status"].append(rec.status)
        base["_rel"].append(_clean_text(item.rel)[0])
        base["_dirs"].append(join_paths(item.dirs))
        base["_meta"].append(join_paths(rec.meta_files))
        base["_stamp"].append(item.stamp)
        base["_store"].append(store_of.get(item.rel))
        base["_source_id"].append(rec.source_id)
        base["_nested"].append(join_paths(rec.nested) if rec.nested else None)
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
    return rows


def scanned_rows(result: ScanResult) -> Rows:
    """The models a scan read (folders and store runs) as columns."""
    return collect_rows([*result.found, *result.store_found], result.store_of())


def merge_rows(parts: Sequence[Rows]) -> Rows:
    """Parts one after another; a param or metric column missing from a part is None there. Each part's lists are
    dropped once copied (the parts are not used again), so that two copies of a column never coexist."""
    if len(parts) == 1:
        return parts[0]
    merged = Rows(sum(p.n for p in parts))
    for kind in ("params", "metrics"):
        target: dict[str, list[object]] = getattr(merged, kind)
        names = {name for part in parts for name in getattr(part, kind)}
        for name in names:
            column: list[object] = []
            for part in parts:
                column.extend(getattr(part, kind).pop(name, None) or [None] * part.n)
            target[name] = column
    for name, column in merged.base.items():
        for part in parts:
            column.extend(part.base.pop(name))
    merged.info = merge_info(p.info for p in parts)
    return merged


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

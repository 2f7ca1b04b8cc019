"""The index of a root: scan (or revalidate the cache), then one polars DataFrame with the public columns."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
from mlrepo.errors import UsageError
from mlrepo.repo_index import parallel
from mlrepo.repo_index.cache import Cache
from mlrepo.repo_index.labels import label_expr
from mlrepo.repo_index.rows import (
    MetricInfo,
    _clean_text,
    merge_info,
    merge_rows,
    scanned_rows,
)
from mlrepo.repo_index.scanner import Found, Scanner
from mlrepo.repo_index.state import migrate
from mlrepo.repo_index.table import (
    BASE_COLUMNS,
    HIDDEN_SCHEMA,
    ColumnLists,
    build_frame,
    frame_of,
    public_names,
)

if TYPE_CHECKING:
    from mlrepo.repo_index.remote.index import RemoteStats

log = logging.getLogger(__name__)


class RootError(UsageError):
    """The root itself cannot be indexed (missing, not a folder)."""


@dataclass(slots=True)
class ScanStats:
    read: int = 0
    reused: int = 0
    seconds: float = 0.0
    cache_written: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # what the cache keeps beside the table (searched folders' mtimes, store files), for the live updater
    skeleton: dict[str, int] = field(default_factory=dict)
    stores: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    remote: RemoteStats | None = None  # a remote root's requests (repo_index.remote)


class Index(ColumnLists):
    """One row per model under ``root``. ``df`` is the public table; ``metrics`` describes its metric columns."""

    source_columns: tuple[str, ...] = ()  # columns saying which root a row came from (a team index has host, root)

    def __init__(self, root: str, raw: pl.DataFrame, info: dict[str, MetricInfo], stats: ScanStats) -> None:
        self.root = root
        self.raw = raw
        self.info = info  # raw metric key -> MetricInfo (what the cache keeps; ``metrics`` is keyed by column)
        self.stats = stats
        names = public_names(info)
        self.metrics: dict[str, MetricInfo] = {names[k]: v for k, v in info.items() if k in raw.columns}
        public = raw.drop(HIDDEN_SCHEMA.keys()).rename({k: v for k, v in names.items() if k in raw.columns})
        public = _with_pins(root, public)
        metric_cols = sorted(c for c in public.columns if c.startswith("metrics."))
        param_cols = sorted(c for c in public.columns if c.startswith("params."))
        self.df: pl.DataFrame = with_tag_columns(public.select([*BASE_COLUMNS, *metric_cols, *param_cols]))

    def __len__(self) -> int:
        return self.df.height

    def counts_by_format(self) -> dict[str, int]:
        return dict(Counter(self.df["format"].to_list()))

    def unreadable(self) -> pl.DataFrame:
        return self.df.filter(pl.col("error").is_not_null()).select("id", "path", "format", "error")

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (needs the extra: ``pip install 'mlrepo[pandas]'``)."""
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ModuleNotFoundError(f"Index.to_pandas() needs {exc.name or 'pandas'}, which is not installed: "
                                      "pip install 'mlrepo[pandas]'", name=exc.name) from None
        return self.df.to_pandas()

    def _repr_html_(self) -> str:
        """Jupyter shows the index as its table, under a line saying where it comes from."""
        from html import escape

        by_format = ", ".join(f"{fmt} {n}" for fmt, n in sorted(self.counts_by_format().items()))
        head = f"<p><b>mlrepo index</b> of <code>{escape(self.root)}</code>: {len(self)} models"
        return head + (f" ({escape(by_format)})" if by_format else "") + "</p>" + self.df._repr_html_()

    def __repr__(self) -> str:
        return f"<mlrepo Index of {self.root!r}: {len(self)} models>"


MAX_TAG_COLUMNS = 200


def with_tag_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """One ``tags.<key>`` column per key of the ``key=value`` tags (MLflow's tags, ``--where "tags.stage =
    'prod'"``); ``tags`` keeps the whole list, so ``tags contains 'stage=prod'`` works too."""
    pairs = frame["tags"].explode().drop_nulls()
    keys = sorted({t.split("=", 1)[0] for t in pairs.filter(pairs.str.contains("=", literal=True)).unique()})
    keys = [k for k in keys if k and f"tags.{k}" not in frame.columns][:MAX_TAG_COLUMNS]
    if not keys:
        return frame
    return frame.with_columns(
        pl.col("tags").list.eval(pl.element().filter(pl.element().str.starts_with(f"{key}="))
                                 .str.slice(len(key) + 1)).list.first().alias(f"tags.{key}")
        for key in keys)


def _with_pins(root: str, public: pl.DataFrame) -> pl.DataFrame:
    """Pinned models (mlrepo's own state, ``pins``) carry the tag ``pinned``."""
    from mlrepo.repo_index.pins import TAG, pinned_ids
    from mlrepo.repo_index.remote.location import is_url

    ids = set() if is_url(root) else pinned_ids(root)  # pins of a remote root: not kept yet
    if not ids or "tags" not in public.columns:
        return public
    return public.with_columns(pl.when(pl.col("id").is_in(list(ids)))
                               .then(pl.col("tags").list.concat(pl.lit([TAG])).list.unique(maintain_order=True))
                               .otherwise(pl.col("tags")).alias("tags"))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Scanning makes many small objects and no cycles; the collector's passes cost seconds at 100k models."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _drop_empty(frame: pl.DataFrame) -> pl.DataFrame:
    """Metric and param columns that no model has any more are not columns of the index."""
    empty = [c for c in frame.columns
             if c.startswith(("metrics.", "params.")) and frame[c].null_count() == frame.height]
    return frame.drop(empty)


def cached_index(root: str | os.PathLike[str]) -> Index | None:
    """The cached table as it was last written, without looking at the disk: for painting a screen at once,
    to be followed by ``open_index`` (which revalidates) before anything acts on it."""
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    loaded = Cache(root).load_table() if os.path.isdir(root) else None
    if loaded is None:
        return None
    frame, info, _state = loaded
    return Index(root, frame, info, ScanStats())


def open_index(root: str | os.PathLike[str] = ".", *, rebuild: bool = False, use_cache: bool = True,
               write_cache: bool = True) -> Index:
    """Index ``root``: revalidate the cache against the disk (re-reading only what changed), or scan afresh.
    ``write_cache=False`` reads a cache but never writes one (a dry run leaves nothing behind)."""
    start = time.perf_counter()
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(root):
        raise RootError(f"{root}: not a folder" if os.path.exists(root) else f"{root}: no such folder")
    cache = Cache(root)
    if write_cache:  # an older .mlrepo/ inside an MLflow file store moves out of MLflow's way (never in a dry run)
        migrated = migrate(root)
        if migrated:
            log.warning(migrated)
    if use_cache and write_cache:
        cache.prepare()  # before the walk: creating .mlrepo/ changes the root's mtime the scan records
    with _no_gc():
        loaded = None if rebuild or not use_cache else cache.load()
        previous_frame, previous, previous_info = loaded if loaded else (None, None, {})
        scanner = Scanner(root, previous=previous, extra_skip=[cache.dir])
        if previous is None:
            result, parts = parallel.scan(scanner)
        else:
            result = scanner.scan()
            parts = [scanned_rows(result)]
        rows = merge_rows(parts)
        # drop the records before the collector is back, or its first pass walks every one of them (~0.1 s at 20k);
        # and before the frame is made, which is the peak of memory: the merged columns hold every value
        del parts
        result.found.clear()
        result.store_found.clear()
        fresh_info, n_read = rows.info, rows.n
        fresh = frame_of(rows)
        del rows
    reused = set(result.reused) | set(result.store_reused)
    if previous_frame is not None and fresh.is_empty() and len(reused) == previous_frame.height:
        raw, info = previous_frame, previous_info  # nothing changed: the cached table is the index
    else:
        frames = [fresh]
        if previous_frame is not None and reused:
            frames.insert(0, previous_frame.filter(pl.col("_rel").is_in(list(reused))))
        raw = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else fresh
        raw = _drop_empty(raw.unique("_rel", keep="last", maintain_order=True).sort("path"))
        info = {k: v for k, v in merge_info([previous_info, fresh_info]).items() if k in raw.columns}

    stats = ScanStats(read=n_read, reused=len(reused),
                      skipped=result.skipped, skeleton=result.skeleton, stores=result.stores)
    changed = (previous is None or previous_frame is None or stats.read > 0
               or raw.height != previous_frame.height or result.skeleton != previous.skeleton)
    if use_cache and write_cache and changed:
        stats.cache_written = cache.save(raw, result.skeleton, result.stores, info)
    stats.seconds = time.perf_counter() - start
    from mlrepo.repo_index.archived import (
        with_archived,  # archived/trashed models stay listed (not cached)
    )
    raw, info = with_archived(root, raw, info)
    return Index(root, raw, info, stats)


def apply_changes(index: Index, found: Sequence[Found], removed: Iterable[str] = (),
                  store_of: dict[str, str] | None = None) -> Index:
    """A new Index with the models in ``found`` inserted or replaced and those at ``removed`` (rels) dropped.

    Costs one filter, one concat and one sort of the table, never a scan; metric columns are re-qualified over
    the whole index (``metrics.f1`` becomes ``metrics.f1.val``/``.test`` when a split appears), as in open_index.
    """
    raw = index.raw
    gone = {_clean_text(rel)[0] for rel in (*removed, *(f.rel for f in found))}  # as build_frame stores them
    if gone:
        raw = raw.filter(~pl.col("_rel").is_in(list(gone)))
    info = index.info
    if found:
        fresh, fresh_info = build_frame(found, store_of=store_of)
        raw = pl.concat([raw, fresh], how="diagonal_relaxed")
        info = merge_info([info, fresh_info])
    raw = _drop_empty(raw.sort("path"))
    info = {k: v for k, v in info.items() if k in raw.columns}
    return Index(index.root, raw, info, index.stats)


MIN_ID_PREFIX = 4


def find_model(index: Index, ref: str) -> dict[str, object]:
    """A model by path, id (or unique id prefix), its ``repo/line/name`` label as the listings print it (an MLflow
    run has no line: ``experiment/run``; a tail such as ``line/name`` or ``name`` is enough when unique), or its
    folder (an MLflow run id, ``version_3``), or its id in a store (the run id of an mlflow.db run). Raises
    UsageError naming the choices."""
    from mlrepo.errors import UsageError
    from mlrepo.repo_index.remote.location import is_url

    df = index.df.with_columns(index.raw["_source_id"])  # same row order: df is made from raw
    path = ref.rstrip("/") if is_url(ref) else os.path.abspath(os.path.expanduser(ref))
    label = label_expr()
    tail = "/".join(p for p in ref.strip("/").split("/") if p not in ("", "—", "-"))
    tries = [pl.col("path") == path]
    if len(ref) >= MIN_ID_PREFIX:
        tries.append(pl.col("id").str.starts_with(ref.lower()))
    if tail:
        tries += [(label == tail) | label.str.ends_with(f"/{tail}"), pl.col("path").str.ends_with(f"/{tail}"),
                  pl.col("_source_id") == tail]
    hits = df.clear()
    for condition in tries:
        hits = df.filter(condition)
        if not hits.is_empty():
            break
    hits = hits.drop("_source_id")
    if hits.height == 1:
        return hits.row(0, named=True)
    if hits.is_empty() and 0 < len(ref) < MIN_ID_PREFIX and all(c in "0123456789abcdef" for c in ref.lower()):
        short = df.filter(pl.col("id").str.starts_with(ref.lower()))
        if not short.is_empty():
            raise UsageError(f"id prefix {ref!r} is too short (give at least {MIN_ID_PREFIX} characters): "
                             f"{short.height} model(s) start with it: {_candidates(short)}")
    if hits.is_empty():
        raise UsageError(f"no model {ref!r} under {index.root} (give an id, a path or repo/line/name)")
    raise UsageError(f"{ref!r} matches {hits.height} models: {_candidates(hits)}")


def _candidates(rows: pl.DataFrame, limit: int = 8) -> str:
    shown = ", ".join(f"{r['id']} ({'/'.join(str(p) for p in (r['repo'], r['line'], r['name']) if p)})"
                      for r in rows.head(limit).iter_rows(named=True))
    return shown + (f", … ({rows.height} in all)" if rows.height > limit else "")

"""The team index: many roots' indexes in one Delta Lake table, queried as one.

Each root publishes its partition (``host`` + the root's real path) with Delta's optimistic concurrency: a commit
is the log entry for the version after the one it read, written only if absent, so when another machine committed
first it fails, and the publish is redone on the new version (schema, casts and all). deltalake's own commit retry
is turned off: it let a second racing CREATE TABLE land as a later version and replace the schema the first
writer's columns were in. On S3 the log entry is a conditional PUT (``If-None-Match``; delta-rs'
``conditional_put=etag``), never the unsafe copy-then-rename. Roots record different params and metrics:
new columns are merged into the table's schema (numbers as floats, so ints and floats meet), and a value the
table's column type cannot hold is refused by name, never silently changed. Queries scan the table lazily:
``--where`` is pushed into the Parquet scan, so other partitions' files, and row groups whose statistics rule the
filter out, are not read.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import polars as pl
from mlrepo.errors import FailedError, UsageError
from mlrepo.repo_index.filtering import compile_where
from mlrepo.repo_index.remote.location import is_url
from mlrepo.repo_index.rows import MetricInfo, merge_info
from mlrepo.repo_index.table import BASE_COLUMNS, SOURCE_COLUMNS, ColumnLists

TEAM_COLUMNS = (*SOURCE_COLUMNS, "published_at")
INFO_COLUMN = "_metrics"  # per row, the same JSON for a whole partition: each metric column's name and direction
MISSING = "the team index needs the deltalake package: pip install 'mlrepo[team]'"


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError:
        raise FailedError(MISSING) from None
    return deltalake


def table_url(url: str) -> str:
    """A Delta table's location as deltalake takes it: object-store URLs as given, local paths absolute."""
    if "://" in url and not url.startswith("file://"):
        if not url.startswith(("s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://")):
            raise UsageError(f"{url}: not a table location (give a folder, file://, s3://, gs:// or az://)")
        return url
    path = url.removeprefix("file://")
    return os.path.abspath(os.path.expanduser(path))


def storage_options(url: str, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What deltalake and polars need beyond the standard ``AWS_*``/``GOOGLE_*``/``AZURE_*`` variables they read.

    S3 commits use conditional PUTs unless a locking provider is configured; an ``http://`` endpoint
    (a local MinIO or SeaweedFS) is allowed explicitly, since object_store refuses plain HTTP by default.
    """
    if not url.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, str] = {}
    if not (env.get("AWS_S3_LOCKING_PROVIDER") or env.get("AWS_CONDITIONAL_PUT")):
        options["conditional_put"] = "etag"
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    if endpoint:
        options["endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    for name, key in (("AWS_ACCESS_KEY_ID", "access_key_id"), ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
                      ("AWS_SESSION_TOKEN", "session_token"), ("AWS_REGION", "region")):
        if env.get(name):  # polars' own reader does not read every variable deltalake does
            options[key] = env[name]
    options.setdefault("region", env.get("AWS_DEFAULT_REGION", "us-east-1"))
    return options


@dataclass(frozen=True, slots=True)
class Published:
    """What one publish did: the partition it replaced and the table version its commit made."""

    url: str
    host: str
    root: str
    rows: int
    version: int
    attempts: int


def this_host(env: Mapping[str, str] = os.environ) -> str:
    """The machine's name in the partition key (``MLREPO_HOST`` overrides it, e.g. for a container)."""
    return env.get("MLREPO_HOST") or socket.gethostname()


def _info_json(metrics: Mapping[str, MetricInfo]) -> str:
    return orjson.dumps({col: [m.name, m.dataset, m.split, m.direction] for col, m in sorted(metrics.items())}
                        ).decode()


def publishable(df: pl.DataFrame, metrics: Mapping[str, MetricInfo], host: str, root: str,
                published_at: datetime) -> pl.DataFrame:
    """The rows a root contributes: its public columns, the partition key, and its metric descriptions."""
    untyped = [c for c, t in df.schema.items() if t == pl.Null]  # no type yet: text holds any value later
    return df.with_columns(
        *(pl.col(c).cast(pl.String) for c in untyped),
        pl.lit(host, pl.String).alias("host"),
        pl.lit(root, pl.String).alias("root"),
        pl.lit(published_at, pl.Datetime("us", "UTC")).alias("published_at"),
        pl.lit(_info_json(metrics), pl.String).alias(INFO_COLUMN),
    )


def _numbers_as_float(df: pl.DataFrame) -> pl.DataFrame:
    """Params that are numbers go in as Float64 (exact for integers up to 2**53): a column that holds ints under one
    root and floats under another then has one type, and a Delta column's type never has to change."""
    ints = [c for c, t in df.schema.items() if c.startswith("params.") and t.is_integer()]
    return df.with_columns(pl.col(c).cast(pl.Float64) for c in ints)


def fit_types(table: Mapping[str, pl.DataType], rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` in the table's columns (its columns this root lacks as nulls, new ones after them), each cast to
    the table's type where no value changes meaning: anything into a text column, numbers written as text into a
    number column (YAML reads ``1e-3`` as text). Otherwise the publish is refused, naming the column: rewriting
    the table to widen a type would race other publishers."""
    casts = []
    for col, dtype in rows.schema.items():
        target = table.get(col)
        if target is None or target == dtype or target == pl.Null:
            continue
        if target == pl.String or dtype == pl.Null or (dtype.is_numeric() and target.is_numeric()):
            casts.append(pl.col(col).cast(target))
            continue
        if dtype == pl.String and target.is_numeric():
            parsed = rows[col].cast(target, strict=False)
            if parsed.null_count() == rows[col].null_count():
                casts.append(pl.col(col).cast(target))
                continue
        raise FailedError(f"{col} is {_kind(target)} in the team index but {_kind(dtype)} here; "
                          f"rename the key or make its values {_kind(target)}")
    missing = [pl.lit(None, dtype).alias(col) for col, dtype in table.items() if col not in rows.columns]
    fitted = rows.with_columns(*casts, *missing)
    return fitted.select(*table, *(c for c in rows.columns if c not in table))


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "numbers"
    return {pl.String: "text", pl.Boolean: "true/false"}.get(type(dtype), str(dtype))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _conflict(exc: Exception, deltalake: Any) -> bool:
    """A commit that lost a race: another writer committed first (retry on the new version)."""
    exceptions = deltalake.exceptions
    if isinstance(exc, exceptions.CommitFailedError):
        return True
    text = str(exc).lower()
    return isinstance(exc, exceptions.DeltaError) and ("version" in text and "exist" in text
                                                      or "transaction" in text and "conflict" in text)


def _created_meanwhile(exc: Exception, deltalake: Any) -> bool:
    """Creating the table lost to another creator (deltalake says "already exists")."""
    return isinstance(exc, deltalake.exceptions.DeltaError) and "already exists" in str(exc).lower()


def publish(df: pl.DataFrame, metrics: Mapping[str, MetricInfo], root: str, url: str, *, host: str | None = None,
            max_attempts: int = 30) -> Published:
    """Replace this root's partition of the table at ``url`` (creating the table if needed) with ``df``."""
    deltalake = _deltalake()
    location = table_url(url)
    options = storage_options(location)
    host = host or this_host()
    root = root if is_url(root) else os.path.realpath(root)
    rows = _numbers_as_float(publishable(df, metrics, host, root, datetime.now(timezone.utc)))
    predicate = f"host = {_quote(host)} AND root = {_quote(root)}"
    for attempt in range(1, max_attempts + 1):
        try:
            once = deltalake.CommitProperties(max_commit_retries=0)
            table = _open(location, options, deltalake)
            if table is None:  # an empty table first: racing creators make one version 0, the others retry
                deltalake.DeltaTable.create(location, rows.head(0).to_arrow().schema, mode="error",
                                            partition_by=list(SOURCE_COLUMNS), storage_options=options,
                                            commit_properties=once)
                table = deltalake.DeltaTable(location, storage_options=options)
            data = fit_types(pl.scan_delta(table).collect_schema(), rows)
            deltalake.write_deltalake(table, data.to_arrow(), mode="overwrite", predicate=predicate,
                                      schema_mode="merge", partition_by=list(SOURCE_COLUMNS),
                                      commit_properties=once)
        except FailedError:
            raise
        except Exception as exc:
            if (_conflict(exc, deltalake) or _created_meanwhile(exc, deltalake)) and attempt < max_attempts:
                time.sleep(random.uniform(0, min(2.0, 0.05 * 2 ** attempt)))  # back off, out of step with others
                continue
            raise FailedError(f"could not publish to {url}: {_first_line(exc)}") from None
        version = deltalake.DeltaTable(location, storage_options=options).version()
        return Published(url, host, root, rows.height, version, attempt)
    raise AssertionError("unreachable")


def _open(location: str, options: dict[str, str], deltalake: Any) -> Any:
    try:
        return deltalake.DeltaTable(location, storage_options=options)
    except deltalake.exceptions.TableNotFoundError:
        return None


def _first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:300]


class TeamIndex(ColumnLists):
    """The union of every root published to a table, shaped like ``Index`` for the listing commands: ``df`` holds
    the rows a ``--where`` selects (read with the filter pushed into the scan), ``len()`` counts all rows."""

    source_columns = SOURCE_COLUMNS

    def __init__(self, url: str, df: pl.DataFrame, metrics: dict[str, MetricInfo], total: int) -> None:
        self.root = url
        self.df = df
        self.metrics = metrics
        self._total = total

    def __len__(self) -> int:
        return self._total

    def unreadable(self) -> pl.DataFrame:
        """Rows whose metadata could not be read fully on the machine that published them (the TUI says so)."""
        return self.df.filter(pl.col("error").is_not_null()).select("id", "path", "format", "error")


def scan(url: str) -> pl.LazyFrame:
    """The table at ``url`` as a lazy frame (nothing but the Delta log is read yet)."""
    deltalake = _deltalake()
    location = table_url(url)
    try:
        table = deltalake.DeltaTable(location, storage_options=storage_options(location))
    except deltalake.exceptions.TableNotFoundError:
        raise UsageError(f"{url}: no team index there (publish one with: mlrepo index ROOT --publish {url})") from None
    except Exception as exc:
        raise FailedError(f"could not open {url}: {_first_line(exc)}") from None
    return pl.scan_delta(table)


def _metrics_of(lf: pl.LazyFrame, columns: list[str]) -> dict[str, MetricInfo]:
    """Each metric column's description, merged over the partitions (one distinct value per partition)."""
    infos = []
    for text in lf.select(pl.col(INFO_COLUMN).unique()).collect()[INFO_COLUMN].drop_nulls():
        infos.append({col: MetricInfo(*spec) for col, spec in orjson.loads(text).items()})
    merged = merge_info(infos)
    return {col: merged.get(col) or MetricInfo(col.removeprefix("metrics."), None, None, None)
            for col in columns if col.startswith("metrics.")}


def open_team(url: str, where_text: str | None = None, limit: int | None = None) -> TeamIndex:
    """The union of the table at ``url``: the rows ``where_text`` selects, the first ``limit`` of them when given
    (the table's order), both inside the scan."""
    lf = scan(url)
    schema = lf.collect_schema()
    metric_cols = sorted(c for c in schema if c.startswith("metrics."))
    param_cols = sorted(c for c in schema if c.startswith("params."))
    columns = [*BASE_COLUMNS, *TEAM_COLUMNS, *metric_cols, *param_cols]
    metrics = _metrics_of(lf, columns)
    selected = lf.select(columns)  # each root's rows in path order; no global sort (it would copy every row)
    if where_text is not None:
        empty = pl.DataFrame(schema={c: schema[c] for c in columns})
        selected = selected.filter(compile_where(empty, where_text, metrics))
    if limit is not None:
        selected = selected.head(limit)
    try:
        df = selected.collect()
        total = lf.select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as exc:  # the filter was checked: this is the store failing
        raise FailedError(f"could not read {url}: {_first_line(exc)}") from None
    return TeamIndex(url, df, metrics, int(total))

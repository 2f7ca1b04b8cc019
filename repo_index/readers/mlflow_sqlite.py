"""MLflow SQLite tracking stores (``mlflow.db``): every run row is a model, its folder its local artifact location.

The database is opened read-only and without ``immutable``, so a running MLflow keeps writing and the index sees
its latest commit; everything is read in one transaction (a consistent snapshot) with a handful of queries.
Columns are looked up first (``PRAGMA table_info``) since MLflow's schema changed over the years. A database
that is locked or damaged becomes one record, the database file itself, that says why.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterable
from urllib.parse import unquote, urlparse

from mlrepo.errors import ReadError, in_words
from mlrepo.repo_index.folder_walk import store_stamp
from mlrepo.repo_index.readers.mlflow_file import (
    RUN_NAME_TAG,
    make_metric,
    ms_to_datetime,
    param_value,
    run_status,
    tag_list,
)
from mlrepo.repo_index.readers.mlflow_models_db import logged_models, registry_tags
from mlrepo.repo_index.records import Metric, ModelRecord

BUSY_TIMEOUT = 1.5  # seconds to wait for a writer's lock before reporting the store as locked
NAMELESS = "\x00nameless"  # stands for metric rows with an empty or NULL key: no real key holds a NUL byte
HISTORY_ROWS = 200_000  # metric histories are loaded when the metrics table is at most this long
MAX_SUFFIX = 8  # path components tried when looking for a moved artifact folder next to the database


class StoreError(ReadError):
    pass


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f'PRAGMA table_info("{table}")')}


def _select(con: sqlite3.Connection, table: str, cols: dict[str, set[str]], wanted: Iterable[str]) -> list[tuple]:
    """``SELECT wanted FROM table``, a missing column read as NULL; [] when the table is missing."""
    have = cols.get(table)
    if not have:
        return []
    exprs = ", ".join(f'"{c}"' if c in have else "NULL" for c in wanted)
    return con.execute(f'SELECT {exprs} FROM "{table}"').fetchall()


def _local_path(uri: str | None, base: str) -> str | None:
    """A ``file://`` URI or a plain path as an absolute local path (relative ones from ``base``); None if remote."""
    if not uri:
        return None
    if "://" in uri or (":" in uri.split("/", 1)[0] and len(uri.split(":", 1)[0]) > 1):
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            return None
        uri = unquote(parsed.path)
    return os.path.normpath(os.path.join(base, uri))


def _is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _Locator:
    """A run's folder: its recorded artifact location, or the same layout next to the database when moved."""

    def __init__(self, db_dir: str, root: str) -> None:
        self.db_dir = db_dir
        self.root = root
        self.moved: dict[str, str] = {}  # old prefix -> new prefix, learned from runs found next to the database

    def first_pass(self, recorded: str) -> str | None:
        if os.path.isdir(recorded) and _is_under(recorded, self.root):
            return recorded
        parts = recorded.strip(os.sep).split(os.sep)
        for k in range(1, min(MAX_SUFFIX, len(parts) - 1) + 1):
            candidate = os.path.join(self.db_dir, *parts[-k:])
            if candidate != recorded and os.path.isdir(candidate):
                self.moved[os.path.join(os.sep, *parts[:-k])] = self.db_dir
                return candidate
        return recorded if os.path.isdir(recorded) else None

    def second_pass(self, recorded: str) -> str:
        """A run with no folder anywhere: where it would be, following the move its siblings made."""
        for old, new in sorted(self.moved.items(), key=lambda kv: -len(kv[0])):
            if _is_under(recorded, old):
                return os.path.join(new, os.path.relpath(recorded, old))
        return recorded


class MlflowSqliteReader:
    format = "mlflow"
    store_files = ("mlflow.db",)
    host = None  # an mlflow.db sits in a plain folder (the project MLflow was started in)

    def stamp(self, path: str) -> int:
        return store_stamp(path)

    def read_store(self, path: str, root: str) -> list[ModelRecord]:
        try:
            return self._read(path, root)
        except Exception as exc:  # noqa: BLE001 - locked, damaged or foreign: reported, never raised
            return [self._failed(path, exc)]

    def _failed(self, path: str, exc: BaseException) -> ModelRecord:
        message = str(exc) if isinstance(exc, sqlite3.Error) and str(exc) else in_words(exc)
        if isinstance(exc, sqlite3.OperationalError) and "locked" in message:
            why = f"{message} (another process holds a write lock; try again later)"
        elif isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            why = f"not a readable SQLite database ({message})"
        else:
            why = message
        rec = ModelRecord(path=path, format=self.format, repo=os.path.basename(os.path.dirname(path)) or None,
                          name=os.path.basename(path))
        rec.add_error(f"{os.path.basename(path)}: cannot read the MLflow store: {why}")
        try:
            st = os.stat(path)
            rec.size_bytes, rec.n_files = st.st_size, 1
            rec.updated_at = ms_to_datetime(st.st_mtime_ns // 1_000_000)
        except OSError:
            pass
        return rec

    # -- reading -------------------------------------------------------------------------------------------------
    def _read(self, path: str, root: str) -> list[ModelRecord]:
        if not os.path.isfile(path):
            raise StoreError("not a file")
        uri = "file:" + _uri_path(os.path.abspath(path)) + "?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            con.execute("BEGIN")  # one snapshot for every query below; closing the connection ends it
            return self._read_tables(con, path, root)
        finally:
            con.close()

    def _read_tables(self, con: sqlite3.Connection, path: str, root: str) -> list[ModelRecord]:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "runs" not in tables or "experiments" not in tables:
            raise StoreError("no runs/experiments tables: not an MLflow tracking database")
        cols = {t: _columns(con, t) for t in ("experiments", "runs", "params", "tags", "latest_metrics", "metrics")
                if t in tables}

        experiments = {
            str(eid): (name, stage, loc)
            for eid, name, stage, loc in _select(con, "experiments", cols,
                                                 ("experiment_id", "name", "lifecycle_stage", "artifact_location"))
        }
        runs = _select(con, "runs", cols, ("run_uuid", "name", "status", "start_time", "end_time",
                                          "lifecycle_stage", "artifact_uri", "experiment_id"))
        params: dict[str, dict[str, object]] = {}
        for run_id, key, value in _select(con, "params", cols, ("run_uuid", "key", "value")):
            if key is not None:
                params.setdefault(run_id, {})[str(key)] = param_value("" if value is None else str(value))
        tags: dict[str, dict[str, str]] = {}
        for run_id, key, value in _select(con, "tags", cols, ("run_uuid", "key", "value")):
            if key is not None:
                tags.setdefault(run_id, {})[str(key)] = "" if value is None else str(value)
        latest, history = self._metrics(con, cols)

        db_dir = os.path.dirname(os.path.abspath(path))
        locator = _Locator(db_dir, os.path.abspath(root))
        records: list[tuple[ModelRecord, str | None, str]] = []
        store = os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")
        for row in runs:
            run_id, exp_id = row[0], row[7]
            if run_id is None:
                continue
            run_id = str(run_id)
            fallback = os.path.join(db_dir, "mlruns", str(exp_id), run_id)
            try:
                rec = self._run_record(row, experiments, tags.get(run_id, {}), params.get(run_id, {}),
                                       latest.get(run_id, {}), history.get(run_id, {}))
                rec.repo = store  # the store, then its experiment: two stores' experiments are never one group
                recorded = self._recorded_folder(row[6], experiments.get(str(exp_id), (None,) * 3)[2], run_id,
                                                 db_dir)
                found = locator.first_pass(recorded) if recorded else None
                fallback = recorded or fallback
            except Exception as exc:  # noqa: BLE001 - one odd row is that run's problem, not the store's
                rec = ModelRecord(path="", format=self.format, name=run_id)
                rec.add_error(f"{os.path.basename(path)}: run {run_id}: {in_words(exc)}")
                found = None
            records.append((rec, found, fallback))
        models = [rec for rec, _found, _fallback in records]
        # logged models first: the folders they find next to the database teach the locator where runs moved
        logged = self._logged_models(con, tables, experiments, runs, locator, db_dir, models)
        for rec, found, fallback in records:
            rec.path = found or locator.second_pass(fallback)
        return models + logged

    def _logged_models(self, con: sqlite3.Connection, tables: set[str], experiments: dict[str, tuple],
                       runs: list[tuple], locator: _Locator, db_dir: str, run_records: list[ModelRecord]
                       ) -> list[ModelRecord]:
        """MLflow 3's logged models (rows of their own) and the registry's versions (tags on what they point at)."""
        names = ("logged_models", "logged_model_params", "logged_model_tags", "logged_model_metrics",
                 "model_versions")
        cols = {t: _columns(con, t) for t in names if t in tables}

        def select(table: str, wanted: tuple[str, ...]) -> list[tuple]:
            return _select(con, table, cols, wanted)

        registered = registry_tags(select)
        for rec in run_records:  # a version registered from a run's artifacts (MLflow 2's runs:/ source)
            rec.tags.extend(registered.get(rec.source_id or "", []))

        def folder_of(location: str | None) -> str | None:
            recorded = self._recorded_folder(location, None, "", db_dir)
            return (locator.first_pass(recorded) or recorded) if recorded else None

        run_names = {str(row[0]): str(row[1]) for row in runs if row[0] is not None and row[1]}
        return logged_models(select, experiments, run_names, folder_of, registered)

    def _run_record(self, row: tuple, experiments: dict[str, tuple], run_tags: dict[str, str],
                    params: dict[str, object], points: dict[str, tuple[int, int, float]],
                    hist: dict[str, list[tuple[int, int, float]]]) -> ModelRecord:
        run_id, name, status, start, end, stage, _artifact_uri, exp_id = row
        exp_name, exp_stage, _exp_loc = experiments.get(str(exp_id), (None, None, None))
        rec = ModelRecord(path="", format=self.format, source_id=str(run_id))
        rec.line = str(exp_name) if exp_name is not None else (str(exp_id) if exp_id is not None else None)
        rec.name = str(name or run_tags.get(RUN_NAME_TAG) or run_id)
        rec.status = run_status(status, stage, deleted=str(exp_stage).lower() == "deleted")
        rec.tags = tag_list(run_tags)
        rec.params = params
        last_ts = 0
        for key in sorted(points):
            if key == NAMELESS:
                rec.add_error("a metric of this run has no name (an empty or NULL key in the store); it is not shown")
                continue
            _step, ts, value = points[key]
            last_ts = max(last_ts, ts)
            metric = make_metric(key, hist[key]) if key in hist else Metric(name=key, value=value)
            metric.value = value  # MLflow's own choice of latest value
            rec.metrics.append(metric)
        rec.created_at = ms_to_datetime(start)
        # no end time yet (running): its last logged value, though never before it started
        rec.updated_at = ms_to_datetime(end) or ms_to_datetime(max(last_ts, _int(start))) or rec.created_at
        return rec

    @staticmethod
    def _recorded_folder(artifact_uri: object, exp_loc: object, run_id: str, db_dir: str) -> str | None:
        """The run's folder as recorded: its artifact URI minus ``/artifacts``, as a local path."""
        uri = str(artifact_uri) if artifact_uri else None
        if not uri and exp_loc:
            uri = str(exp_loc).rstrip("/") + f"/{run_id}/artifacts"
        if not uri:
            return None
        uri = uri.rstrip("/")
        local: str | None
        if uri.startswith("mlflow-artifacts:"):  # served by `mlflow server`, which stores under ./mlartifacts
            rest = urlparse(uri).path.lstrip("/")
            local = os.path.normpath(os.path.join(db_dir, "mlartifacts", rest))
        else:
            local = _local_path(uri, db_dir)
        if local is None:
            return None
        return os.path.dirname(local) if os.path.basename(local) == "artifacts" else local

    @staticmethod
    def _metrics(con: sqlite3.Connection, cols: dict[str, set[str]]
                 ) -> tuple[dict[str, dict[str, tuple[int, int, float]]],
                            dict[str, dict[str, list[tuple[int, int, float]]]]]:
        """Latest (step, timestamp, value) per run and key; full histories when the metrics table is small."""
        latest: dict[str, dict[str, tuple[int, int, float]]] = {}
        for run_id, key, value, ts, step, is_nan in _select(
                con, "latest_metrics", cols, ("run_uuid", "key", "value", "timestamp", "step", "is_nan")):
            if run_id is not None and (key is None or key == ""):  # reported on the run, never dropped silently
                latest.setdefault(run_id, {})[NAMELESS] = (0, 0, math.nan)
            if run_id is None or key is None or key == "":
                continue
            latest.setdefault(run_id, {})[str(key)] = (_int(step), _int(ts), _value(value, is_nan))

        history: dict[str, dict[str, list[tuple[int, int, float]]]] = {}
        if "metrics" not in cols:
            return latest, history
        try:
            size = con.execute('SELECT max(rowid) FROM "metrics"').fetchone()[0] or 0
        except sqlite3.OperationalError:  # a table without rowids: treated as too long for histories
            size = HISTORY_ROWS + 1
        if latest and size > HISTORY_ROWS:
            return latest, history
        keep_history = size <= HISTORY_ROWS
        best: dict[tuple[str, str], tuple[int, int, float]] = {}
        cursor = con.execute("SELECT {} FROM \"metrics\"".format(", ".join(
            f'"{c}"' if c in cols["metrics"] else "NULL"
            for c in ("run_uuid", "key", "value", "timestamp", "step", "is_nan"))))
        for run_id, key, value, ts, step, is_nan in cursor:
            if run_id is not None and (key is None or key == ""):
                best[(run_id, NAMELESS)] = (0, 0, math.nan)
            if run_id is None or key is None or key == "":
                continue
            point = (_int(step), _int(ts), _value(value, is_nan))
            if keep_history:
                history.setdefault(run_id, {}).setdefault(str(key), []).append(point)
            if not latest:
                old = best.get((run_id, key))
                if old is None or _order(point) > _order(old):
                    best[(run_id, key)] = point
        for (run_id, key), point in best.items():  # no latest_metrics table (or an empty one): computed here
            latest.setdefault(run_id, {})[str(key)] = point
        return latest, history


def _value(value: object, is_nan: object) -> float:
    if is_nan:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _int(value: object) -> int:
    """Steps and millisecond timestamps; anything unusable is 0."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    return 0


def _order(point: tuple[int, int, float]) -> tuple[int, int, float]:
    return point[0], point[1], -math.inf if math.isnan(point[2]) else point[2]


def _uri_path(path: str) -> str:
    """A path for a ``file:`` URI: characters SQLite's URI parser treats specially are escaped."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")

"""MLflow file store runs: ``<mlruns>/<experiment_id>/<run_id>/`` with ``meta.yaml``, ``params/``, ``metrics/``,
``tags/``.

The experiment folder holds its own ``meta.yaml`` (name, lifecycle stage); a deleted experiment is moved under
``<mlruns>/.trash/``. Params and tags are one file per key (keys with ``/`` are sub-folders); a metric file has one
``timestamp value step`` line per logged value (MLflow before metric steps wrote ``timestamp value``).

The helpers at the top are shared with the SQLite store reader (``mlflow_sqlite``).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.mlflow_meta import load_meta
from mlrepo.repo_index.readers.parsing import MetaError, load_text, read_bytes
from mlrepo.repo_index.records import Metric, ModelRecord

#: The file store writes ``RunStatus`` as an int; the SQLite store as its name.
RUN_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_INT = re.compile(r"^[+-]?\d+$", re.ASCII)
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$", re.ASCII)
_KEY_DIRS = ("params", "metrics", "tags")
TRASH = ".trash"
POLARS_BYTES = 32 * 1024  # metric files at least this long are parsed by polars
RUN_NAME_TAG = "mlflow.runName"


# -- shared with mlflow_sqlite -------------------------------------------------------------------------------------
def param_value(text: str) -> object:
    """MLflow keeps params as text; a value that is wholly a number becomes one, so it compares as a number."""
    s = text.strip()
    if _INT.match(s):
        number = int(s)
        if abs(number) < 2**63 and (len(s.lstrip("+-")) == 1 or not s.lstrip("+-").startswith("0")):
            return number  # "007" is an identifier, not seven
        return text
    if _FLOAT.match(s):
        value = float(s)
        return value if math.isfinite(value) else text
    return text


def run_status(status: object, lifecycle: object, deleted: bool = False) -> str:
    """``deleted`` for a deleted run or experiment; ``active`` for a finished run; else MLflow's status, lowercase."""
    if deleted or str(lifecycle).lower() == "deleted":
        return "deleted"
    if isinstance(status, int) and not isinstance(status, bool):
        name = RUN_STATUS.get(status)
    elif isinstance(status, str) and status.strip().isdigit():
        name = RUN_STATUS.get(int(status))
    else:
        name = str(status).upper() if status else None
    if name is None or name == "FINISHED":
        return "active"
    return name.lower()


def ms_to_datetime(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def read_params_and_tags(rec: ModelRecord, path: str, files: Mapping[str, list[str]]) -> dict[str, str]:
    """``params/`` and ``tags/`` of a run or logged model folder (one file a key, the value its text) into ``rec``;
    returns every tag, MLflow's own included (the run name is one)."""
    for rel in files.get("params", []):
        try:
            rec.params[rel[len("params/"):]] = param_value(load_text(f"{path}/{rel}"))
        except MetaError as exc:
            rec.add_error(f"param {exc}")
    tags: dict[str, str] = {}
    for rel in files.get("tags", []):
        try:
            tags[rel[len("tags/"):]] = load_text(f"{path}/{rel}")
        except MetaError as exc:
            rec.add_error(f"tag {exc}")
    rec.tags = tag_list(tags)
    return tags


def tag_list(tags: dict[str, str]) -> list[str]:
    """User tags as ``key=value`` (``key`` when empty); MLflow's own ``mlflow.*`` tags are not listed."""
    return sorted(k if v == "" else f"{k}={v}" for k, v in tags.items() if not k.startswith("mlflow."))


def make_metric(name: str, points: list[tuple[int, int, float]]) -> Metric:
    """``points`` are (step, timestamp, value). The latest value is MLflow's: the highest step, then the latest
    timestamp, then the largest value; the history is ordered the same way."""
    points = sorted(points)  # tuples: step, then timestamp, then value
    return Metric(name=name, value=points[-1][2], history=[(s, v) for s, _t, v in thin(points)])


def store_label(run_rel: str, exp_dir: str) -> str:
    """Which file store a run belongs to: its ``mlruns`` folder relative to the root (``mlruns``,
    ``proj/mlruns``), or that folder's name when the root is the store itself. Two stores' experiments of one name
    (every project's ``Default``) are then never one group."""
    parts = run_rel.replace(os.sep, "/").split("/")[:-2]  # drop <experiment>/<run>
    if parts and parts[-1] == TRASH:
        parts.pop()
    if parts:
        return "/".join(parts)
    store = os.path.dirname(exp_dir)
    if os.path.basename(store) == TRASH:
        store = os.path.dirname(store)
    return os.path.basename(store) or "mlruns"


# -- the file store reader -----------------------------------------------------------------------------------------
def _files_under(base: str, sub: str) -> list[str]:
    """Relative paths (``sub/key``) of the files under ``base/sub``, keys with ``/`` included; [] when absent."""
    out: list[str] = []
    stack = [sub]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(f"{base}/{rel}") as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(child)
                elif entry.is_file(follow_symlinks=False):
                    out.append(child)
            except OSError:
                continue
    return sorted(out)


def read_metric(name: str, data: bytes) -> tuple[Metric | None, list[int]]:
    """A metric file's latest value and history, and the numbers of its unreadable lines."""
    if len(data) >= POLARS_BYTES and data.endswith(b"\n"):
        metric = _read_metric_polars(name, data)
        if metric is not None:
            return metric, []
    points, bad = parse_metric_lines(data)
    return (make_metric(name, points) if points else None), bad


def _read_metric_polars(name: str, data: bytes) -> Metric | None:
    """Long, well-formed files are parsed by polars (20x faster, without the GIL); None sends them the slow way.
    Imported here: a scan worker loads polars only when a run has such a file."""
    import polars as pl

    try:
        frame = pl.read_csv(data, separator=" ", has_header=False,
                            schema={"ts": pl.Int64(), "value": pl.Float64(), "step": pl.Int64()})
    except Exception:  # noqa: BLE001 - ragged or junk lines: the line-by-line parser says which
        return None
    if frame.height == 0 or frame.null_count().sum_horizontal().item():
        return None
    frame = frame.sort("step", "ts", "value")
    keep = frame[thin(range(frame.height))]
    return Metric(name=name, value=frame["value"][-1], history=list(zip(keep["step"].to_list(),
                                                                       keep["value"].to_list())))


def parse_metric_lines(data: bytes) -> tuple[list[tuple[int, int, float]], list[int]]:
    """(step, timestamp, value) points and the 1-based numbers of the lines that could not be read."""
    lines = data.split(b"\n")
    complete = lines[-1] == b""
    if complete:
        lines.pop()
    fields = [line.split() for line in lines]
    if all(len(f) == 3 for f in fields):  # the common case, every line ``timestamp value step``: one quick pass
        try:
            return [(int(f[2]), int(f[0]), float(f[1])) for f in fields], []
        except ValueError:
            pass
    points: list[tuple[int, int, float]] = []
    bad: list[int] = []
    last = len(lines)
    for number, parts in enumerate(fields, 1):
        if not parts:
            continue
        try:
            if len(parts) == 3:
                ts, value, step = int(parts[0]), float(parts[1]), int(parts[2])
            elif len(parts) == 2 and (complete or number < last):  # before steps existed; not a cut last line
                ts, value, step = int(parts[0]), float(parts[1]), 0
            else:
                raise ValueError
        except ValueError:
            bad.append(number)
            continue
        points.append((step, ts, value))
    return points, bad


class MlflowFileReader:
    format = "mlflow"

    def __init__(self) -> None:
        # experiment folder -> ((mtime_ns, size) of its meta.yaml, name, lifecycle stage, error); read() runs in threads
        self._experiments: dict[str, tuple[tuple[int, int], str | None, str | None, str | None]] = {}
        self._lock = threading.Lock()

    def claim(self, place: Place) -> bool:
        if "meta.yaml" not in place.parent_names:
            return False
        if not any(n in place.names for n in _KEY_DIRS):
            return False
        if _RUN_ID.match(os.path.basename(place.path)):
            return True  # a run id: claimed even when its meta.yaml is missing
        # another id scheme: a run folder has its own meta.yaml and the params/metrics folders MLflow creates
        return "meta.yaml" in place.names and ("metrics" in place.names or "params" in place.names)

    def _experiment(self, exp_dir: str) -> tuple[str | None, str | None, str | None]:
        meta = os.path.join(exp_dir, "meta.yaml")
        try:
            st = os.stat(meta)
            key = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = (-1, -1)
        with self._lock:
            known = self._experiments.get(exp_dir)
        if known is not None and known[0] == key:
            return known[1], known[2], known[3]
        name = lifecycle = error = None
        try:
            data = load_meta(meta)
            if isinstance(data, dict):
                name = None if data.get("name") is None else str(data["name"])
                lifecycle = None if data.get("lifecycle_stage") is None else str(data["lifecycle_stage"])
            else:
                error = "experiment meta.yaml: expected a mapping"
        except MetaError as exc:
            error = f"experiment {exc}"
        with self._lock:
            self._experiments[exp_dir] = (key, name, lifecycle, error)
        return name, lifecycle, error

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        run_id = os.path.basename(path)
        exp_dir = os.path.dirname(path)
        rec = ModelRecord(path=path, format=self.format, name=run_id)
        exp_name, exp_lifecycle, exp_error = self._experiment(exp_dir)
        rec.repo = store_label(place.rel, exp_dir)
        rec.line = exp_name or os.path.basename(exp_dir) or None
        if exp_error:
            rec.add_error(exp_error)

        meta: dict = {}
        if "meta.yaml" in place.names:
            try:
                data = load_meta(os.path.join(path, "meta.yaml"))
                if isinstance(data, dict):
                    meta = data
                else:
                    rec.add_error("meta.yaml: expected a mapping")
            except MetaError as exc:
                rec.add_error(str(exc))
        else:
            rec.add_error("meta.yaml missing")

        files = {sub: _files_under(path, sub) for sub in _KEY_DIRS if sub in place.names}
        rec.meta_files = (["meta.yaml"] if "meta.yaml" in place.names else []) + [
            f for sub in _KEY_DIRS for f in files.get(sub, [])] + ["../meta.yaml"]

        tags = read_params_and_tags(rec, path, files)

        for rel in files.get("metrics", []):
            key = rel[len("metrics/"):]
            try:
                metric, bad = read_metric(key, read_bytes(f"{path}/{rel}"))
            except MetaError as exc:
                rec.add_error(f"metric {exc}")
                continue
            if bad:
                shown = ", ".join(map(str, bad[:3])) + (", ..." if len(bad) > 3 else "")
                rec.add_error(f"{rel}: {len(bad)} malformed line(s) skipped (line {shown})")
            if metric is not None:
                rec.metrics.append(metric)

        run_name = meta.get("run_name") or tags.get(RUN_NAME_TAG)
        if run_name:
            rec.name = str(run_name)
        in_trash = os.path.basename(os.path.dirname(exp_dir)) == TRASH  # <mlruns>/.trash/<experiment>/<run>
        rec.status = run_status(meta.get("status"), meta.get("lifecycle_stage"),
                                deleted=in_trash or str(exp_lifecycle).lower() == "deleted")
        rec.created_at = ms_to_datetime(meta.get("start_time"))
        # a run still being written has no end time: the scanner then takes its newest file's time
        rec.updated_at = ms_to_datetime(meta.get("end_time"))
        return rec

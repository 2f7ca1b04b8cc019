"""MLflow 3 logged models in a file store: ``<mlruns>/<experiment_id>/models/m-<id>/`` with ``meta.yaml``,
``params/``, ``metrics/``, ``tags/`` and the model files under ``artifacts/``.

Each logged model is a row of its own (format ``mlflow-model``), linked to the run that logged it
(``params.mlflow.source_run``, its name as the row's ``line``). A metric file has one
``timestamp value step run_id [dataset_name dataset_digest]`` line per value; a metric recorded for several datasets
gets one column per dataset. Status: READY is ``active``, PENDING ``running``, FAILED ``failed``; a model deleted
through MLflow (``lifecycle_stage: deleted``) is ``deleted``.

The root-level ``<mlruns>/models/<name>/version-N/meta.yaml`` is the model registry: a logged model (or run) that a
registered version points at is tagged ``registered:<name>/<version>``. Removing a logged model is MLflow's business
(``source_id`` is its model id): the prune planner must soft-delete it through the store, never move its folder.
"""

from __future__ import annotations

import os
import threading

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.mlflow_file import (
    _files_under,
    ms_to_datetime,
    read_params_and_tags,
)
from mlrepo.repo_index.readers.parsing import (
    MetaError,
    load_file,
    read_bytes,
)
from mlrepo.repo_index.records import Metric, ModelRecord

MODELS = "models"
MODEL_STATUS = {"READY": "active", "PENDING": "running", "FAILED": "failed", "UNSPECIFIED": "active"}
SOURCE_RUN_PARAM = "mlflow.source_run"
REGISTERED = "registered"


#: LoggedModelStatus as an int (the file store's meta.yaml and the database store it so)
STATUS_NUMBERS = {0: "UNSPECIFIED", 1: "PENDING", 2: "READY", 3: "FAILED"}


def model_status(status: object, lifecycle: object) -> str:
    if str(lifecycle).lower() == "deleted":
        return "deleted"
    if isinstance(status, int) and not isinstance(status, bool):
        status = STATUS_NUMBERS.get(status, status)
    return MODEL_STATUS.get(str(status).upper().rpartition(".")[2], str(status).lower() if status else "active")


def registered_tag(name: object, version: object) -> str:
    return f"{REGISTERED}:{name}/{version}"


def metric_points(data: bytes) -> tuple[dict[tuple[str | None, str | None], list[tuple[int, int, float]]], int]:
    """Per (dataset name, digest): (step, timestamp, value) points; and how many lines could not be read."""
    groups: dict[tuple[str | None, str | None], list[tuple[int, int, float]]] = {}
    bad = 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (4, 6):
            bad += 1
            continue
        try:
            point = (int(parts[2]), int(parts[0]), float(parts[1]))
        except ValueError:
            bad += 1
            continue
        key = (parts[4], parts[5]) if len(parts) == 6 else (None, None)
        groups.setdefault(key, []).append(point)
    return groups, bad


class Registry:
    """The registered versions of a file store (``<mlruns>/models/``), re-read when its listing changes."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[tuple, dict[str, list[str]]]] = {}
        self._lock = threading.Lock()

    def tags_for(self, mlruns: str) -> dict[str, list[str]]:
        """Logged model id or run id -> its ``registered:<name>/<version>`` tags."""
        folder = os.path.join(mlruns, MODELS)
        try:
            names = sorted(os.listdir(folder))
            key = tuple(_mtime(os.path.join(folder, n)) for n in names) + (_mtime(folder),)
        except OSError:
            return {}
        with self._lock:
            known = self._known.get(folder)
        if known is not None and known[0] == key:
            return known[1]
        tags: dict[str, list[str]] = {}
        for name in names:
            try:
                versions = sorted(v for v in os.listdir(os.path.join(folder, name)) if v.startswith("version-"))
            except OSError:
                continue
            for version in versions:
                try:
                    meta = load_file(os.path.join(folder, name, version, "meta.yaml"))
                except MetaError:
                    continue
                if not isinstance(meta, dict):
                    continue
                tag = registered_tag(meta.get("name", name), meta.get("version", version.removeprefix("version-")))
                for target in _targets(meta):
                    tags.setdefault(target, []).append(tag)
        with self._lock:
            self._known[folder] = (key, tags)
        return tags


def _targets(meta: dict) -> list[str]:
    return registry_targets(meta.get("source"), meta.get("model_id"))


def registry_targets(source: object, model_id: object = None) -> list[str]:
    """What a registered version points at: a logged model id (``models:/m-…``), or a run id (``runs:/<id>/…``,
    MLflow 2's way, where the model lived in the run's artifacts)."""
    out = [str(model_id)] if model_id else []
    source = str(source or "")
    for prefix in ("models:/", "runs:/"):
        if source.startswith(prefix):
            target = source.removeprefix(prefix).split("/")[0]
            if target and target not in out:
                out.append(target)
    return out


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


class MlflowModelReader:
    format = "mlflow-model"

    def __init__(self) -> None:
        self.registry = Registry()

    def claim(self, place: Place) -> bool:
        parent, _, name = place.path.rpartition(os.sep)
        return (name.startswith("m-") and "meta.yaml" in place.names
                and os.path.basename(parent) == MODELS and "meta.yaml" not in place.parent_names)

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        models_dir = os.path.dirname(path)
        exp_dir = os.path.dirname(models_dir)
        mlruns = os.path.dirname(exp_dir)
        rec = ModelRecord(path=path, format=self.format, name=os.path.basename(path), source_id=os.path.basename(path))
        files: dict[str, list[str]] = {sub: _files_under(path, sub) for sub in ("params", "metrics", "tags")
                                       if sub in place.names}
        rec.meta_files = ["meta.yaml", *(f for sub in ("params", "metrics", "tags") for f in files.get(sub, [])),
                          "../../meta.yaml", f"../../../{MODELS}"]
        meta: dict = {}
        try:
            data = load_file(os.path.join(path, "meta.yaml"))
            if isinstance(data, dict):
                meta = data
            else:
                rec.add_error("meta.yaml: expected a mapping")
        except MetaError as exc:
            rec.add_error(str(exc))
        rec.name = str(meta.get("name") or rec.name)
        if meta.get("model_id"):
            rec.source_id = str(meta["model_id"])
        rec.status = model_status(meta.get("status"), meta.get("lifecycle_stage"))
        rec.created_at = ms_to_datetime(meta.get("creation_timestamp"))
        rec.updated_at = ms_to_datetime(meta.get("last_updated_timestamp"))
        rec.repo, rec.line = self._grouping(exp_dir, meta)
        if meta.get("source_run_id"):
            rec.params[SOURCE_RUN_PARAM] = str(meta["source_run_id"])
        read_params_and_tags(rec, path, files)
        for rel in files.get("metrics", []):
            name = rel[len("metrics/"):]
            try:
                groups, bad = metric_points(read_bytes(os.path.join(path, rel)))
            except MetaError as exc:
                rec.add_error(f"metric {exc}")
                continue
            if bad:
                rec.add_error(f"{rel}: {bad} malformed line(s) skipped")
            for (dataset, _digest), points in groups.items():
                points.sort()
                rec.metrics.append(Metric(name=name, value=points[-1][2], dataset=dataset,
                                          history=[(s, v) for s, _t, v in thin(points)]))
        registered = self.registry.tags_for(mlruns).get(rec.source_id or "", [])
        rec.tags.extend(t for t in registered if t not in rec.tags)
        return rec

    @staticmethod
    def _grouping(exp_dir: str, meta: dict) -> tuple[str | None, str | None]:
        """Experiment name / the source run's name (its id when unnamed)."""
        repo = os.path.basename(exp_dir) or None
        try:
            exp = load_file(os.path.join(exp_dir, "meta.yaml"))
            if isinstance(exp, dict) and exp.get("name"):
                repo = str(exp["name"])
        except MetaError:
            pass
        run_id = meta.get("source_run_id")
        if not run_id:
            return repo, None
        line = str(run_id)
        try:
            run = load_file(os.path.join(exp_dir, str(run_id), "meta.yaml"))
            if isinstance(run, dict) and run.get("run_name"):
                line = str(run["run_name"])
        except MetaError:
            pass
        return repo, line

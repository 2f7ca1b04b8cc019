"""MLflow 3 logged models in an ``mlflow.db`` store: the ``logged_models``, ``logged_model_params``,
``logged_model_tags`` and ``logged_model_metrics`` tables, with registered versions (``model_versions``) as tags.

Read inside the SQLite store reader's snapshot; each logged model is a row like the file store's (format
``mlflow-model``, see ``mlflow_models``), its folder the local artifact location minus ``/artifacts``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.mlflow_file import ms_to_datetime, param_value, tag_list
from mlrepo.repo_index.readers.mlflow_models import (
    SOURCE_RUN_PARAM,
    model_status,
    registered_tag,
    registry_targets,
)
from mlrepo.repo_index.records import Metric, ModelRecord

Select = Callable[[str, tuple[str, ...]], list[tuple]]


def registry_tags(select: Select) -> dict[str, list[str]]:
    """Logged model id or run id -> ``registered:<name>/<version>`` tags."""
    tags: dict[str, list[str]] = {}
    for name, version, source, _run_id in select("model_versions", ("name", "version", "source", "run_id")):
        for target in registry_targets(source):
            tags.setdefault(target, []).append(registered_tag(name, version))
    return tags


def logged_models(select: Select, experiments: dict[str, tuple], run_names: dict[str, str],
                  folder_of: Callable[[str | None], str | None], registered: dict[str, list[str]]
                  ) -> list[ModelRecord]:
    params: dict[str, dict[str, object]] = {}
    for model_id, key, value in select("logged_model_params", ("model_id", "param_key", "param_value")):
        if key is not None:
            params.setdefault(str(model_id), {})[str(key)] = param_value("" if value is None else str(value))
    tags: dict[str, dict[str, str]] = {}
    for model_id, key, value in select("logged_model_tags", ("model_id", "tag_key", "tag_value")):
        if key is not None:
            tags.setdefault(str(model_id), {})[str(key)] = "" if value is None else str(value)
    points: dict[str, dict[tuple[str, str | None], list[tuple[int, int, float]]]] = {}
    for model_id, name, ts, step, value, dataset in select(
            "logged_model_metrics",
            ("model_id", "metric_name", "metric_timestamp_ms", "metric_step", "metric_value", "dataset_name")):
        if name is None:
            continue
        number = math.nan if value is None else float(value)
        points.setdefault(str(model_id), {}).setdefault((str(name), dataset), []).append(
            (int(step or 0), int(ts or 0), number))
    records = []
    for row in select("logged_models", ("model_id", "experiment_id", "name", "artifact_location",
                                        "creation_timestamp_ms", "last_updated_timestamp_ms", "status",
                                        "lifecycle_stage", "source_run_id")):
        model_id, exp_id, name, location, created, updated, status, stage, run_id = row
        if model_id is None:
            continue
        model_id = str(model_id)
        exp_name = experiments.get(str(exp_id), (None,))[0]
        rec = ModelRecord(path=folder_of(location) or "", format="mlflow-model", source_id=model_id,
                          repo=str(exp_name) if exp_name is not None else str(exp_id), name=str(name or model_id))
        rec.line = run_names.get(str(run_id)) or (str(run_id) if run_id else None)
        rec.status = model_status(status, stage)
        rec.created_at = ms_to_datetime(created)
        rec.updated_at = ms_to_datetime(updated)
        if run_id:
            rec.params[SOURCE_RUN_PARAM] = str(run_id)
        rec.params.update(params.get(model_id, {}))
        rec.tags = tag_list(tags.get(model_id, {})) + registered.get(model_id, [])
        for (metric, dataset), series in sorted(points.get(model_id, {}).items(), key=lambda kv: str(kv[0])):
            series.sort(key=lambda p: (p[0], p[1], -math.inf if math.isnan(p[2]) else p[2]))
            rec.metrics.append(Metric(name=metric, value=series[-1][2], dataset=dataset,
                                      history=[(s, v) for s, _t, v in thin(series)]))
        records.append(rec)
    return records

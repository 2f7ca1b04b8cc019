"""Metric curves: the (step, value) history of each metric of one model, read on demand from its folder.

The index keeps only the latest value of each metric; a curve is wanted for one model at a time, so it is read
again through the model's own reader rather than stored for every model.
"""

from __future__ import annotations

import os

from mlrepo.repo_index.readers import Place, claim, default_readers
from mlrepo.repo_index.records import ModelRecord


def metric_curves(path: str, fmt: str) -> dict[str, list[tuple[int, float]]]:
    """Metric label -> points, for metrics logged over steps (MLflow, Lightning, HF Trainer); {} when none."""
    if fmt in ("mlflow", "mlflow-model"):
        stored = _store_curves(path)
        if stored is not None:
            return stored
    if not os.path.isdir(path):
        return {}
    try:
        names = frozenset(os.listdir(path))
        parent_names = frozenset(os.listdir(os.path.dirname(path)))
    except OSError:
        return {}
    place = Place(path, os.path.basename(path), names, parent_names)
    readers = default_readers()
    # the readers the scan would use (a folder two readers claim has both's curves), if they still make ``fmt``
    reader = claim(readers, place)
    if reader is None or reader.format != fmt:
        reader = next((r for r in readers if r.format == fmt), None)
    if reader is None:
        return {}
    return _curves_of(reader.read(place))


#: how many folders up from a run's folder an ``mlflow.db`` is looked for (``<db dir>/mlruns/<exp>/<run>``)
STORE_LEVELS = 4


def _store_curves(path: str) -> dict[str, list[tuple[int, float]]] | None:
    """The curves of a model recorded in an ``mlflow.db`` above ``path``; None when no store records it."""
    from mlrepo.repo_index.readers.mlflow_sqlite import MlflowSqliteReader

    folder = os.path.dirname(path)
    for _ in range(STORE_LEVELS):
        db = os.path.join(folder, "mlflow.db")
        if os.path.isfile(db):
            for record in MlflowSqliteReader().read_store(db, folder):
                if record.path == path:
                    return _curves_of(record)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return None


def _curves_of(record: ModelRecord) -> dict[str, list[tuple[int, float]]]:
    curves = {}
    for metric in record.metrics:
        if metric.history and len(metric.history) > 1:
            qualifier = ".".join(p for p in (metric.dataset, metric.split) if p)
            curves[f"{metric.name}.{qualifier}" if qualifier else metric.name] = list(metric.history)
    return curves

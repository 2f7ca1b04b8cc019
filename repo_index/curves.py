"""Metric curves: the (step, value) history of each metric of one model, read on demand from its folder.

The index keeps only the latest value of each metric; a curve is wanted for one model at a time, so it is read
again through the model's own reader rather than stored for every model.
"""

from __future__ import annotations

import os

from mlrepo.repo_index.readers import Place, claim, default_readers


def metric_curves(path: str, fmt: str) -> dict[str, list[tuple[int, float]]]:
    """Metric label -> points, for metrics logged over steps (MLflow, Lightning, HF Trainer); {} when none."""
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
    record = reader.read(place)
    curves = {}
    for metric in record.metrics:
        if metric.history and len(metric.history) > 1:
            qualifier = ".".join(p for p in (metric.dataset, metric.split) if p)
            curves[f"{metric.name}.{qualifier}" if qualifier else metric.name] = list(metric.history)
    return curves

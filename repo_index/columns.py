"""Resolving the names users type (``f1``, ``lr``, ``metrics.f1.val``) to columns of the index."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from mlrepo.errors import UsageError
from mlrepo.repo_index.rows import MetricInfo


class UnknownColumn(UsageError):
    """No column has that name (not even by a short form)."""


def _choices(options: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(options[:limit])
    return shown + (f", … ({len(options)} in all)" if len(options) > limit else "")


# MLflow's names for a run's attributes (``mlflow runs list``, ``search_runs`` filters), as mlrepo's columns
MLFLOW_ATTRIBUTES = {
    "attributes.status": "status", "attributes.run_name": "name", "run_name": "name",
    "attributes.start_time": "created_at", "start_time": "created_at", "attributes.end_time": "updated_at",
    "end_time": "updated_at", "attributes.run_id": "run_id", "attributes.artifact_uri": "path",
    "artifact_uri": "path", "attributes.experiment_name": "repo", "experiment_name": "repo",
}


def resolve_column(name: str, columns: Sequence[str], metrics: dict[str, MetricInfo] | None = None) -> str:
    """Exact column, else MLflow's attribute name, else ``metrics.NAME`` / ``params.NAME``, else a metric's
    recorded name when it is unique, else the one metric column qualified below it (``roc_auc`` for
    ``roc_auc.test``); several candidates are an ambiguity that lists them, in every command alike."""
    if name in columns:
        return name
    if MLFLOW_ATTRIBUTES.get(name) in columns:
        return MLFLOW_ATTRIBUTES[name]
    recorded = [col for col, info in (metrics or {}).items() if info.name == name and col in columns]
    if len(recorded) > 1:  # a bare metric name recorded for several datasets/splits names all of them
        raise UsageError(f"{name!r} is ambiguous: it names {_choices(sorted(recorded))}")
    candidates = [c for c in (f"metrics.{name}", f"params.{name}") if c in columns]
    bare = name.removeprefix("metrics.")
    if not candidates and metrics:
        candidates = [col for col, info in metrics.items() if info.name == bare and col in columns]
    if not candidates:  # roc_auc -> metrics.roc_auc.test, metrics.roc_auc.train
        candidates = [c for c in columns if c.startswith(f"metrics.{bare}.")]
    if not candidates:  # a nested key by its last part: params.lr -> params.optimizer.lr, when that is unique
        space, _, tail = name.rpartition(".") if name.startswith(("params.", "metrics.")) else ("", "", name)
        prefixes = (space + ".",) if space in ("params", "metrics") else ("params.", "metrics.")
        if not space or space in ("params", "metrics"):
            candidates = [c for c in columns if c.startswith(prefixes) and c.endswith("." + tail)]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise UsageError(f"{name!r} is ambiguous: it names {_choices(sorted(candidates))}")
    close = difflib.get_close_matches(name, columns, n=5, cutoff=0.5)
    hint = f"; did you mean {_choices(close)}?" if close else ""
    raise UnknownColumn(f"unknown column {name!r}{hint}")


def resolve_metric(name: str, columns: Sequence[str], metrics: dict[str, MetricInfo]) -> str:
    """A ranking metric: like ``resolve_column`` but only metric columns count, and the error lists them."""
    metric_cols = [c for c in columns if c.startswith("metrics.")]
    if not metric_cols:
        raise UsageError(f"unknown metric {name!r}: no model here records any metric")
    try:
        col = resolve_column(name, metric_cols, metrics)
    except UsageError as exc:
        if "ambiguous" in str(exc):
            raise
        raise UsageError(f"unknown metric {name!r}; metrics are: {_choices(sorted(metric_cols), 30)}") from None
    return col

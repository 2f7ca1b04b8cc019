"""What a reader knows about one model, before it becomes a row of the index."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class Metric:
    """One metric value; ``dataset``/``split`` qualify it when a name repeats."""

    name: str
    value: float | None
    dataset: str | None = None
    split: str | None = None
    direction: str | None = None  # "max" | "min" | None (unknown: decided by name)
    history: list[tuple[int, float]] | None = None  # (step, value) where logged over steps


@dataclass(slots=True)
class ModelRecord:
    """One model folder as read by a format reader."""

    path: str
    format: str
    repo: str | None = None
    line: str | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    status: str = "active"
    errors: list[str] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    # Relative paths of the files whose change means the metadata changed (cache revalidation, live updates).
    meta_files: list[str] = field(default_factory=list)
    is_best: bool | None = None  # the source itself recorded this model as the best (HF Trainer)
    source_id: str | None = None  # the source's own id, to act on the model through the source (MLflow run id)
    # Sub-folders (names) that are not part of this model but searched for models of their own (the HF output dir
    # holding checkpoint-N/): they are left out of its size, and removing this model must leave them in place.
    nested: list[str] = field(default_factory=list)
    size_bytes: int = 0
    n_files: int = 0

    @classmethod
    def in_folder(cls, path: str, fmt: str) -> "ModelRecord":
        """A record grouped by place, as most formats lay models out: grandparent / parent / folder.
        ``path`` is absolute and normalised, so splitting at separators is what basename/dirname would do."""
        parent, _, name = path.rpartition(os.sep)
        grand, _, line = parent.rpartition(os.sep)
        return cls(path=path, format=fmt, repo=grand.rpartition(os.sep)[2] or None, line=line or None, name=name)

    def add_error(self, message: str) -> None:
        self.errors.append(message)


def to_number(value: object) -> float | None:
    """A metric value as a float, or None: accepts numeric strings, refuses bools and non-finite junk."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None



def merge_records(records: list[ModelRecord]) -> ModelRecord:
    """One folder read by several readers as one record: the first record wins where they disagree (its grouping,
    each param and metric it has); the others add what it lacks. A status that is not ``active`` (running, failed)
    wins over ``active``: a finished tracker beside a running one does not make the run finished."""
    first = records[0]
    have = {(m.name, m.dataset, m.split) for m in first.metrics}
    for other in records[1:]:
        for key, value in other.params.items():
            first.params.setdefault(key, value)
        for metric in other.metrics:
            if (metric.name, metric.dataset, metric.split) not in have:
                have.add((metric.name, metric.dataset, metric.split))
                first.metrics.append(metric)
        first.tags.extend(t for t in other.tags if t not in first.tags)
        first.meta_files.extend(f for f in other.meta_files if f not in first.meta_files)
        first.nested.extend(n for n in other.nested if n not in first.nested)
        first.errors.extend(other.errors)
        if first.status == "active" and other.status != "active":
            first.status = other.status
        for attr in ("source_id", "is_best", "repo", "line", "name"):
            if getattr(first, attr) is None:
                setattr(first, attr, getattr(other, attr))
        if other.created_at is not None and (first.created_at is None or other.created_at < first.created_at):
            first.created_at = other.created_at
        if other.updated_at is not None and (first.updated_at is None or other.updated_at > first.updated_at):
            first.updated_at = other.updated_at
    return first

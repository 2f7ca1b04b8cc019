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


"""What the live index reports: one ``ChangeEvent`` per model added, updated or removed, handed on together with
the index after them as one ``ChangeBatch``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mlrepo.repo_index.index import Index
from mlrepo.repo_index.schema import stamped

EventKind = Literal["added", "updated", "removed"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One model added, updated or removed. ``id`` and ``path`` are the index's; the rest describes the model
    (for ``removed``: as it was, with status ``removed``). ``to_dict`` is the ``watch`` JSON line, versioned by the
    output schema (README, "Machine-readable output")."""

    event: EventKind
    id: str
    path: str
    format: str | None
    repo: str | None = None
    line: str | None = None
    name: str | None = None
    status: str | None = None
    error: str | None = None
    metrics: dict[str, object] = field(default_factory=dict)  # column -> value, the metrics the model has

    @classmethod
    def of_row(cls, kind: EventKind, row: dict[str, Any]) -> ChangeEvent:
        """The event for one row of the index's raw table."""
        metrics = {k: v for k, v in row.items() if k.startswith("metrics.") and v is not None}
        return cls(kind, row["id"], row["path"], row["format"], row.get("repo"), row.get("line"), row.get("name"),
                   "removed" if kind == "removed" else row.get("status"), row.get("error"), metrics)

    def to_dict(self) -> dict[str, object]:
        return stamped({"event": self.event, "id": self.id, "path": self.path, "format": self.format,
                        "repo": self.repo, "line": self.line, "name": self.name, "status": self.status,
                        "error": self.error, "metrics": self.metrics})


@dataclass(slots=True)
class ChangeBatch:
    """Changes applied together, and the index as it is after them (an immutable snapshot: safe to keep)."""

    events: list[ChangeEvent]
    index: Index
    columns_changed: bool = False  # the public columns differ (a metric or param appeared, went, or was renamed)
    final: bool = False  # the live index stopped by itself (root gone): ``LiveIndex.error`` says why

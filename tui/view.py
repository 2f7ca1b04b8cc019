"""What the models table shows: the filter, sort and columns the user chose, kept across reloads."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlrepo.tui.layout import label_of

GROUPING = ("repo", "line", "name")
FACTS = ("size_bytes", "updated_at", "status", "format")


@dataclass
class View:
    """The filter, the sort (with earlier sorts kept as tie-breakers) and the columns of the table."""

    where: str | None = None
    sort: str | None = None
    descending: bool = False
    then: list[tuple[str, bool]] = field(default_factory=list)  # earlier sorts, kept as tie-breakers
    columns: list[str] | None = None  # None: the defaults (grouping, all metrics, params that vary)
    recent: list[str] = field(default_factory=list)  # filters used, newest first

    def sort_keys(self) -> tuple[list[str], list[bool]]:
        keys = [(self.sort, self.descending), *self.then] if self.sort else []
        return [k for k, _ in keys], [d for _, d in keys]

    def sort_first(self, column: str, descending: bool) -> None:
        """Sort by ``column``; the sort it replaces stays on as the first tie-breaker (at most two kept)."""
        if self.sort and self.sort != column:
            self.then = [(self.sort, self.descending), *(k for k in self.then if k[0] != self.sort)]
        self.then = [k for k in self.then if k[0] != column][:2]
        self.sort, self.descending = column, descending

    def sort_text(self) -> str:
        keys = [(self.sort, self.descending), *self.then] if self.sort else []
        return ", then ".join(f"{label_of(k)} {'▼ desc' if d else '▲ asc'}" for k, d in keys)

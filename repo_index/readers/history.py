"""Metric histories as readers keep them: (step, value) points, thinned to a bounded length.

A run can log a metric millions of times; the index only needs the shape of the curve (sparklines, the detail
pane), so a long history keeps evenly spaced points, always with its first and last. A scan keeps none
(``without_history``): the index stores the latest values only, and curves are read again on demand (``curves.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

MAX_POINTS = 500

T = TypeVar("T")
_KEEP: ContextVar[bool] = ContextVar("mlrepo_keep_history", default=True)


@contextmanager
def without_history() -> Iterator[None]:
    """Readers called inside keep no metric histories (``thin`` keeps no point): a scan drops them anyway."""
    token = _KEEP.set(False)
    try:
        yield
    finally:
        _KEEP.reset(token)


def keeping() -> bool:
    """Whether histories are kept here (not inside ``without_history``): a reader may skip collecting them."""
    return _KEEP.get()


def thin(points: Sequence[T], limit: int = MAX_POINTS) -> list[T]:
    """At most ``limit`` of ``points``, evenly spaced, first and last included, order kept; none inside
    ``without_history``."""
    if not _KEEP.get():
        return []
    n = len(points)
    if n <= limit:
        return list(points)
    if limit <= 1:
        return [points[-1]] if limit == 1 else []
    step = (n - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]

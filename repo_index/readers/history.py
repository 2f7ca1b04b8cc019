"""Metric histories as readers keep them: (step, value) points, thinned to a bounded length.

A run can log a metric millions of times; the index only needs the shape of the curve (sparklines, the detail
pane), so a long history keeps evenly spaced points, always with its first and last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

MAX_POINTS = 500

T = TypeVar("T")


def thin(points: Sequence[T], limit: int = MAX_POINTS) -> list[T]:
    """At most ``limit`` of ``points``, evenly spaced, first and last included, order kept."""
    n = len(points)
    if n <= limit:
        return list(points)
    if limit <= 1:
        return [points[-1]] if limit == 1 else []
    step = (n - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]

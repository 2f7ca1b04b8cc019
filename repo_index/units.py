"""Byte counts as people read them, in Python and over a whole polars column (both must agree).

Decimal SI units (1 kB = 1000 B, 1 MB = 1000 kB), the convention of rich's ``filesize`` and so of the progress bars:
a plan that says 4.2 MB and the bar that moves it agree. Labelled kB/MB/GB/TB, never KiB, which would be 1024.
"""

from __future__ import annotations

import polars as pl

UNITS = ("kB", "MB", "GB", "TB")
BASE = 1000


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    if n < BASE:
        return f"{n} B"
    size = float(n)
    for unit in UNITS:
        size /= BASE
        if size < BASE or unit == UNITS[-1]:
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def human_size_expr(column: str) -> pl.Expr:
    """``human_size`` over a whole column in polars: a Python call per row costs 0.1 s at 100k models."""
    n = pl.col(column).cast(pl.Float64)
    expr = pl.when(n.is_null()).then(pl.lit("")).when(n < BASE).then(pl.format("{} B", n.cast(pl.Int64)))
    for power, unit in enumerate(UNITS[:-1], start=1):
        expr = expr.when(n < BASE ** (power + 1)).then(
            pl.format(f"{{}} {unit}", (n / BASE ** power).round(1).cast(pl.String)))
    return expr.otherwise(pl.format(f"{{}} {UNITS[-1]}", (n / BASE ** len(UNITS)).round(1).cast(pl.String))
                          ).alias(column)

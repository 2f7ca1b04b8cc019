"""Byte counts as people read them, in Python and over a whole polars column (both must agree)."""

from __future__ import annotations

import polars as pl


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def human_size_expr(column: str) -> pl.Expr:
    """``human_size`` over a whole column in polars: a Python call per row costs 0.1 s at 100k models."""
    n = pl.col(column).cast(pl.Float64)
    expr = pl.when(n.is_null()).then(pl.lit("")).when(n < 1024).then(pl.format("{} B", n.cast(pl.Int64)))
    for power, unit in enumerate(("KB", "MB", "GB"), start=1):
        expr = expr.when(n < 1024 ** (power + 1)).then(
            pl.format(f"{{}} {unit}", (n / 1024 ** power).round(1).cast(pl.String)))
    return expr.otherwise(pl.format("{} TB", (n / 1024 ** 4).round(1).cast(pl.String))).alias(column)

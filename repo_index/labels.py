"""The name a person knows a model by: ``repo/line/name``, the parts it has (one place, for every screen)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

GROUPING = ("repo", "line", "name")


def join_label(*parts: object) -> str:
    """``repo/line/name`` of the parts given, leaving out those a model lacks (None or empty)."""
    return "/".join(str(p) for p in parts if p)


def model_label(row: Mapping[str, object]) -> str:
    """``repo/line/name`` of an index row."""
    return join_label(*(row.get(k) for k in GROUPING))


def label_expr() -> pl.Expr:
    """``repo/line/name`` as a polars expression (null parts left out)."""
    import polars as pl  # only here: the plain labels serve commands that never load polars

    return pl.concat_str([pl.col(k) for k in GROUPING], separator="/", ignore_nulls=True)

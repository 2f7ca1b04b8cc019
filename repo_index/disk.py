"""Where the disk went: model sizes summed by repo, line or model, largest first."""

from __future__ import annotations

import polars as pl
from mlrepo.repo_index.table import SOURCE_COLUMNS

LEVELS = {"repo": ["repo"], "line": ["repo", "line"], "model": ["repo", "line", "name", "id", "path"]}


def usage(frame: pl.DataFrame, by: str = "repo", top: int | None = None) -> pl.DataFrame:
    keys = [*(c for c in SOURCE_COLUMNS if c in frame.columns), *LEVELS[by]]  # a team index: per machine and root
    total = max(int(frame["size_bytes"].sum() or 0), 1)
    out = (
        frame.group_by(keys)
        .agg(pl.col("size_bytes").sum(), pl.len().alias("models"), pl.col("n_files").sum().alias("files"))
        .with_columns((pl.col("size_bytes") * 100.0 / total).round(1).alias("percent"))
        .sort(["size_bytes", *keys], descending=[True, *([False] * len(keys))], nulls_last=True)
    )
    return out.head(top) if top else out

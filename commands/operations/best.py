"""Which models ``best`` may return: finished ones (unfinished and failed runs only when asked), and for a path
meant for a script (``cp -r "$(mlrepo best …)"``), only a folder that exists."""

from __future__ import annotations

import os

import polars as pl
from mlrepo.commands.operations.guards import UNFINISHED
from mlrepo.repo_index.remote.location import is_url
from mlrepo.repo_index.labels import model_label

FAILED = ("failed", "killed")


def rankable(frame: pl.DataFrame, include_unfinished: bool = False, include_failed: bool = False
             ) -> tuple[pl.DataFrame, list[str]]:
    """The models ``best`` ranks, and the statuses it left out (for saying so)."""
    left_out = ([] if include_unfinished else list(UNFINISHED)) + ([] if include_failed else list(FAILED))
    present = [s for s in left_out if s in set(frame["status"].to_list())]
    return frame.filter(~pl.col("status").is_in(left_out)), present


def missing_folder(row: dict) -> str | None:
    """Why the model's path cannot be handed to a script (None when it is an existing folder)."""
    path = str(row.get("path") or "")
    label = model_label(row)
    if path and (is_url(path) or os.path.isdir(path)):  # a remote model exists: it was just listed
        return None
    if row.get("status") in ("archived", "trashed"):
        return f"{label} ({row['id']}) is {row['status']}: `mlrepo restore {row['id']}` brings its folder back"
    if row.get("format") == "dvc-exp":
        return (f"{label} ({row['id']}) is a DVC experiment, a git ref with no folder of its own: "
                f"`dvc exp apply {row.get('name')}` puts it in the project's workspace")
    if row.get("format") == "mlflow":
        return (f"{label} ({row['id']}) has no folder: an MLflow run that logged no artifacts (expected at "
                f"{path or 'no local artifact location'})")
    return f"{label} ({row['id']}) has no folder at {path}"

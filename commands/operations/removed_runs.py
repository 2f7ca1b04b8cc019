"""Which runs of an ``mlflow.db`` mlrepo itself soft-deleted, so that ``restore --all`` brings back those and never
a run the user deleted in MLflow.

``removed-runs.json`` in the root's state folder lists (store, run id, the ``deleted_time`` mlrepo wrote). A run
counts as mlrepo's while the store still says it is deleted at that very time: a run the user restored in MLflow
and deleted again is the user's.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import asdict, dataclass

from mlrepo.repo_index.readers.mlflow_registry import uri_path
from mlrepo.repo_index.state import read_json, write_json

FILE = "removed-runs.json"
VERSION = 1


@dataclass(frozen=True, slots=True)
class RemovedRun:
    store: str  # the mlflow.db, relative to the root
    run: str
    deleted_time: int  # milliseconds, as written to runs.deleted_time


def load(root: str) -> dict[tuple[str, str], RemovedRun]:
    data = read_json(root, FILE)  # StateError (a FailedError) when damaged
    out = {}
    for item in data.get("runs", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and isinstance(item.get("store"), str) and isinstance(item.get("run"), str) \
                and isinstance(item.get("deleted_time"), int):
            run = RemovedRun(item["store"], item["run"], item["deleted_time"])
            out[(run.store, run.run)] = run
    return out


def _save(root: str, runs: dict[tuple[str, str], RemovedRun]) -> None:
    write_json(root, FILE, {"version": VERSION, "runs": [asdict(r) for _k, r in sorted(runs.items())]})


def record(root: str, store: str, run: str, deleted_time: int) -> None:
    runs = load(root)
    runs[(store, run)] = RemovedRun(store, run, deleted_time)
    _save(root, runs)


def forget(root: str, store: str, run: str) -> None:
    runs = load(root)
    if runs.pop((store, run), None) is not None:
        _save(root, runs)


def ours(root: str, store: str, run_ids: list[str]) -> set[str]:
    """The runs among ``run_ids`` of ``store`` that are deleted because mlrepo deleted them."""
    mine = {r.run: r.deleted_time for (s, _run), r in load(root).items() if s == store}
    wanted = [r for r in run_ids if r in mine]
    if not wanted:
        return set()
    try:
        con = sqlite3.connect(f"file:{uri_path(os.path.abspath(os.path.join(root, store)))}?mode=ro", uri=True,
                              timeout=1.5)
    except sqlite3.Error:
        return set()
    try:
        cols = {row[1] for row in con.execute('PRAGMA table_info("runs")')}
        time_col = '"deleted_time"' if "deleted_time" in cols else "NULL"
        marks = ",".join("?" * len(wanted))
        rows = con.execute(f'SELECT run_uuid, lifecycle_stage, {time_col} FROM runs WHERE run_uuid IN ({marks})',
                           wanted).fetchall()
    except sqlite3.Error:
        return set()
    finally:
        con.close()
    return {str(run) for run, stage, when in rows
            if str(stage) == "deleted" and (when is None or int(when) == mine[str(run)])}

"""Runs of an MLflow SQLite store (``mlflow.db``), soft-deleted and restored in place as MLflow's own
``mlflow runs delete`` / ``restore`` do: one journaled UPDATE per run, and its recovery. The run's folder and
artifacts never move (they are MLflow's, for ``mlflow gc``)."""

from __future__ import annotations

import os
import time

from mlrepo.commands.operations import removed_runs
from mlrepo.commands.operations.faults import fault
from mlrepo.commands.operations.journal import Step
from mlrepo.commands.operations.moved import Refused
from mlrepo.commands.operations.paths import is_within
from mlrepo.commands.operations.steps import MlflowStageStep, Stage


def set_run_stage(root: str, store: str, run_id: str, path: str, stage: Stage) -> None:
    """Soft-delete (``stage`` "deleted") or restore ("active") a run of an ``mlflow.db``, as ``mlflow runs delete``
    and ``mlflow runs restore`` do: one UPDATE of its lifecycle stage (and ``deleted_time``). SQLite makes it
    atomic; the journal step lets a killed run finish it. The run's artifacts are MLflow's (``mlflow gc``).
    Deleting checks, in the same statement, that the run is still active and not running (it may have been
    resumed since the plan); what mlrepo deleted is recorded (``removed_runs``) so that restore brings back only
    that."""
    db = os.path.join(root, store)
    if not os.path.isfile(db) or not is_within(os.path.realpath(db), os.path.realpath(root)):
        raise Refused(f"{db}: not a store file inside {root}")
    when = time.time_ns() // 1_000_000
    step = Step.start(root, MlflowStageStep(path=path, db=db, run=run_id, stage=stage, store=store,
                                            deleted_time=when))
    fault("mlflow-stage:journaled")
    try:
        _update_stage(db, run_id, stage, when, guarded=True)
    except Refused:
        step.done("failed")
        raise
    fault("mlflow-stage:updated")
    _note_stage(root, store, run_id, stage, when)
    step.done(stage)


def _note_stage(root: str, store: str, run_id: str, stage: str, when: int) -> None:
    if stage == "deleted":
        removed_runs.record(root, store, run_id, when)
    else:
        removed_runs.forget(root, store, run_id)


def _update_stage(db: str, run_id: str, stage: str, when: int, guarded: bool = False) -> None:
    import sqlite3

    try:
        con = sqlite3.connect(db, timeout=5.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise Refused(f"{os.path.basename(db)}: {exc}") from None
    try:
        columns = {row[1] for row in con.execute('PRAGMA table_info("runs")')}
        if not {"run_uuid", "lifecycle_stage"} <= columns:
            raise Refused(f"{os.path.basename(db)}: no runs.lifecycle_stage (not an MLflow tracking store)")
        sets, values = ["lifecycle_stage = ?"], [stage]  # type: list[str], list[object]
        if "deleted_time" in columns:
            sets.append("deleted_time = ?")
            values.append(when if stage == "deleted" else None)
        where = "run_uuid = ?"
        if guarded:  # as the plan saw it: deleting an active, finished run; restoring a deleted one
            where += " AND lifecycle_stage = " + ("'active'" if stage == "deleted" else "'deleted'")
            if stage == "deleted" and "status" in columns:
                where += " AND (status IS NULL OR status NOT IN ('RUNNING', 'SCHEDULED'))"
        cursor = con.execute(f"UPDATE runs SET {', '.join(sets)} WHERE {where}", [*values, run_id])
        if cursor.rowcount != 1:
            found = con.execute("SELECT lifecycle_stage, status FROM runs WHERE run_uuid = ?" if "status" in columns
                                else "SELECT lifecycle_stage, NULL FROM runs WHERE run_uuid = ?", [run_id]).fetchone()
            if found is None:
                raise Refused(f"run {run_id} is not in {db}")
            raise Refused(f"run {run_id} changed since the plan (now {str(found[1] or '').lower() or found[0]}, "
                          f"{found[0]}); kept")
    except sqlite3.Error as exc:  # locked past the timeout, read-only, damaged
        raise Refused(f"{os.path.basename(db)}: {exc}") from None
    finally:
        con.close()


def recover_stage(step: Step, data: MlflowStageStep) -> str:
    """A killed update either committed or not: doing it again (same time) finishes what was confirmed."""
    stage, db, when = data.stage, data.db, data.deleted_time or 0
    try:
        _update_stage(db, data.run, stage, when or time.time_ns() // 1_000_000)
        if data.store:
            _note_stage(step.root, data.store, data.run, stage, when)
    except Refused as exc:
        step.done("failed")
        return f"error: {exc}"
    step.done(stage)
    return f"finished setting run {data.run} to {stage} in {db}"

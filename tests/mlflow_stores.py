"""Two real MLflow stores under one root, written by MLflow's own client: ``mlflow.db`` (SQLite) and ``mlruns/``
(file store), each with an experiment ``churn`` holding finished, running and user-deleted runs.

The SQLite store's experiment keeps its artifacts in ``mlartifacts/`` (as ``mlflow server`` does): its default,
``./mlruns`` of the working folder, would put them inside the file store, which MLflow's file store then reports as
a malformed experiment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: name -> val_auc; finished runs log a small artifact, so each has a folder
FINISHED = {"db": {"f1": 0.70, "f2": 0.80, "f3": 0.90, "f4": 0.85},
            "file": {"g1": 0.60, "g2": 0.75, "g3": 0.72, "g4": 0.88}}
RUNNING = {"db": {"r1": 0.999}, "file": {"r2": 0.999}}  # partial metrics that would rank first
DELETED = {"db": {"d1": 0.95}, "file": {"d2": 0.95}}  # deleted by the user in MLflow
NO_ARTIFACTS = {"db": {"bare": 0.5}}  # finished, logged no artifact: no folder


@dataclass
class Stores:
    root: Path
    uris: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)  # run name -> run id


def make_two_stores(root: Path) -> Stores:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 writes file stores only when asked
    from mlflow.tracking import MlflowClient

    root.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(root)  # MLflow's default artifact root is ./mlruns of the working folder
    try:
        stores = Stores(root, {"db": f"sqlite:///{root / 'mlflow.db'}", "file": (root / "mlruns").as_uri()})
        for kind, uri in stores.uris.items():
            client = MlflowClient(uri)
            exp = client.create_experiment(
                "churn", artifact_location=(root / "mlartifacts").as_uri() if kind == "db" else None)
            weights = root / f"weights-{kind}.bin"
            weights.write_bytes(os.urandom(64 * 1024))
            for name, auc in FINISHED[kind].items():
                run = client.create_run(exp, run_name=name)
                client.log_param(run.info.run_id, "depth", len(name) + int(auc * 10))
                client.log_metric(run.info.run_id, "val_auc", auc)
                client.log_artifact(run.info.run_id, str(weights), "model")
                client.set_terminated(run.info.run_id)
                stores.ids[name] = run.info.run_id
            for name, auc in NO_ARTIFACTS.get(kind, {}).items():
                run = client.create_run(exp, run_name=name)
                client.log_metric(run.info.run_id, "val_auc", auc)
                client.set_terminated(run.info.run_id)
                stores.ids[name] = run.info.run_id
            for name, auc in RUNNING[kind].items():
                run = client.create_run(exp, run_name=name)
                client.log_metric(run.info.run_id, "val_auc", auc)
                client.log_artifact(run.info.run_id, str(weights), "model")
                stores.ids[name] = run.info.run_id
            for name, auc in DELETED[kind].items():
                run = client.create_run(exp, run_name=name)
                client.log_metric(run.info.run_id, "val_auc", auc)
                client.log_artifact(run.info.run_id, str(weights), "model")
                client.set_terminated(run.info.run_id)
                client.delete_run(run.info.run_id)
                stores.ids[name] = run.info.run_id
            weights.unlink()
    finally:
        os.chdir(cwd)
    return stores


def active_runs(uri: str) -> dict[str, str]:
    """What MLflow itself shows: run name -> lifecycle stage, for every run of ``churn`` (active and deleted)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("churn")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)
    return {r.info.run_name: r.info.lifecycle_stage for r in runs}

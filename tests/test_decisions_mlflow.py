"""Issue #11's "done when", on two real MLflow stores under one root (``mlflow.db`` and ``mlruns/``, each with an
experiment ``churn`` of finished, running and user-deleted runs), checked with MLflow's own client: ``best``
prints an existing folder of the best finished run; ``prune --keep-top 2`` keeps each store's own top 2 finished
runs and every running run; ``restore --all`` brings back exactly what prune removed, never a run the user deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mlflow_stores import FINISHED, RUNNING, Stores, active_runs, make_two_stores
from treeutil import mlrepo, trash_env

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Stores:
    return make_two_stores(tmp_path_factory.mktemp("two") / "root")


def _rows(root: Path) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads(mlrepo("ls", root, "--format", "json").out)}


def test_two_stores_are_two_groups(stores):
    rows = _rows(stores.root)
    assert {(rows[n]["repo"], rows[n]["line"]) for n in FINISHED["db"]} == {("mlflow.db", "churn")}
    assert {(rows[n]["repo"], rows[n]["line"]) for n in FINISHED["file"]} == {("mlruns", "churn")}
    du = json.loads(mlrepo("du", stores.root, "--by", "repo", "--format", "json").out)
    assert {d["repo"] for d in du} == {"mlflow.db", "mlruns"}
    assert rows["r1"]["status"] == rows["r2"]["status"] == "running"
    assert rows["d1"]["status"] == rows["d2"]["status"] == "deleted"


def test_best_is_an_existing_folder_of_a_finished_run(stores):
    r = mlrepo("best", stores.root, "--metric", "val_auc")
    assert r.code == 0, r.err
    (path,) = r.out.splitlines()
    assert os.path.isdir(path) and os.path.basename(path) == stores.ids["f3"]  # 0.90; never a running 0.999
    assert "running" in r.err  # says what it left out
    r = mlrepo("best", stores.root, "--metric", "val_auc", "--per", "repo")
    assert sorted(map(os.path.basename, r.out.splitlines())) == sorted([stores.ids["f3"], stores.ids["g4"]])
    r = mlrepo("best", stores.root, "--metric", "val_auc", "--include-unfinished")
    assert os.path.basename(r.out.strip()) in (stores.ids["r1"], stores.ids["r2"])
    # a run that logged no artifacts has no folder: no path is printed, the reason is, and the exit code is 1
    r = mlrepo("best", stores.root, "--metric", "val_auc", "--where", "name = 'bare'")
    assert r.code == 1 and r.out == "" and "has no folder" in r.err and "logged no artifacts" in r.err


def test_prune_keeps_each_stores_top_2_and_every_running_run_and_restore_undoes_it(stores, tmp_path):
    env = trash_env(tmp_path / "user")
    root = stores.root
    before = {kind: active_runs(uri) for kind, uri in stores.uris.items()}
    args = ["--keep-top", "2", "--metric", "val_auc", "--recent", "0"]
    plan = json.loads(mlrepo("prune", root, *args, "--dry-run", "--format", "json").out)
    why = {m["name"]: m["reasons"] for m in plan["models"]}
    assert why["r1"][0].startswith("running: not finished") and why["r2"][0].startswith("running: not finished")
    assert why["f3"] == ["top 2 by val_auc (#1)"] and why["f4"] == ["top 2 by val_auc (#2)"]
    assert why["g4"] == ["top 2 by val_auc (#1)"] and why["g2"] == ["top 2 by val_auc (#2)"]
    assert any("--recent 0" in n for n in plan["notes"]) and any("finished models only" in n for n in plan["notes"])
    gone = {m["name"] for m in plan["models"] if m["action"] == "remove"}
    assert gone == {"f1", "f2", "bare", "g1", "g3"}

    r = mlrepo("prune", root, *args, "--yes", env=env)
    assert r.code == 0, r.err
    after = {kind: active_runs(uri) for kind, uri in stores.uris.items()}
    # MLflow's view: the db runs soft-deleted as `mlflow runs delete` does; the file store's trashed runs are gone
    assert after["db"] == {**before["db"], "f1": "deleted", "f2": "deleted", "bare": "deleted"}
    assert after["file"] == {k: v for k, v in before["file"].items() if k not in ("g1", "g3")}
    assert {n for n, s in after["db"].items() if s == "active"} == {"f3", "f4", *RUNNING["db"]}
    assert {n for n, s in after["file"].items() if s == "active"} == {"g4", "g2", *RUNNING["file"]}

    r = mlrepo("restore", root, "--all", "--dry-run", "--format", "json")
    assert {Path(i["path"]).name for i in json.loads(r.out)} == {stores.ids[n] for n in gone}
    r = mlrepo("restore", root, "--all", "--yes", env=env)
    assert r.code == 0, r.err
    assert {kind: active_runs(uri) for kind, uri in stores.uris.items()} == before  # d1, d2 stay deleted
    r = mlrepo("restore", root, _rows(root)["d1"]["id"])
    assert r.code == 2 and "deleted in MLflow, not by mlrepo" in r.err


def test_registered_versions_are_never_pruned(stores, tmp_path, monkeypatch):
    """A run behind a registered model version (or an alias) is kept, whatever the rules say."""
    from mlflow.tracking import MlflowClient

    # a runs:/ source is resolved through the default tracking store (else ./mlflow.db of the working folder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stores.uris["file"])

    client = MlflowClient(stores.uris["file"], registry_uri=stores.uris["file"])
    client.create_registered_model("churner")
    version = client.create_model_version("churner", f"runs:/{stores.ids['g1']}/model", run_id=stores.ids["g1"])
    client.set_registered_model_alias("churner", "champion", version.version)
    try:
        plan = json.loads(mlrepo("prune", stores.root, "--keep-top", "1", "--metric", "val_auc", "--recent", "0",
                                 "--dry-run", "--format", "json").out)
        g1 = next(m for m in plan["models"] if m["name"] == "g1")
        assert g1["action"] == "keep" and g1["protected"]
        assert g1["reasons"] == [f"registered in MLflow as churner v{version.version} (alias champion)"]
    finally:
        client.delete_registered_model("churner")

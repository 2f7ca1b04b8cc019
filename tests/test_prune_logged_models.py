"""Prune and archive on MLflow 3 logged models (the real mlflow3 fixtures, both store kinds) and on rows that hold
other rows (the HF Trainer's final model and its checkpoint-N/): a logged model is refused with MLflow's way to
delete it, and MLflow still reads every logged model after; a row only ever removes its own files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from treeutil import age, mlrepo, trash_env

FIXTURES = Path(__file__).parent / "fixtures"
pytest.importorskip("mlflow")

READ = r"""
import json, os, sys
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
from mlflow.tracking import MlflowClient
views = []
for uri in sys.argv[1:]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("models-demo")
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    version = client.get_model_version("demo-model", "1")
    registered = version.model_id or version.source.removeprefix("models:/")  # sqlite keeps only the source
    views.append({"models": sorted(m.name for m in models),
                  "loaded": sorted(client.get_logged_model(m.model_id).name for m in models),
                  "registered": client.get_logged_model(registered).name})
print(json.dumps(views))
"""
# what MLflow lists in the fixture: "tmp-model" was deleted through MLflow, "model-v2" is demo-model version 1
MLFLOW_VIEW = {"models": ["model", "model-v2"], "loaded": ["model", "model-v2"], "registered": "model-v2"}


def mlflow_views(uris: list[str], cwd: Path) -> list[dict]:
    """What MLflow's own client reads of each store (one process: importing mlflow takes seconds)."""
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    proc = subprocess.run([sys.executable, "-c", READ, *uris], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_logged_models_are_refused_and_mlflow_still_reads_them(tmp_path):
    env = trash_env(tmp_path)
    uris = []
    for store in ("file", "sqlite"):
        root = tmp_path / store
        shutil.copytree(FIXTURES / "mlflow3" / store, root)
        age(root)
        uris.append((root / "mlruns").as_uri() if store == "file" else f"sqlite:///{root / 'mlflow.db'}")
        ls = json.loads(mlrepo("ls", root, "--format", "json").out)
        folders = [Path(r["path"]) for r in ls if r["format"] == "mlflow-model" and r["status"] == "active"]
        assert len(folders) == 2
        before = {f: tree(f) for f in folders}
        archive = mlrepo("archive", root, "--where", "format = 'mlflow-model'", "--recent", "0", "--yes", env=env)
        assert archive.code in (0, 1) and "Traceback" not in archive.err
        assert "an MLflow logged model: delete it through MLflow (MlflowClient().delete_logged_model)" in archive.out
        prune = mlrepo("prune", root, "--keep-top", "1", "--metric", "val_acc", "--per", "all", "--recent", "0",
                       "--yes", "--format", "json", env=env)
        assert prune.code == 0, prune.err
        decisions = {m["name"]: m for m in json.loads(prune.out)["models"]}
        assert decisions["model"]["action"] == "keep"  # not the top val_acc: kept only as a logged model
        assert any("MLflow logged model" in why for why in decisions["model"]["reasons"]), store
        assert decisions["scratch"]["action"] == "remove"  # a plain run is still pruned
        assert {f: tree(f) for f in folders} == before, store  # every logged model's files, byte for byte
    assert mlflow_views(uris, tmp_path) == [MLFLOW_VIEW, MLFLOW_VIEW]


def test_a_row_holding_other_rows_removes_only_its_own_files(tmp_path):
    """The HF final model (run1/) holds checkpoint-N/ rows: each checkpoint goes alone; run1 is kept while they
    exist, its own files untouched."""
    root = tmp_path / "hf"
    shutil.copytree(FIXTURES / "hf_trainer", root)
    age(root)
    run1 = root / "run1"
    own = {k: v for k, v in tree(run1).items() if not k.startswith("checkpoint-")}
    env = trash_env(tmp_path)
    archive = mlrepo("archive", root, "hf/run1/run1", "--recent", "0", "--yes", env=env)
    assert archive.code == 1 and "contains 3 other model(s)" in archive.err
    prune = mlrepo("prune", root, "--keep-top", "1", "--metric", "eval_loss", "--per", "all", "--recent", "0",
                   "--yes", "--format", "json", env=env)
    assert prune.code == 0, prune.err
    removed = {m["name"] for m in json.loads(prune.out)["models"] if m["action"] == "remove"}
    assert removed and "run1" not in removed
    left = {p.name for p in run1.iterdir() if p.is_dir()}
    assert left == {"checkpoint-4", "checkpoint-8", "checkpoint-12"} - removed
    assert {k: v for k, v in tree(run1).items() if not k.startswith("checkpoint-")} == own

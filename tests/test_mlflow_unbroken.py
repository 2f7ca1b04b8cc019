"""mlrepo never breaks MLflow: after index, ls, prune, archive and restore with the store's own folder as ROOT,
MLflow's own client still lists the experiments and runs, and ``mlflow gc`` still works, on both store kinds.

The stores are made by the real MLflow (its client, in a subprocess: the same calls a training script makes), with
run times set in the past so that prune's recent-change rule keeps nothing back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from treeutil import age, mlrepo

pytest.importorskip("mlflow")

MAKE = r"""
import os, sys
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
from mlflow.tracking import MlflowClient
uri, old = sys.argv[1], 1_600_000_000_000
client = MlflowClient(uri)
for exp in ("vision", "nlp"):
    eid = client.create_experiment(exp)
    for i in range(3):
        run = client.create_run(eid, start_time=old + i, run_name=f"{exp}-{i}")
        rid = run.info.run_id
        client.log_param(rid, "lr", str(0.1 * (i + 1)))
        client.log_metric(rid, "f1", 0.5 + i / 10, timestamp=old + i, step=0)
        client.log_text(rid, "weights " * 50, "model/weights.txt")
        client.set_terminated(rid, "FINISHED", end_time=old + 1000 + i)
    if exp == "nlp":
        client.delete_run(rid)  # deleted by MLflow itself: what `mlflow gc` collects
"""

CHECK = r"""
import json, os, subprocess, sys
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
uri = sys.argv[1]
client = MlflowClient(uri)
exps = client.search_experiments(view_type=ViewType.ALL)
runs = client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL)
deleted = [r.info.run_id for r in runs if r.info.lifecycle_stage == "deleted"]
gc = subprocess.run([sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri], capture_output=True, text=True,
                    env={**os.environ, "MLFLOW_TRACKING_URI": uri})
after = client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL)
print(json.dumps({"experiments": sorted(e.name for e in exps), "runs": len(runs), "deleted": len(deleted),
                  "gc": gc.returncode, "gc_err": gc.stderr[-500:], "after_gc": len(after)}))
"""


def _python(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _mlflow_works(uri: str, cwd: Path) -> dict:
    report = json.loads(_python(CHECK, uri, cwd=cwd).strip().splitlines()[-1])
    assert report["gc"] == 0, report["gc_err"]
    assert report["after_gc"] == report["runs"] - report["deleted"]  # gc collected what was deleted, nothing else
    return report


def _no_mlrepo_folder_in(store: Path) -> None:
    assert not [p for p in store.iterdir() if p.name.startswith(".mlrepo")], sorted(os.listdir(store))


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_mlflow_works_after_every_command(kind, tmp_path, env):
    project = tmp_path / "project"
    project.mkdir()
    if kind == "file":
        root = project / "mlruns"
        uri = root.as_uri()
    else:
        root = project
        uri = f"sqlite:///{project / 'mlflow.db'}"
    _python(MAKE, uri, cwd=project)
    age(project)

    steps = [
        ("index", root),
        ("ls", root, "--format", "json"),
        ("prune", root, "--keep-top", "1", "--metric", "f1", "--per", "line", "--yes"),
        ("archive", root, "--where", "status = 'active'", "--yes"),
        ("restore", root, "--all", "--yes"),
    ]
    for step in steps:
        r = mlrepo(*step, env=env)
        assert r.code in (0, 1), (step, r.err)  # 1: the db store's runs are not archived (MLflow's own delete)
        assert "Traceback" not in r.err
        if kind == "file":
            _no_mlrepo_folder_in(root)
    if kind == "file":
        assert (project / ".mlrepo" / "stores" / "mlruns").is_dir()  # the state went next to the store
    report = _mlflow_works(uri, project)
    assert report["experiments"] == sorted(["Default", "nlp", "vision"])
    assert report["runs"] == 6  # every run is back after restore --all, and MLflow reads each one


def test_older_state_inside_a_file_store_moves_out(tmp_path, env):
    """An ``mlruns/.mlrepo/`` left by an older mlrepo (with an archived model in its ledger) moves out of the store
    on first use, its recorded paths rewritten; the archived model still restores."""
    project = tmp_path / "project"
    project.mkdir()
    root = project / "mlruns"
    _python(MAKE, root.as_uri(), cwd=project)
    age(project)
    old_state = root / ".mlrepo"
    # what an older mlrepo did: state inside ROOT (simulated by moving a fresh state folder into the store)
    r = mlrepo("archive", root, "--where", "name = 'vision-0'", "--yes", env=env)
    assert r.code == 0, r.err
    os.rename(project / ".mlrepo" / "stores" / "mlruns", old_state)
    ledger = next((old_state / "ledger").iterdir())
    entry = json.loads(ledger.read_text())
    new_prefix = str(project / ".mlrepo" / "stores" / "mlruns")
    entry["archive"] = entry["archive"].replace(new_prefix, str(old_state))
    ledger.write_text(json.dumps(entry))
    assert mlrepo("ls", root, "--format", "json", env=env).code == 0
    _no_mlrepo_folder_in(root)
    r = mlrepo("restore", root, "--all", "--yes", env=env)
    assert r.code == 0, r.err
    assert Path(entry["path"]).is_dir()
    assert not (project / ".mlrepo" / "stores" / "mlruns" / "ledger").exists() or \
        not list((project / ".mlrepo" / "stores" / "mlruns" / "ledger").iterdir())

"""MLflow 3 logged models and the registry, as mlflow 3.17.2 wrote them in both store kinds
(tests/fixtures/make_mlflow3.py): each logged model a row of its own, every param and metric checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlrepo
import pytest
from mlrepo.repo_index.curves import metric_curves
from treeutil import du_bytes

MLFLOW3 = Path(__file__).parent / "fixtures" / "mlflow3"
# MLflow 3 links the source run's params and metrics (at log time: loss 1.0 at step 0) to each logged model
RUN_PARAMS = {"lr": 0.1, "depth": 3}
MODELS = {  # name -> (source run, status, tags, params, metrics)
    "model": ("train", "active", ["stage=candidate"], {**RUN_PARAMS, "alpha": 0.5, "max_iter": 100},
              {"val_acc": 0.91, "loss": 1.0}),
    "model-v2": ("train", "active", ["registered:demo-model/1"], RUN_PARAMS, {"val_acc": 0.93, "loss": 1.0}),
    "tmp-model": ("scratch", "deleted", [], {}, {"val_acc": 0.5}),
}


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_logged_models_are_rows_of_their_own(store):
    index = mlrepo.open_index(MLFLOW3 / store, use_cache=False)
    assert index.counts_by_format() == {"mlflow": 2, "mlflow-model": 3}  # the registry folder is no model
    rows = index.df.to_dicts()
    runs = {r["name"]: r for r in rows if r["format"] == "mlflow"}
    models = {r["name"]: r for r in rows if r["format"] == "mlflow-model"}
    assert set(models) == set(MODELS)
    param_columns = [c for c in index.df.columns if c.startswith("params.") and c != "params.mlflow.source_run"]
    metric_columns = [c for c in index.df.columns if c.startswith("metrics.")]
    for name, (run, status, tags, params, metrics) in MODELS.items():
        row = models[name]
        assert (row["repo"], row["line"], row["status"], row["tags"], row["error"]) == (
            "models-demo", run, status, tags, None)
        assert {c: row[c] for c in param_columns if row[c] is not None} == {f"params.{k}": v for k, v in params.items()}
        assert {c: row[c] for c in metric_columns if row[c] is not None} == {
            f"metrics.{k}": v for k, v in metrics.items()}
        assert Path(row["path"]).name.startswith("m-") and Path(row["path"]).parent.name == "models"
        assert Path(row["path"]).is_relative_to(MLFLOW3 / store)
    assert runs["train"]["metrics.loss"] == 0.25 and runs["train"]["params.lr"] == 0.1
    # the link to the source run: its run id, which is the run's folder name
    train_folder = {Path(p).name for p in index.df.filter(index.df["name"] == "train")["path"].to_list()}
    if store == "file":
        assert {models["model"]["params.mlflow.source_run"]} == train_folder


def test_file_store_model_folders_are_not_runs():
    """The run reader no longer takes <exp>/models/ for anything; each m-<id>/ is one logged model row whose size
    is its own folder (artifacts included)."""
    index = mlrepo.open_index(MLFLOW3 / "file", use_cache=False)
    paths = index.df["path"].to_list()
    assert not any(Path(p).name == "models" for p in paths)
    for row in index.df.filter(index.df["format"] == "mlflow-model").to_dicts():
        folder = Path(row["path"])
        assert row["size_bytes"] == du_bytes(folder)


def test_logged_model_curves(tmp_path):
    shutil.copytree(MLFLOW3 / "file", tmp_path / "s")
    index = mlrepo.open_index(tmp_path / "s", use_cache=False)
    train = index.df.filter((index.df["format"] == "mlflow") & (index.df["name"] == "train"))["path"][0]
    curve = metric_curves(train, "mlflow")["loss"]
    # MLflow 3 writes each value again when it links the run's metrics to a logged model
    assert sorted(set(curve)) == [(0, 1.0), (1, 0.5), (2, 0.25)] and curve[-1] == (2, 0.25)


def test_db_runs_and_logged_models_have_curves():
    """Runs of an mlflow.db get their metric history from the store (their folders hold no metrics)."""
    index = mlrepo.open_index(MLFLOW3 / "sqlite", use_cache=False)
    train = index.df.filter((index.df["format"] == "mlflow") & (index.df["name"] == "train"))["path"][0]
    curve = metric_curves(train, "mlflow")["loss"]
    assert sorted(set(curve)) == [(0, 1.0), (1, 0.5), (2, 0.25)] and curve[-1] == (2, 0.25)

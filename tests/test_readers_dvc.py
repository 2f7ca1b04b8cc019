"""DVC projects as dvc 3.67.1 and dvclive 3.49.1 wrote them with `dvc repro` (tests/fixtures/make_dvc.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlrepo
from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.dvc import DvcReader

PROJECT = Path(__file__).parent / "fixtures" / "dvc" / "project"


def place_of(path: Path) -> Place:
    return Place(str(path), path.name, frozenset(os.listdir(path)), frozenset(os.listdir(path.parent)))


def test_project_is_one_row_with_every_param_and_metric():
    index = mlrepo.open_index(PROJECT.parent, use_cache=False)
    assert index.counts_by_format() == {"dvc": 1}  # dvclive/ is part of the project, not a model of its own
    row = index.df.to_dicts()[0]
    assert (row["path"], row["name"], row["error"]) == (str(PROJECT), "project", None)
    params = {k.removeprefix("params."): v for k, v in row.items() if k.startswith("params.") and v is not None}
    # params.yaml (all of it), then dvclive/params.yaml (named by the dvc.yaml dvclive updated)
    assert params == {"train.lr": 0.1, "train.epochs": 3, "train.optimizer": "adam", "optimizer": "adam"}
    metrics = {k.removeprefix("metrics."): v for k, v in row.items() if k.startswith("metrics.") and v is not None}
    # eval.json (the stage's metrics) and dvclive/metrics.json (its "step" is bookkeeping)
    assert metrics == {"eval_acc": 0.8, "acc": 0.9, "loss": 0.3}


def test_unproduced_and_escaping_files(tmp_path):
    shutil.copytree(PROJECT, tmp_path / "p")
    project = tmp_path / "p"
    (project / "eval.json").unlink()  # the stage has not run yet: no error, just no such metric
    rec = DvcReader().read(place_of(project))
    assert rec.errors == [] and "eval_acc" not in {m.name for m in rec.metrics}
    (tmp_path / "secret.json").write_text('{"x": 1}')
    text = (project / "dvc.yaml").read_text().replace("- dvclive/metrics.json", "- ../secret.json")
    (project / "dvc.yaml").write_text(text)
    rec = DvcReader().read(place_of(project))
    assert rec.errors == ["dvc.yaml: '../secret.json' is outside the project"]
    (project / "dvc.yaml").write_text("stages: [unclosed")
    assert DvcReader().read(place_of(project)).errors[0].startswith("dvc.yaml: invalid YAML")


def test_models_inside_a_project_are_not_hidden(tmp_path):
    shutil.copytree(PROJECT, tmp_path / "p")
    shutil.copytree(Path(__file__).parent / "fixtures" / "wandb", tmp_path / "p" / "runs", symlinks=True)
    index = mlrepo.open_index(tmp_path, use_cache=False)
    assert index.counts_by_format() == {"dvc": 1, "wandb": 3}
    project = index.df.filter(index.df["format"] == "dvc").to_dicts()[0]
    own = sum(p.lstat().st_blocks * 512 for p in [tmp_path / "p", *(tmp_path / "p").rglob("*")]
              if "runs" not in p.relative_to(tmp_path / "p").parts)  # allocated, as du counts (no hard links here)
    assert project["size_bytes"] == own and project["metrics.eval_acc"] == 0.8

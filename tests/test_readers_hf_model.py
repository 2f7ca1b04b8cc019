"""The HF Trainer's final model (the output dir after ``save_model``), as transformers wrote it
(tests/fixtures/make_hf.py): a row beside its checkpoints, sized without them, metrics from *_results.json or the
state."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlrepo
from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.hf_model import HfModelReader
from treeutil import du_bytes

HF = Path(__file__).parent / "fixtures" / "hf_trainer"
RUN1, RUN2 = HF / "run1", HF / "run2"


def place_of(path: Path) -> Place:
    return Place(str(path), path.name, frozenset(os.listdir(path)), frozenset(os.listdir(path.parent)))


def own_files(path: Path) -> tuple[int, int]:
    """Allocated bytes (as du counts them) of the folder and its own files, and how many files."""
    files = [p for p in path.iterdir() if p.is_file()]
    return sum(p.lstat().st_blocks * 512 for p in [path, *files]), len(files)


def metrics_of(row: dict) -> dict[str, float]:
    return {k.removeprefix("metrics."): v for k, v in row.items() if k.startswith("metrics.") and v is not None}


def test_final_model_beside_its_checkpoints():
    rows = {r["name"]: r for r in mlrepo.open_index(HF, use_cache=False).df.to_dicts()}
    run1 = rows["run1"]
    assert (run1["path"], run1["format"], run1["repo"], run1["line"], run1["error"]) == (
        str(RUN1), "hf-trainer", "hf_trainer", "run1", None)
    assert run1["tags"] == ["final"]
    # its own files only: the checkpoints are rows of their own, never counted twice by du
    assert (run1["size_bytes"], run1["n_files"]) == own_files(RUN1)
    assert sum(r["size_bytes"] for r in rows.values()) == du_bytes(*(p for p in HF.iterdir() if p.is_dir()))
    # no *_results.json: the last values of trainer_state.json's log_history (the last eval, the last loss)
    state = json.loads((RUN1 / "trainer_state.json").read_text())
    last: dict[str, float] = {}
    for entry in state["log_history"]:
        for key, value in entry.items():
            if key not in ("epoch", "step", "total_flos") and not key.endswith(("_runtime", "_per_second")):
                last[key] = value
    assert metrics_of(run1) == last
    assert run1["metrics.eval_loss"] == 0.7176461219787598
    assert run1["params.hidden_size"] == 8 and run1["params.global_step"] == 12
    assert rows["checkpoint-4"]["tags"] == ["best"]  # the trainer's best stays on its checkpoint


def test_results_files_and_sharded_weights():
    rows = {r["name"]: r for r in mlrepo.open_index(HF, use_cache=False).df.to_dicts()}
    run2 = rows["run2"]
    assert "model.safetensors.index.json" in os.listdir(RUN2)  # sharded: claimed by its index
    assert (run2["format"], run2["tags"], run2["error"]) == ("hf-trainer", ["final"], None)
    results = json.loads((RUN2 / "all_results.json").read_text())
    assert run2["metrics.eval_loss"] == results["eval_loss"] == 0.6967663168907166
    assert run2["metrics.train_loss"] == results["train_loss"]
    assert run2["metrics.loss"] == 0.680488109588623  # the last training loss, from the state
    assert {"eval_runtime", "train_samples_per_second", "epoch"}.isdisjoint(metrics_of(run2))
    assert (run2["size_bytes"], run2["n_files"]) == own_files(RUN2)


def test_results_file_wins_over_the_state(tmp_path):
    shutil.copytree(RUN2, tmp_path / "out")
    out = tmp_path / "out"
    data = json.loads((out / "all_results.json").read_text())
    data["eval_loss"] = 0.5
    (out / "all_results.json").write_text(json.dumps(data))
    rec = HfModelReader().read(place_of(out))
    assert {m.name: m.value for m in rec.metrics}["eval_loss"] == 0.5
    (out / "all_results.json").write_text("{broken")
    rec = HfModelReader().read(place_of(out))
    assert rec.errors and rec.errors[0].startswith("all_results.json:")
    assert {m.name: m.value for m in rec.metrics}["eval_loss"] == 0.6967663168907166  # eval_results.json


def test_checkpoint_and_plain_folders_not_claimed():
    reader = HfModelReader()
    assert not reader.claim(place_of(RUN1 / "checkpoint-4"))
    assert reader.claim(place_of(RUN1)) and reader.claim(place_of(RUN2))
    assert not reader.claim(place_of(HF))
    assert HfModelReader().read(place_of(RUN1)).nested == ["checkpoint-12", "checkpoint-4", "checkpoint-8"]


def test_new_checkpoint_appears_under_a_cached_final_model(tmp_path):
    """The cache revalidates nested models: a checkpoint added later is found, the others are reused."""
    shutil.copytree(HF, tmp_path / "hf")
    first = mlrepo.open_index(tmp_path)
    assert len(first) == 5
    again = mlrepo.open_index(tmp_path)
    assert sorted(again.df["name"].to_list()) == sorted(first.df["name"].to_list())
    shutil.copytree(tmp_path / "hf" / "run1" / "checkpoint-12", tmp_path / "hf" / "run1" / "checkpoint-16")
    shutil.rmtree(tmp_path / "hf" / "run1" / "checkpoint-8")
    names = sorted(mlrepo.open_index(tmp_path).df["name"].to_list())
    assert names == ["checkpoint-12", "checkpoint-16", "checkpoint-4", "run1", "run2"]


def test_nested_models_are_in_the_index_for_the_planner():
    """Removing the final model must leave its checkpoints: the index says which sub-folders are models."""
    index = mlrepo.open_index(HF, use_cache=False)
    nested = dict(zip(index.raw["_rel"].to_list(), index.raw["_nested"].to_list()))
    assert nested["run1"].split("\x1f") == ["checkpoint-12", "checkpoint-4", "checkpoint-8"]
    assert nested["run2"] is None and nested["run1/checkpoint-4"] is None

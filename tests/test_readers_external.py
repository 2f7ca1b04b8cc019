"""Readers for formats written by other tools: MLflow (file and SQLite stores), Lightning, Hugging Face Trainer.

Expected values come from the scripts that made the fixtures (tests/fixtures/make_*.py); MLflow run ids are
random, so runs are looked up by name.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import mlrepo
import pytest
import yaml
from mlrepo.repo_index.readers import Place, default_readers, default_store_readers
from mlrepo.repo_index.readers.hf_trainer import HfTrainerReader
from mlrepo.repo_index.readers.history import MAX_POINTS, thin
from mlrepo.repo_index.readers.lightning import LightningReader, parse_metrics_csv
from mlrepo.repo_index.readers.mlflow_file import (
    POLARS_BYTES,
    MlflowFileReader,
    make_metric,
    param_value,
    parse_metric_lines,
    read_metric,
)
from mlrepo.repo_index.readers.mlflow_sqlite import MlflowSqliteReader

FIXTURES = Path(__file__).parent / "fixtures"
MLFLOW_FILE = FIXTURES / "mlflow_file"
MLFLOW_SQLITE = FIXTURES / "mlflow_sqlite"
LIGHTNING = FIXTURES / "lightning"
HF = FIXTURES / "hf_trainer"
CASCADE_018 = FIXTURES / "cascade" / "cascade-0.18"


def rows_by_name(index) -> dict[str, dict]:
    rows = index.df.to_dicts()
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names)), f"run names repeat: {names}"
    return {r["name"]: r for r in rows}


def place_of(path: Path) -> Place:
    parent = path.parent
    return Place(str(path), path.name, frozenset(os.listdir(path)), frozenset(os.listdir(parent)))


def find_run(mlruns: Path, name: str) -> Path:
    for meta in mlruns.glob("**/meta.yaml"):
        data = yaml.safe_load(meta.read_text())
        if isinstance(data, dict) and data.get("run_name") == name:
            return meta.parent
    raise LookupError(name)


# -- MLflow: the same runs in both stores ---------------------------------------------------------------------------
# name -> (experiment, status, params, latest metrics)
MLFLOW_RUNS = {
    "lr-small": ("vision-cls", "active",
                 {"lr": 0.001, "batch_size": 32, "optimizer.name": "adam", "optimizer.betas": "0.9,0.999"},
                 {"loss": 0.35, "acc": 0.82}),
    "lr-large": ("vision-cls", "active",
                 {"lr": 0.1, "batch_size": 32, "optimizer.name": "sgd", "momentum": 0.9},
                 {"loss": 0.75, "acc": 0.61}),
    "diverged": ("vision-cls", "failed", {"lr": 10, "batch_size": 64, "optimizer.name": "sgd"}, {"loss": 99.5}),
    "messy-steps": ("vision-cls", "active",
                    {"lr": 0.01, "optimizer.name": "adamw", "optimizer.weight_decay": 0.01},
                    {"loss": 0.2, "acc": 0.75}),
    "to-delete": ("vision-cls", "deleted", {"lr": 0.5}, {"loss": 3.0}),
    "bert-tiny": ("nlp-ft", "active", {"model.name": "bert-tiny", "epochs": 3, "seq_len": 128},
                  {"eval_loss": 0.65, "f1": 0.72}),
    "bert-mini": ("nlp-ft", "active", {"model.name": "bert-mini", "epochs": 2, "dropout": 0.1},
                  {"eval_loss": 0.55, "f1": 0.78}),
    "still-running": ("nlp-ft", "running", {"model.name": "bert-small", "epochs": 10}, {"eval_loss": 0.95}),
    "ancient": ("old-experiment", "deleted", {"lr": 1}, {"loss": 2.0}),
}
USER_TAGS = {"lr-small": ["stage=dev", "team=vision"], "messy-steps": ["team=vision"], "still-running": ["team=nlp"],
             "ancient": []}


STORE = {"file": "mlruns", "sqlite": "mlflow.db"}


def check_mlflow_rows(index, store: str, label: str | None = None) -> None:
    rows = rows_by_name(index)
    expected = dict(MLFLOW_RUNS)
    if store == "file":
        expected["default-run"] = ("Default", "active", {"seed": 0, "optimizer.name": "adam"}, {"loss": 0.25})
    else:  # the SQLite script logs no metric for "ancient"
        expected["ancient"] = (*expected["ancient"][:3], {})
    assert set(rows) == set(expected)
    metric_cols = [c for c in index.df.columns if c.startswith("metrics.")]
    param_cols = [c for c in index.df.columns if c.startswith("params.")]
    for name, (experiment, status, params, metrics) in expected.items():
        row = rows[name]
        assert row["format"] == "mlflow", name
        # repo: the store (two stores' experiments of one name are never one group); line: the experiment
        assert (row["repo"], row["line"], row["status"]) == (label or STORE[store], experiment, status), name
        assert row["error"] is None, (name, row["error"])
        assert {c[len("params."):]: row[c] for c in param_cols if row[c] is not None} == params, name
        got = {c[len("metrics."):]: row[c] for c in metric_cols if row[c] is not None}
        assert got == pytest.approx(metrics), name
        assert row["created_at"] is not None and row["updated_at"] is not None
        assert row["updated_at"] >= row["created_at"], name
    for name, tags in USER_TAGS.items():
        assert rows[name]["tags"] == tags, name
    # numbers stay numbers: the filter language compares them as such
    assert index.df.schema["params.lr"].is_numeric()
    assert index.df.schema["params.batch_size"].is_integer()


def test_mlflow_file_store():
    index = mlrepo.open_index(MLFLOW_FILE, use_cache=False)
    assert index.counts_by_format() == {"mlflow": 10}
    check_mlflow_rows(index, "file")
    rows = rows_by_name(index)
    assert "/.trash/" in rows["ancient"]["path"]
    assert os.path.basename(os.path.dirname(rows["messy-steps"]["path"])) == "684938466740581037"


def test_mlflow_file_run_details():
    mlruns = MLFLOW_FILE / "mlruns"
    run = find_run(mlruns, "messy-steps")
    rec = MlflowFileReader().read(place_of(run))
    metrics = {m.name: m for m in rec.metrics}
    # out-of-order steps: the highest step wins; a repeated step: the later timestamp wins
    assert metrics["loss"].value == 0.2
    assert metrics["loss"].history == [(0, 0.9), (1, 0.5), (2, 0.2)]
    assert metrics["acc"].value == 0.75
    assert metrics["acc"].history == [(4, 0.6), (5, 0.7), (5, 0.75)]
    assert rec.repo == "mlruns" and rec.line == "vision-cls" and rec.name == "messy-steps"
    assert {"meta.yaml", "metrics/loss", "metrics/acc", "params/lr", "tags/mlflow.runName"} <= set(rec.meta_files)

    meta = yaml.safe_load((run / "meta.yaml").read_text())
    assert rec.created_at == datetime.fromtimestamp(meta["start_time"] / 1000, tz=timezone.utc)
    assert rec.updated_at == datetime.fromtimestamp(meta["end_time"] / 1000, tz=timezone.utc)

    lr_small = MlflowFileReader().read(place_of(find_run(mlruns, "lr-small")))
    assert lr_small.tags == ["stage=dev", "team=vision"]  # no mlflow.user / mlflow.runName


def test_mlflow_file_claims_runs_only():
    reader = MlflowFileReader()
    mlruns = MLFLOW_FILE / "mlruns"
    run = find_run(mlruns, "lr-small")
    assert reader.claim(place_of(run))
    assert not reader.claim(place_of(run.parent))  # the experiment folder
    assert not reader.claim(place_of(mlruns))
    assert not reader.claim(place_of(run / "metrics"))


def test_mlflow_sqlite_store():
    index = mlrepo.open_index(MLFLOW_SQLITE, use_cache=False)
    assert index.counts_by_format() == {"mlflow": 9}
    check_mlflow_rows(index, "sqlite")
    rows = rows_by_name(index)
    db = sqlite3.connect(f"file:{MLFLOW_SQLITE / 'mlflow.db'}?mode=ro", uri=True)
    run_ids = dict(db.execute("SELECT name, run_uuid FROM runs").fetchall())
    db.close()
    # a run's folder is its artifact location's run folder
    assert rows["lr-small"]["path"] == str(MLFLOW_SQLITE / "artifacts" / "vision-cls" / run_ids["lr-small"])
    assert rows["lr-small"]["n_files"] == 1  # artifacts/notes.txt
    assert rows["ancient"]["path"] == str(MLFLOW_SQLITE / "artifacts" / "old" / run_ids["ancient"])


def test_mlflow_sqlite_histories_and_read_only():
    db = MLFLOW_SQLITE / "mlflow.db"
    before = db.stat().st_mtime_ns
    records = {r.name: r for r in MlflowSqliteReader().read_store(str(db), str(MLFLOW_SQLITE))}
    assert db.stat().st_mtime_ns == before
    assert not [p for p in os.listdir(MLFLOW_SQLITE) if p.startswith("mlflow.db-")]  # no journal left behind
    messy = {m.name: m for m in records["messy-steps"].metrics}
    assert messy["loss"].history == [(0, 0.9), (1, 0.5), (2, 0.2)]
    assert messy["acc"].value == 0.75


def test_mlflow_sqlite_without_latest_metrics(tmp_path):
    """Old schemas (or an emptied table): the latest value is computed from the metrics table."""
    shutil.copytree(MLFLOW_SQLITE, tmp_path / "store")
    con = sqlite3.connect(tmp_path / "store" / "mlflow.db")
    con.execute("DELETE FROM latest_metrics")
    con.commit()
    con.close()
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert rows["messy-steps"]["metrics.loss"] == 0.2
    assert rows["messy-steps"]["metrics.acc"] == 0.75
    assert rows["lr-large"]["metrics.acc"] == 0.61
    con = sqlite3.connect(tmp_path / "store" / "mlflow.db")
    con.execute("DROP TABLE latest_metrics")
    con.commit()
    con.close()
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert rows["bert-mini"]["metrics.f1"] == 0.78


def test_mlflow_sqlite_moved_store_finds_its_folders(tmp_path):
    """The database records absolute artifact paths; a moved project finds them next to the database."""
    shutil.copytree(MLFLOW_SQLITE, tmp_path / "proj")
    index = mlrepo.open_index(tmp_path, use_cache=False)
    check_mlflow_rows(index, "sqlite", "proj/mlflow.db")
    for row in index.df.to_dicts():
        assert row["path"].startswith(str(tmp_path / "proj" / "artifacts")), row["path"]
    rows = rows_by_name(index)
    assert rows["messy-steps"]["n_files"] == 1
    assert not os.path.exists(rows["ancient"]["path"])  # no artifacts ever: where they would be


# -- Lightning ------------------------------------------------------------------------------------------------------
LIGHTNING_VERSIONS = {
    "version_0": ({"lr": 0.1, "batch_size": 16, "model_name": "linear", "optimizer.name": "sgd",
                   "optimizer.momentum": 0.0},
                  {"train_loss": 1.0895812511444092, "val_acc": 0.3125, "val_loss": 1.4021222591400146}),
    "version_1": ({"lr": 0.05, "batch_size": 8, "model_name": "linear", "optimizer.name": "sgd",
                   "optimizer.momentum": 0.9, "optimizer.schedule.type": "none", "optimizer.schedule.warmup": 0},
                  {"train_loss": 0.07843030989170074, "val_acc": 1.0, "val_loss": 0.03123556450009346}),
    "version_2": ({"lr": 0.01, "batch_size": 16, "model_name": "linear-adam", "optimizer.name": "adam"},
                  {"train_loss": 4.25774621963501, "val_acc": 0.1875, "val_loss": 7.2698798179626465}),
}


def test_lightning():
    index = mlrepo.open_index(LIGHTNING, use_cache=False)
    assert index.counts_by_format() == {"lightning": 3}
    assert "metrics.epoch" not in index.df.columns and "metrics.step" not in index.df.columns
    rows = rows_by_name(index)
    metric_cols = [c for c in index.df.columns if c.startswith("metrics.")]
    param_cols = [c for c in index.df.columns if c.startswith("params.")]
    for name, (params, metrics) in LIGHTNING_VERSIONS.items():
        row = rows[name]
        assert (row["repo"], row["line"], row["format"], row["error"]) == ("lightning", "lightning_logs",
                                                                             "lightning", None)
        assert {c[len("params."):]: row[c] for c in param_cols if row[c] is not None} == params
        assert {c[len("metrics."):]: row[c] for c in metric_cols if row[c] is not None} == metrics
    assert rows["version_1"]["n_files"] == 3  # hparams.yaml, metrics.csv, checkpoints/epoch=2-step=18.ckpt
    # ModelCheckpoint's best_model_path (save_top_k=1, no save_last: no last checkpoint recorded)
    for name, ckpt in {"version_0": "epoch=1-step=6.ckpt", "version_1": "epoch=2-step=18.ckpt",
                       "version_2": "epoch=2-step=9.ckpt"}.items():
        assert rows[name]["tags"] == [f"best_checkpoint=checkpoints/{ckpt}"]


def test_lightning_history():
    rec = LightningReader().read(place_of(LIGHTNING / "lightning_logs" / "version_0"))
    metrics = {m.name: m for m in rec.metrics}
    assert metrics["val_loss"].history == [(2, 3.3515429496765137), (5, 1.4021222591400146)]
    assert [s for s, _ in metrics["train_loss"].history] == [0, 1, 2, 3, 4, 5]
    # the checkpoint whose ModelCheckpoint state is read, and the folder's listing (a new checkpoint re-reads it)
    assert set(rec.meta_files) == {"hparams.yaml", "metrics.csv", "checkpoints", "checkpoints/epoch=1-step=6.ckpt"}


# -- Hugging Face Trainer -------------------------------------------------------------------------------------------
HF_EVAL_LOSS = {"checkpoint-4": 0.682911217212677, "checkpoint-8": 0.6959039568901062,
                "checkpoint-12": 0.7176461219787598}


def test_hf_trainer():
    index = mlrepo.open_index(HF, use_cache=False)
    assert index.counts_by_format() == {"hf-trainer": 5}  # 3 checkpoints, and run1/ and run2/ final models
    rows = rows_by_name(index)
    assert set(rows) == {*HF_EVAL_LOSS, "run1", "run2"}  # the final models: tests/test_readers_hf_model.py
    for name, eval_loss in HF_EVAL_LOSS.items():
        row = rows[name]
        assert (row["repo"], row["line"], row["format"], row["error"]) == ("hf_trainer", "run1", "hf-trainer", None)
        assert row["metrics.eval_loss"] == eval_loss
        assert row["params.global_step"] == int(name.split("-")[1])
        assert row["params.hidden_size"] == 8  # from config.json
    assert rows["checkpoint-4"]["tags"] == ["best"]
    assert rows["checkpoint-8"]["tags"] == [] and rows["checkpoint-12"]["tags"] == []
    assert rows["checkpoint-12"]["metrics.loss"] == 0.6531732082366943
    for junk in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "total_flos", "epoch", "step"):
        assert f"metrics.{junk}" not in index.df.columns


def test_hf_trainer_best_follows_the_newest_state(tmp_path):
    """A checkpoint's own state is as old as itself: the newest state of the output dir decides the best."""
    shutil.copytree(HF, tmp_path / "hf")
    run = tmp_path / "hf" / "run1"
    for state_file in (run / "trainer_state.json", run / "checkpoint-12" / "trainer_state.json"):
        text = state_file.read_text().replace('run1/checkpoint-4"', 'run1/checkpoint-12"')
        state_file.write_text(text)
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert rows["checkpoint-12"]["tags"] == ["best"]
    assert rows["checkpoint-4"]["tags"] == []
    recs = {name: HfTrainerReader().read(place_of(run / name)) for name in HF_EVAL_LOSS}
    assert {n: r.is_best for n, r in recs.items()} == {"checkpoint-4": False, "checkpoint-8": False,
                                                       "checkpoint-12": True}
    assert recs["checkpoint-8"].metrics and all(m.direction is None for m in recs["checkpoint-8"].metrics)


# -- everything in one root -----------------------------------------------------------------------------------------
def test_mixed_root(tmp_path):
    for src in (CASCADE_018, MLFLOW_FILE, MLFLOW_SQLITE, LIGHTNING, HF):
        shutil.copytree(src, tmp_path / src.name)
    index = mlrepo.open_index(tmp_path, use_cache=False)
    assert index.counts_by_format() == {"cascade": 14, "mlflow": 19, "lightning": 3, "hf-trainer": 5}
    assert len(index) == 41
    assert index.df["id"].n_unique() == 41
    assert all(p.startswith(str(tmp_path)) for p in index.df["path"].to_list())
    errors = index.unreadable()["path"].to_list()
    assert errors == [str(tmp_path / "cascade-0.18" / "vision" / "cnn_small" / "00002")]  # its NaN loss
    hf = index.df.filter(index.df["format"] == "hf-trainer")
    assert hf.filter(hf["name"] == "checkpoint-4")["tags"].to_list() == [["best"]]


def test_registered_readers():
    formats = [r.format for r in default_readers()]
    assert formats[-1] == "generic"
    assert {"cascade", "mlflow", "lightning", "hf-trainer"} <= set(formats)
    # an mlflow.db in a plain folder; a DVC project's .git (its experiments) in a dvc row's folder
    assert [(r.format, r.store_files, r.host) for r in default_store_readers()] == [
        ("mlflow", ("mlflow.db",), None), ("dvc-exp", (".git",), "dvc")]


# -- damaged and in-progress input: the rest is indexed, the broken one carries `error` -----------------------------
def test_mlflow_run_without_meta(tmp_path):
    shutil.copytree(MLFLOW_FILE, tmp_path / "m")
    run = find_run(tmp_path / "m" / "mlruns", "lr-large")
    (run / "meta.yaml").unlink()
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert len(rows) == 10
    broken = rows["lr-large"]  # named from its mlflow.runName tag
    assert broken["path"] == str(run)
    assert "meta.yaml missing" in broken["error"]
    assert broken["metrics.acc"] == 0.61 and broken["params.lr"] == 0.1
    assert rows["lr-small"]["error"] is None


def test_mlflow_malformed_metric_line(tmp_path):
    shutil.copytree(MLFLOW_FILE, tmp_path / "m")
    run = find_run(tmp_path / "m" / "mlruns", "messy-steps")
    with open(run / "metrics" / "loss", "a") as fh:
        fh.write("not a metric line\n1700000009000 0.1")  # junk, then a line cut mid-write
    with open(run / "metrics" / "acc", "ab") as fh:
        fh.write(b"\xff\xfe 1 2\n")
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    broken = rows["messy-steps"]
    assert broken["metrics.loss"] == 0.2 and broken["metrics.acc"] == 0.75
    assert "metrics/loss: 2 malformed line(s) skipped (line 4, 5)" in broken["error"]
    assert "metrics/acc: 1 malformed line(s)" in broken["error"]
    assert sum(r["error"] is not None for r in rows.values()) == 1


def test_mlflow_corrupt_meta_yaml(tmp_path):
    shutil.copytree(MLFLOW_FILE, tmp_path / "m")
    run = find_run(tmp_path / "m" / "mlruns", "bert-tiny")
    exp_meta = find_run(tmp_path / "m" / "mlruns", "lr-small").parent / "meta.yaml"
    (run / "meta.yaml").write_text("run_name: [unclosed\n")
    exp_meta.write_bytes(b"\x00\x01binary")
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert "invalid YAML" in rows["bert-tiny"]["error"] and rows["bert-tiny"]["metrics.f1"] == 0.72
    assert "binary data" in rows["lr-small"]["error"]
    assert rows["lr-small"]["line"] == exp_meta.parent.name  # the experiment id, for want of its name
    assert rows["still-running"]["error"] is None


def test_corrupt_mlflow_db(tmp_path):
    shutil.copytree(LIGHTNING, tmp_path / "lightning")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "mlflow.db").write_bytes(os.urandom(4096))
    index = mlrepo.open_index(tmp_path, use_cache=False)
    assert index.counts_by_format() == {"lightning": 3, "mlflow": 1}
    bad = index.unreadable().to_dicts()
    assert len(bad) == 1
    assert bad[0]["path"] == str(tmp_path / "proj" / "mlflow.db") and bad[0]["format"] == "mlflow"
    assert "not a readable SQLite database" in bad[0]["error"]


def test_not_an_mlflow_db(tmp_path):
    con = sqlite3.connect(tmp_path / "mlflow.db")
    con.execute("CREATE TABLE something (x)")
    con.commit()
    con.close()
    index = mlrepo.open_index(tmp_path, use_cache=False)
    assert "not an MLflow tracking database" in index.df["error"][0]


def test_locked_mlflow_db(tmp_path):
    shutil.copytree(MLFLOW_SQLITE, tmp_path / "store")
    shutil.copytree(LIGHTNING, tmp_path / "lightning")
    locker = sqlite3.connect(tmp_path / "store" / "mlflow.db", isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        start = time.perf_counter()
        index = mlrepo.open_index(tmp_path, use_cache=False)
        assert time.perf_counter() - start < 5
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert index.counts_by_format() == {"lightning": 3, "mlflow": 1}
    bad = index.unreadable().to_dicts()
    assert [b["path"] for b in bad] == [str(tmp_path / "store" / "mlflow.db")]
    assert "locked" in bad[0]["error"]
    # once the lock is gone the store reads again
    assert mlrepo.open_index(tmp_path, use_cache=False).counts_by_format() == {"lightning": 3, "mlflow": 9}


def test_half_written_metrics_csv(tmp_path):
    shutil.copytree(LIGHTNING, tmp_path / "lightning")
    csv_path = tmp_path / "lightning" / "lightning_logs" / "version_1" / "metrics.csv"
    text = csv_path.read_text()
    # a ragged row in the middle, and the last row cut mid-write
    lines = text.splitlines(keepends=True)
    lines.insert(3, "0,2,1.5,extra,cells,here\n")
    cut = "".join(lines) + "2,18,0.0"
    csv_path.write_text(cut)
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    broken = rows["version_1"]
    assert f"metrics.csv: 2 malformed row(s) skipped (line 4, {len(lines) + 1})" in broken["error"]
    assert broken["metrics.val_loss"] == 0.03123556450009346
    assert broken["metrics.train_loss"] == 0.07843030989170074
    assert rows["version_0"]["error"] is None and rows["version_2"]["error"] is None


def test_lightning_odd_files(tmp_path):
    shutil.copytree(LIGHTNING, tmp_path / "lightning")
    logs = tmp_path / "lightning" / "lightning_logs"
    # save_hyperparameters can write Python tags; they are read as the data under them
    (logs / "version_0" / "hparams.yaml").write_text(
        "args: !!python/object:argparse.Namespace\n  lr: 0.3\n  name: x\nfn: !!python/name:math.sqrt ''\n")
    (logs / "version_2" / "metrics.csv").write_bytes(b"")  # created, nothing flushed yet
    (logs / "version_3").mkdir()
    (logs / "version_3" / "hparams.yaml").write_text("lr: [unclosed\n")
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert rows["version_0"]["params.args.lr"] == 0.3 and rows["version_0"]["error"] is None
    assert rows["version_2"]["error"] is None and rows["version_2"]["params.lr"] == 0.01
    assert rows["version_2"]["metrics.val_loss"] is None
    assert rows["version_3"]["error"] == "hparams.yaml: invalid YAML at line 2 column 1"


def test_hf_damaged_checkpoints(tmp_path):
    shutil.copytree(HF, tmp_path / "hf")
    run = tmp_path / "hf" / "run1"
    state = run / "checkpoint-8" / "trainer_state.json"
    state.write_text(state.read_text()[:300])  # cut mid-write
    (run / "checkpoint-16").mkdir()  # a save interrupted before the state was written
    shutil.copy(run / "training_args.bin", run / "checkpoint-16" / "training_args.bin")
    rows = rows_by_name(mlrepo.open_index(tmp_path, use_cache=False))
    assert set(rows) == {"checkpoint-4", "checkpoint-8", "checkpoint-12", "checkpoint-16", "run1", "run2"}
    assert rows["checkpoint-8"]["error"].startswith("trainer_state.json: ")
    assert rows["checkpoint-8"]["params.hidden_size"] == 8
    assert "trainer_state.json missing" in rows["checkpoint-16"]["error"]
    assert rows["checkpoint-4"]["tags"] == ["best"] and rows["checkpoint-4"]["error"] is None
    assert rows["checkpoint-12"]["metrics.eval_loss"] == HF_EVAL_LOSS["checkpoint-12"]


def test_appended_metric_revalidates_the_cache(tmp_path):
    shutil.copytree(MLFLOW_FILE, tmp_path / "m")
    first = rows_by_name(mlrepo.open_index(tmp_path))
    assert first["still-running"]["metrics.eval_loss"] == 0.95
    run = find_run(tmp_path / "m" / "mlruns", "still-running")
    with open(run / "metrics" / "eval_loss", "a") as fh:
        fh.write("1700000002000 0.9 2\n")
    again = mlrepo.open_index(tmp_path)
    assert rows_by_name(again)["still-running"]["metrics.eval_loss"] == 0.9
    assert again.stats.read == 1


def test_unchanged_tree_is_not_read_again(tmp_path):
    for src in (MLFLOW_FILE, MLFLOW_SQLITE, LIGHTNING, HF):
        shutil.copytree(src, tmp_path / src.name)
    first = mlrepo.open_index(tmp_path)
    assert first.stats.read == 27  # with the HF final models, whose checkpoints are nested in them
    again = mlrepo.open_index(tmp_path)
    assert (again.stats.read, again.stats.reused) == (0, 27)
    assert again.df.sort("path").equals(first.df.sort("path"))


def test_new_checkpoint_moves_the_best_through_the_cache(tmp_path):
    shutil.copytree(HF, tmp_path / "hf")
    run = tmp_path / "hf" / "run1"
    assert rows_by_name(mlrepo.open_index(tmp_path))["checkpoint-4"]["tags"] == ["best"]
    shutil.copytree(run / "checkpoint-12", run / "checkpoint-16")
    state = run / "checkpoint-16" / "trainer_state.json"
    state.write_text(state.read_text().replace('run1/checkpoint-4"', 'run1/checkpoint-16"')
                     .replace('"global_step": 12', '"global_step": 16'))
    rows = rows_by_name(mlrepo.open_index(tmp_path))
    assert rows["checkpoint-16"]["tags"] == ["best"]
    assert rows["checkpoint-4"]["tags"] == []


def test_one_reader_follows_a_new_checkpoint(tmp_path):
    """The live index keeps its readers: what one remembers of an output dir follows the dir's listing."""
    shutil.copytree(HF, tmp_path / "hf")
    run = tmp_path / "hf" / "run1"
    reader = HfTrainerReader()
    assert [reader.read(place_of(run / n)).is_best for n in HF_EVAL_LOSS] == [True, False, False]
    shutil.copytree(run / "checkpoint-12", run / "checkpoint-16")
    state = run / "checkpoint-16" / "trainer_state.json"
    state.write_text(state.read_text().replace('run1/checkpoint-4"', 'run1/checkpoint-16"')
                     .replace('"global_step": 12', '"global_step": 16'))
    assert [reader.read(place_of(run / n)).is_best for n in (*HF_EVAL_LOSS, "checkpoint-16")] == [
        False, False, False, True]


# -- helpers --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("32", 32), ("-3", -3), ("0", 0), ("0.001", 0.001), ("1e-3", 0.001), (".5", 0.5), ("10", 10),
    ("0.9,0.999", "0.9,0.999"), ("adam", "adam"), ("007", "007"), ("nan", "nan"), ("inf", "inf"),
    ("True", "True"), ("", ""), ("1 2", "1 2"), ("99999999999999999999", "99999999999999999999"),
])
def test_param_value(text, value):
    assert param_value(text) == value
    assert type(param_value(text)) is type(value)


def test_parse_metric_lines():
    points, bad = parse_metric_lines(b"1 0.5 0\n2 nan 1\nbad\n3 0.25\n4 0.1 2")
    assert bad == [3]
    assert points[0] == (0, 1, 0.5) and math.isnan(points[1][2])
    assert points[2] == (0, 3, 0.25)  # an old two-field line: step 0
    assert points[3] == (2, 4, 0.1)  # a complete last line without its newline
    assert parse_metric_lines(b"1 0.5 0\n2 0.7")[1] == [2]  # a cut last line is not a two-field one


def test_parse_metrics_csv_without_header():
    assert parse_metrics_csv("") == ({}, [])
    series, problems = parse_metrics_csv("epoch,step,acc\n0,0,abc\n0,1,0.5\n")
    assert series == {"acc": [(1, 0.5)]}
    assert problems == ["metrics.csv: 1 value(s) of 'acc' are not numbers"]


def test_long_metric_file_parsed_fast_and_the_same():
    lines = [f"{1700000000000 + i} {0.5 + (i % 7) / 10} {i // 2}\n" for i in range(4000)]
    lines[100] = "1700000000100 nan 50\n"
    data = "".join(reversed(lines)).encode()  # out of order, repeated steps
    assert len(data) > POLARS_BYTES
    fast, bad = read_metric("loss", data)
    points, slow_bad = parse_metric_lines(data)
    slow = make_metric("loss", points)
    assert bad == slow_bad == []
    assert fast.value == slow.value == 0.5 + (3999 % 7) / 10
    assert len(fast.history) == MAX_POINTS
    assert [s for s, _ in fast.history] == [s for s, _ in slow.history]
    # a malformed line sends the file to the line-by-line parser, which reports it
    metric, bad = read_metric("loss", data + b"junk\n")
    assert metric.value == fast.value and bad == [4001]


def test_thin():
    assert thin([1, 2, 3]) == [1, 2, 3]
    assert thin(list(range(1000)), 5) == [0, 250, 500, 749, 999]
    assert len(thin(list(range(10_000)))) == MAX_POINTS

"""W&B offline runs, as wandb 0.31 wrote them (tests/fixtures/make_wandb.py): every param and metric checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlrepo
from mlrepo.repo_index.curves import metric_curves
from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.wandb_run import RUNNING_WINDOW_S, WandbReader

WANDB = Path(__file__).parent / "fixtures" / "wandb"
PARAMS = {"batch_size": 16, "model": "mlp", "optimizer.name": "adam", "optimizer.betas": "[0.9,0.999]"}
# name -> (run id, status, lr, metrics as the run's summary holds them)
RUNS = {
    "baseline": ("base0001", "active", 0.01, {"loss": 0.2, "acc": 0.9, "val/acc": 0.85, "best_acc": 0.95}),
    "diverged": ("dive0002", "failed", 0.5, {"loss": 50.0, "acc": 0.9, "val/acc": 0.85, "best_acc": 0.95}),
    "cut-short": ("kill0003", None, 0.5, {"loss": 0.2, "acc": 0.9, "val/acc": 0.85}),
}


def run_dir(root: Path, run_id: str) -> Path:
    return next(p for p in (root / "project" / "wandb").iterdir() if p.name.endswith(run_id) and not p.is_symlink())


def place_of(path: Path) -> Place:
    return Place(str(path), path.name, frozenset(os.listdir(path)), frozenset(os.listdir(path.parent)))


def test_offline_runs_every_param_and_metric():
    index = mlrepo.open_index(WANDB, use_cache=False)
    assert index.counts_by_format() == {"wandb": 3}  # latest-run is a link to one of them, not a fourth run
    rows = {r["name"]: r for r in index.df.to_dicts()}
    assert set(rows) == set(RUNS)
    metric_columns = {c for c in index.df.columns if c.startswith("metrics.")}
    assert metric_columns == {"metrics.loss", "metrics.acc", "metrics.val/acc", "metrics.best_acc"}
    param_columns = {c for c in index.df.columns if c.startswith("params.")}
    assert param_columns == {f"params.{k}" for k in (*PARAMS, "lr")}  # _wandb is wandb's own
    for name, (run_id, status, lr, metrics) in RUNS.items():
        row = rows[name]
        assert row["path"] == str(run_dir(WANDB, run_id))
        assert (row["format"], row["repo"], row["line"], row["error"]) == ("wandb", "project", "demo", None)
        assert row["tags"] == ["sweep1", name]
        assert row["params.lr"] == lr
        for key, value in PARAMS.items():  # a list param is shown as its JSON
            assert row[f"params.{key}"] == value
        for column in metric_columns:
            assert row[column] == metrics.get(column.removeprefix("metrics."))
        if status:
            assert row["status"] == status


def test_history_is_the_curve():
    path = run_dir(WANDB, "base0001")
    curves = metric_curves(str(path), "wandb")
    assert curves["loss"] == [(0, 1.0), (1, 0.5), (2, 0.3333), (3, 0.25), (4, 0.2)]
    assert curves["acc"] == [(0, 0.5), (1, 0.6), (2, 0.7), (3, 0.8), (4, 0.9)]
    assert curves["val/acc"] == [(0, 0.45), (1, 0.55), (2, 0.65), (3, 0.75), (4, 0.85)]
    assert not any(name.startswith("_") for name in curves)  # _step, _runtime, _timestamp are bookkeeping
    record = WandbReader().read(place_of(path))
    assert record.source_id == "base0001"


def test_run_without_exit_record_is_running_then_crashed(tmp_path):
    """No exit record: running while the file is fresh, crashed once it has not changed for a while; both are
    unfinished, so kept by prune."""
    shutil.copytree(WANDB, tmp_path / "w", symlinks=True)
    path = run_dir(tmp_path / "w", "kill0003")
    log = path / "run-kill0003.wandb"
    now = time.time()
    os.utime(log, (now, now))
    assert WandbReader().read(place_of(path)).status == "running"
    old = now - RUNNING_WINDOW_S - 60
    os.utime(log, (old, old))
    assert WandbReader().read(place_of(path)).status == "crashed"


def test_truncated_tail_of_a_run_being_written(tmp_path):
    """A cut at any byte loses at most the record being written, never the run or an error line."""
    shutil.copytree(WANDB, tmp_path / "w", symlinks=True)
    path = run_dir(tmp_path / "w", "base0001")
    log = path / "run-base0001.wandb"
    data = log.read_bytes()
    full = WandbReader().read(place_of(path))
    assert full.status == "active" and full.errors == []
    for cut in range(0, len(data), 37):
        log.write_bytes(data[:cut])
        rec = WandbReader().read(place_of(path))
        assert rec.errors == [], (cut, rec.errors)
        assert set(rec.params) <= set(full.params)
        assert {m.name for m in rec.metrics} <= {m.name for m in full.metrics}
    log.write_bytes(b"not a wandb file at all")
    assert WandbReader().read(place_of(path)).errors == ["run-base0001.wandb: not a W&B run file"]


def test_a_fifo_is_refused_not_waited_on(tmp_path):
    shutil.copytree(WANDB, tmp_path / "w", symlinks=True)
    path = run_dir(tmp_path / "w", "base0001")
    (path / "run-base0001.wandb").unlink()
    os.mkfifo(path / "run-base0001.wandb")
    rec = WandbReader().read(place_of(path))
    assert rec.errors == ["run-base0001.wandb: not a regular file"]


def test_no_wandb_import():
    code = ("import sys, mlrepo; mlrepo.open_index(sys.argv[1], use_cache=False); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('wandb', 'tensorboard', 'tensorflow', "
            "'google')))")
    out = subprocess.run([sys.executable, "-c", code, str(WANDB)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

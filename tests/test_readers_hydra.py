"""Hydra jobs as hydra-core 1.3.8 wrote them (tests/fixtures/make_hydra.py), joined with the logs they hold."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlrepo

FIXTURES = Path(__file__).parent / "fixtures"
HYDRA = FIXTURES / "hydra"
CONFIG = {"optimizer.name": "sgd", "optimizer.lr": 0.05, "model.depth": 2, "seed": 0}
# job folder name -> (overrides, params that differ from config.yaml's defaults)
JOBS = {"0": (["optimizer.lr=0.1"], {"optimizer.lr": 0.1}), "1": (["optimizer.lr=0.01"], {"optimizer.lr": 0.01})}


def metrics_of(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith("metrics.") and v is not None}


def test_multirun_and_single_run_one_row_per_job():
    index = mlrepo.open_index(HYDRA, use_cache=False)
    assert index.counts_by_format() == {"hydra": 3}  # metrics.json joins its job's row, never a second row
    rows = {Path(r["path"]).relative_to(HYDRA).parts: r for r in index.df.to_dicts()}
    jobs = {parts[-1]: row for parts, row in rows.items() if parts[0] == "multirun"}
    assert set(jobs) == set(JOBS)
    for name, (overrides, changed) in JOBS.items():
        row = jobs[name]
        params = {**CONFIG, **changed}
        assert {k.removeprefix("params."): v for k, v in row.items() if k.startswith("params.") and v is not None} \
            == params
        assert row["tags"] == [f"override:{o}" for o in overrides]
        lr = params["optimizer.lr"]
        assert metrics_of(row) == {"metrics.acc": round(1 - lr, 4), "metrics.loss": round(lr * 2, 4)}
        assert row["error"] is None
    single = next(row for parts, row in rows.items() if parts[0] == "outputs")
    assert single["tags"] == ["override:model.depth=3"] and single["params.model.depth"] == 3
    assert metrics_of(single) == {"metrics.acc": 0.95, "metrics.loss": 0.1}


def test_a_lightning_log_inside_a_job_joins_its_row(tmp_path):
    shutil.copytree(HYDRA, tmp_path / "h")
    job = next((tmp_path / "h" / "multirun").glob("*/*/0"))
    shutil.copytree(FIXTURES / "tensorboard" / "lightning_logs", job / "lightning_logs")  # real Lightning files
    index = mlrepo.open_index(tmp_path, use_cache=False)
    assert index.counts_by_format() == {"hydra": 3}
    row = index.df.filter(index.df["path"] == str(job)).to_dicts()[0]
    assert row["metrics.acc"] == 0.9 and row["metrics.val_loss"] == 3.3406639099121094
    assert row["params.optimizer.lr"] == 0.1 and row["params.hidden"] == 4  # the job's and the module's
    assert row["error"] is None

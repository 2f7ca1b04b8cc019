"""Ray Tune trials as ray 2.60.0 wrote them (tests/fixtures/make_ray.py): one row per trial, every param and metric
checked against Ray's own files, statuses from Ray's experiment state, checkpoints and the tensorboardX file inside
the trial's one row."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import mlrepo
from mlrepo.repo_index.curves import metric_curves
from treeutil import du_bytes, mlrepo as run_cli, trash_env

RAY = Path(__file__).parent / "fixtures" / "ray"
# trial folder prefix -> (status, params as params.json holds them flattened, metrics of its last result)
TRIALS = {
    "sweep/train_a88e8_00000": ("active", {"lr": 0.1, "model.layers": 2, "model.act": "relu"},
                                {"loss": 0.333333, "acc": 0.966667, "step": 2.0}),
    "sweep/train_a88e8_00001": ("active", {"lr": 0.01, "model.layers": 2, "model.act": "relu"},
                                {"loss": 0.033333, "acc": 0.996667, "step": 2.0}),
    "sweep/train_a88e8_00002": ("failed", {"lr": 0.5, "model.layers": 2, "model.act": "relu"},
                                {"loss": 5.0, "acc": 0.5, "step": 0.0}),
    "stopped/train_b010a_00000": ("active", {"lr": 0.2, "model.layers": 1, "model.act": "tanh"},
                                  {"loss": 1.0, "acc": 0.9, "step": 1.0}),
    "killed/train_bccc8_00000": ("crashed", {"lr": 0.3, "model.layers": 3, "model.act": "relu", "hang": True},
                                 {"loss": 3.0, "acc": 0.7, "step": 0.0}),
}
HOUR_AGO = time.time() - 3600


def copy_aged(dest: Path) -> Path:
    """The fixture with every file an hour old (a checkout's mtimes are the checkout's time)."""
    shutil.copytree(RAY, dest)
    for folder, _dirs, files in os.walk(dest):
        for name in files:
            os.utime(os.path.join(folder, name), (HOUR_AGO, HOUR_AGO))
    return dest


def trial(root: Path, prefix: str) -> Path:
    exp, _, start = prefix.partition("/")
    return next(p for p in (root / exp).iterdir() if p.name.startswith(start))


def rows_by_trial(root: Path) -> dict[str, dict]:
    index = mlrepo.open_index(root, use_cache=False)
    rows = {}
    for row in index.df.to_dicts():
        rel = Path(row["path"]).relative_to(root)
        rows[next(k for k in TRIALS if str(rel).startswith(k))] = row
    return rows


def test_every_trial_one_row_with_exactly_what_ray_wrote(tmp_path):
    root = copy_aged(tmp_path / "ray")
    index = mlrepo.open_index(root, use_cache=False)
    # the tensorboardX events file and the checkpoint_NNNNNN folders are inside the trial's one row
    assert index.counts_by_format() == {"ray-tune": len(TRIALS)}
    rows = rows_by_trial(root)
    assert set(rows) == set(TRIALS)
    for key, (status, params, metrics) in TRIALS.items():
        row, folder = rows[key], trial(root, key)
        assert (row["status"], row["error"], row["repo"], row["line"], row["name"]) == (
            status, None, "ray", key.partition("/")[0], folder.name)
        assert {k.removeprefix("params."): v for k, v in row.items() if k.startswith("params.") and v is not None} \
            == params
        assert {k.removeprefix("metrics."): v for k, v in row.items() if k.startswith("metrics.") and v is not None} \
            == metrics
        # the same values as Ray's own files: params.json (flattened) and the last line of result.json
        ray_params = json.loads((folder / "params.json").read_text())
        assert {**{f"model.{k}": v for k, v in ray_params.pop("model").items()}, **ray_params} == params
        last = json.loads((folder / "result.json").read_text().splitlines()[-1])
        assert {k: float(last[k]) for k in metrics} == metrics
        assert row["size_bytes"] == du_bytes(folder)  # checkpoints and the events file counted in the trial
        assert row["n_files"] == sum(len(files) for _d, _s, files in os.walk(folder))
    # Ray's bookkeeping keys and its tensorboardX copies of the results are not columns
    columns = set(index.df.columns)
    for hidden in ("time_total_s", "training_iteration", "timestamp", "pid", "done", "time_this_iter_s",
                   "iterations_since_restore", "should_checkpoint", "ray/tune/loss", "ray/tune/done"):
        assert f"metrics.{hidden}" not in columns


def test_status_from_the_experiment_state_and_the_trial_files(tmp_path):
    root = copy_aged(tmp_path / "ray")
    killed = trial(root, "killed/train_bccc8_00000")
    result = killed / "result.json"
    os.utime(result)  # a trial that Ray's state calls RUNNING and that wrote just now is running
    assert rows_by_trial(root)["killed/train_bccc8_00000"]["status"] == "running"
    # between two slow results, the driver still rewriting its experiment state says the trial runs
    os.utime(result, (HOUR_AGO, HOUR_AGO))
    os.utime(next((root / "killed").glob("experiment_state-*.json")))
    assert rows_by_trial(root)["killed/train_bccc8_00000"]["status"] == "running"
    # without the experiment state: done: true (a stop rule ended it) is finished; ray 2.60 leaves done: false
    # when the function returns, so a trial with neither is crashed once it stopped writing, failed with error.txt
    for state in root.glob("*/experiment_state-*.json"):
        state.unlink()
    os.utime(result, (HOUR_AGO, HOUR_AGO))
    statuses = {k: r["status"] for k, r in rows_by_trial(root).items()}
    assert statuses == {"sweep/train_a88e8_00000": "crashed", "sweep/train_a88e8_00001": "crashed",
                        "sweep/train_a88e8_00002": "failed", "stopped/train_b010a_00000": "active",
                        "killed/train_bccc8_00000": "crashed"}


def test_curves_over_training_iterations():
    folder = trial(RAY, "sweep/train_a88e8_00000")
    results = [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]
    curves = metric_curves(str(folder), "ray-tune")
    assert curves == {name: [(r["training_iteration"], float(r[name])) for r in results]
                      for name in ("loss", "acc", "step")}
    assert [p[0] for p in curves["loss"]] == [1, 2, 3]


def test_a_trial_writing_now_and_bad_lines(tmp_path):
    root = copy_aged(tmp_path / "ray")
    folder = trial(root, "sweep/train_a88e8_00000")
    result = folder / "result.json"
    lines = result.read_text().splitlines(keepends=True)
    # a line cut by the writer at the end is quietly left out: the metrics are the last whole result's
    result.write_text("".join(lines[:2]) + lines[2][:40])
    row = rows_by_trial(root)["sweep/train_a88e8_00000"]
    second = json.loads(lines[1])
    assert (row["metrics.loss"], row["metrics.acc"], row["error"]) == (second["loss"], second["acc"], None)
    # a broken line in the middle is said, the rest still read
    result.write_text(lines[0] + "not json\n" + "[1, 2]\n" + lines[2])
    row = rows_by_trial(root)["sweep/train_a88e8_00000"]
    assert row["metrics.loss"] == json.loads(lines[2])["loss"]
    assert row["error"] == "result.json: 2 line(s) are not JSON objects, skipped"
    # a FIFO in place of result.json is refused, never waited on; params.json not a mapping is said
    result.unlink()
    os.mkfifo(result)
    (folder / "params.json").write_text("[1, 2]")
    row = rows_by_trial(root)["sweep/train_a88e8_00000"]
    assert row["error"] == "params.json: params is a list, expected a mapping; result.json: not a regular file"
    assert row["metrics.loss"] is None


def test_prune_keeps_the_running_trial_and_removes_whole_trials(tmp_path):
    root = copy_aged(tmp_path / "ray")
    killed = trial(root, "killed/train_bccc8_00000")
    os.utime(killed / "result.json")  # running: Ray's state says RUNNING and it wrote just now
    env = trash_env(tmp_path)
    plan = run_cli("prune", root, "--keep-top", "1", "--metric", "loss", "--mode", "min", "--per", "all",
                   "--recent", "0", "--delete", "--yes", "--format", "json", env=env)
    assert plan.code == 0, plan.err
    kept = trial(root, "sweep/train_a88e8_00001")  # lowest loss among finished trials
    assert kept.is_dir() and killed.is_dir() and (killed / "checkpoint_000000" / "model.txt").is_file()
    # the others go whole, checkpoints with them (the failed trial takes no slot, so no rule keeps it)
    assert not any(p.name.startswith(("train_a88e8_00000", "train_a88e8_00002", "train_b010a"))
                   for p in root.glob("*/*"))
    # the experiment's own files (Ray's state, tuner.pkl) are no trial's: left in place
    for exp in ("sweep", "stopped", "killed"):
        assert len(list((root / exp).glob("experiment_state-*.json"))) == 1 and (root / exp / "tuner.pkl").is_file()

"""mlrepo prune on copies of the real Cascade and MLflow fixtures: which models the keep rules keep, that dry runs
and runs without a terminal change nothing, that the trash holds restorable entries, and what is never removed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from treeutil import CASCADE_018, FIXTURES, age, mlrepo, snapshot

MLFLOW_FILE = FIXTURES / "mlflow_file"
MLFLOW_SQLITE = FIXTURES / "mlflow_sqlite"
ACC = ["--keep-top", "2", "--metric", "metrics.accuracy"]


def plan_of(root: Path, *args: str, env=None) -> dict:
    r = mlrepo("prune", root, *args, "--dry-run", "--format", "json", env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)


def removed(plan: dict) -> set[str]:
    return {f"{m['line']}/{m['name']}" for m in plan["models"] if m["action"] == "remove"}


def reasons(plan: dict) -> dict[str, list[str]]:
    return {f"{m['line']}/{m['name']}": m["reasons"] for m in plan["models"]}


# -- keep rules ------------------------------------------------------------------------------------------------
def test_keep_top_per_line_keeps_exactly_the_best(ws):
    """rf_baseline accuracy 0.71/0.84/0.87/0.79 -> keep 00002, 00001; cnn_small 0.66/0.69/0.1 -> keep 00001, 00000;
    sgd_sweep and vision/00000 have no metrics.accuracy, so all of them are kept."""
    plan = plan_of(ws, *ACC)
    assert removed(plan) == {"rf_baseline/00000", "rf_baseline/00003", "cnn_small/00002"}
    why = reasons(plan)
    assert why["rf_baseline/00002"] == ["top 2 by accuracy (#1)"]
    assert why["rf_baseline/00001"] == ["top 2 by accuracy (#2)"]
    assert why["sgd_sweep/00001"] == ["has no accuracy"]
    assert plan["ranked_by"] == ["metrics.accuracy maximised (from metadata)"]
    groups = {g["group"]: g for g in plan["groups"]}
    assert groups["tabular/rf_baseline"]["removed"] == 2 and groups["tabular/sgd_sweep"]["removed"] == 0
    sizes = {f"{m['line']}/{m['name']}": m["size_bytes"] for m in plan["models"]}
    assert plan["bytes_freed"] == sizes["rf_baseline/00000"] + sizes["rf_baseline/00003"] + sizes["cnn_small/00002"]


def test_keep_top_on_a_qualified_metric(ws):
    """sgd_sweep accuracy.digits.test 0.78/0.74/0.81/0.83: the top two are 00003 and 00002."""
    plan = plan_of(ws, "--keep-top", "2", "--metric", "accuracy.digits.test")
    assert removed(plan) == {"sgd_sweep/00000", "sgd_sweep/00001"}


def test_keep_top_minimised_metric_and_mode_override(ws):
    """loss.digits.val (rf_baseline 0.82/0.41/0.35/0.52) is minimised by name; --mode max turns it round."""
    assert removed(plan_of(ws, "--keep-top", "1", "--metric", "loss.digits.val")) == {
        "rf_baseline/00000", "rf_baseline/00001", "rf_baseline/00003"}
    assert removed(plan_of(ws, "--keep-top", "1", "--metric", "loss.digits.val", "--mode", "max")) == {
        "rf_baseline/00001", "rf_baseline/00002", "rf_baseline/00003"}


def test_per_all_ranks_across_the_whole_root(ws):
    plan = plan_of(ws, *ACC, "--per", "all")
    assert removed(plan) == {"rf_baseline/00000", "rf_baseline/00003", "cnn_small/00000", "cnn_small/00001",
                             "cnn_small/00002"}


def test_rules_are_a_union(ws):
    """top 1 by accuracy, or tagged baseline, or the newest of its line: only what none of them keeps goes."""
    plan = plan_of(ws, "--keep-top", "1", "--metric", "metrics.accuracy", "--keep-tag", "baseline",
                   "--keep-last", "1")
    assert removed(plan) == {"rf_baseline/00001", "cnn_small/00000"}
    why = reasons(plan)
    assert why["rf_baseline/00000"] == ["tag baseline"]
    assert why["rf_baseline/00003"] == ["newest 1 (#1)"]
    assert why["cnn_small/00002"] == ["newest 1 (#1)"]
    # --where narrows the candidates; the others are kept and say why
    plan = plan_of(ws, "--keep-top", "1", "--metric", "metrics.accuracy", "--keep-tag", "baseline",
                   "--keep-last", "1", "--where", "repo = 'tabular'")
    assert removed(plan) == {"rf_baseline/00001"}
    assert "not matched by --where" in reasons(plan)["cnn_small/00000"]


def test_older_than_only_older_models_are_candidates(ws):
    assert removed(plan_of(ws, *ACC, "--older-than", "3650d")) == set()
    plan = plan_of(ws, *ACC, "--older-than", "3650d")
    assert reasons(plan)["rf_baseline/00000"][0].startswith("changed after the cut-off ")
    assert any(n.startswith("--older-than 3650d: only models last changed before ") for n in plan["notes"])
    assert removed(plan_of(ws, *ACC, "--older-than", "1min")) == {"rf_baseline/00000", "rf_baseline/00003",
                                                                  "cnn_small/00002"}


def test_older_than_takes_restics_units_and_prints_the_cut_off(ws):
    """``6m`` is six calendar months, as in restic (not six minutes); minutes are spelled ``min``."""
    from mlrepo.commands.operations.ages import parse_age

    now = datetime(2026, 8, 31, 12, tzinfo=timezone.utc)
    assert parse_age("6m").before(now) == datetime(2026, 2, 28, 12, tzinfo=timezone.utc)
    assert parse_age("1y2w").before(now) == datetime(2025, 8, 17, 12, tzinfo=timezone.utc)
    assert parse_age("90min").before(now) == datetime(2026, 8, 31, 10, 30, tzinfo=timezone.utc)
    plan = plan_of(ws, *ACC, "--older-than", "6m")
    note = next(n for n in plan["notes"] if n.startswith("--older-than 6m"))
    cut = datetime.strptime(note.split("before ")[1][:16], "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    assert timedelta(days=180) <= datetime.now(timezone.utc) - cut <= timedelta(days=185)
    for bad in ("6", "6s", "m", "1.5m"):
        r = mlrepo("prune", ws, *ACC, "--older-than", bad, "--dry-run")
        assert r.code == 2 and "bad age" in r.err and "Traceback" not in r.err


def test_recently_changed_models_are_always_kept(copy_fixture, tmp_path):
    fresh = copy_fixture(CASCADE_018, "fresh")  # a fresh copy: every folder was just written
    for model in fresh.glob("*/*/0000*"):  # the copy keeps the fixture's file mtimes: make them all new
        os.utime(model)
    plan = plan_of(fresh, *ACC)
    assert removed(plan) == set()
    assert any("changed" in r and "maybe still being written" in r for r in reasons(plan)["rf_baseline/00000"])
    # an old tree where one file of one model was just written
    old = copy_fixture(CASCADE_018, "old")
    age(old)
    os.utime(old / "tabular" / "rf_baseline" / "00003" / "model.pkl")
    plan = plan_of(old, *ACC)
    assert removed(plan) == {"rf_baseline/00000", "cnn_small/00002"}
    assert "files changed" in reasons(plan)["rf_baseline/00003"][0]


def test_bad_rules_are_usage_errors(ws):
    assert mlrepo("prune", ws, "--dry-run").code == 2  # no rule at all
    assert mlrepo("prune", ws, "--keep-top", "2", "--dry-run").code == 2  # no metric
    r = mlrepo("prune", ws, "--keep-top", "2", "--metric", "accuracy", "--dry-run")
    assert r.code == 2 and "ambiguous" in r.err
    r = mlrepo("prune", ws, *ACC, "--older-than", "soon", "--dry-run")
    assert r.code == 2 and "bad age" in r.err
    assert mlrepo("prune", ws, *ACC, "--archive", "--delete").code == 2


# -- nothing happens without consent ---------------------------------------------------------------------------
def test_dry_run_and_no_terminal_change_nothing(ws, env):
    assert mlrepo("index", ws).code == 0  # the cache exists before: the comparison covers .mlrepo too
    before = snapshot(ws)
    r = mlrepo("prune", ws, *ACC, "--dry-run", env=env)
    assert r.code == 0, r.err
    assert "remove 3 of 14 models" in r.out and "rf_baseline/00000" in r.out and "top 2 by accuracy" in r.out
    assert snapshot(ws) == before
    r = mlrepo("prune", ws, *ACC, env=env)  # stdin is a pipe: no terminal to ask on
    assert r.code == 3, r.err
    assert "no terminal" in r.err and "remove 3 of 14 models" in r.out
    assert snapshot(ws) == before
    r = mlrepo("prune", ws, *ACC, "--delete", env=env)  # --delete needs --yes even where one could ask
    assert r.code == 3 and snapshot(ws) == before
    assert not Path(env["XDG_DATA_HOME"], "Trash").exists()


# -- the trash -------------------------------------------------------------------------------------------------
def test_prune_to_trash_and_restore(ws, env):
    originals = {name: snapshot(ws / "tabular" / "rf_baseline" / name) for name in ("00000", "00003")}
    originals["cnn"] = snapshot(ws / "vision" / "cnn_small" / "00002")
    r = mlrepo("prune", ws, *ACC, "--yes", env=env)
    assert r.code == 0, r.err
    assert "trashed 3 of 3 models" in r.err
    for gone in ("tabular/rf_baseline/00000", "tabular/rf_baseline/00003", "vision/cnn_small/00002"):
        assert not (ws / gone).exists()
    assert (ws / "tabular" / "rf_baseline" / "00002").is_dir()
    trash = Path(env["XDG_DATA_HOME"]) / "Trash"
    infos = {p.read_text().split("Path=")[1].split("\n")[0]: p for p in (trash / "info").glob("*.trashinfo")}
    assert set(infos) == {str(ws / "tabular/rf_baseline/00000"), str(ws / "tabular/rf_baseline/00003"),
                          str(ws / "vision/cnn_small/00002")}
    for info in infos.values():
        assert "DeletionDate=" in info.read_text()
        item = trash / "files" / info.name.removesuffix(".trashinfo")
        assert item.is_dir()  # the trash entry a file manager restores from
    assert snapshot(trash / "files" / infos[str(ws / "vision/cnn_small/00002")].stem) == originals["cnn"]
    # the index still lists them, as trashed
    ls = mlrepo("ls", ws, "--format", "json", "--where", "status = 'trashed'", env=env)
    assert {(m["line"], m["name"]) for m in json.loads(ls.out)} == {
        ("rf_baseline", "00000"), ("rf_baseline", "00003"), ("cnn_small", "00002")}
    # restore by path and by repo/line/name, then the rest with --all
    r = mlrepo("restore", ws, str(ws / "tabular/rf_baseline/00000"), "tabular/rf_baseline/00003", "--yes", env=env)
    assert r.code == 0, r.err
    assert snapshot(ws / "tabular" / "rf_baseline" / "00000") == originals["00000"]
    assert snapshot(ws / "tabular" / "rf_baseline" / "00003") == originals["00003"]
    assert mlrepo("restore", ws, "--all", "--yes", env=env).code == 0
    assert snapshot(ws / "vision" / "cnn_small" / "00002") == originals["cnn"]
    assert list((trash / "info").iterdir()) == [] and list((trash / "files").iterdir()) == []
    ls = json.loads(mlrepo("ls", ws, "--format", "json", env=env).out)
    assert len(ls) == 14 and {m["status"] for m in ls} == {"active"}


def test_delete_needs_yes_and_removes_for_good(ws, env):
    r = mlrepo("prune", ws, *ACC, "--delete", "--yes", env=env)
    assert r.code == 0, r.err
    assert not (ws / "tabular/rf_baseline/00000").exists() and (ws / "tabular/rf_baseline/00001").exists()
    assert not Path(env["XDG_DATA_HOME"], "Trash").exists()
    assert list((ws / ".mlrepo" / "tomb").iterdir()) == []
    assert json.loads(mlrepo("ls", ws, "--format", "json").out).__len__() == 11


def test_prune_to_archive(ws, env):
    original = snapshot(ws / "tabular" / "rf_baseline" / "00000")
    r = mlrepo("prune", ws, *ACC, "--archive", "--yes", env=env)
    assert r.code == 0, r.err
    archives = sorted((ws / ".mlrepo" / "archive").glob("*.tar.zst"))
    assert len(archives) == 3
    ls = json.loads(mlrepo("ls", ws, "--format", "json", "--where", "status = 'archived'").out)
    assert len(ls) == 3
    assert mlrepo("restore", ws, "--all", "--yes").code == 0
    assert snapshot(ws / "tabular" / "rf_baseline" / "00000") == original


# -- what is never removed -------------------------------------------------------------------------------------
def test_mlflow_running_run_is_never_removed(copy_fixture, env):
    root = copy_fixture(MLFLOW_FILE, "mlf")
    age(root)
    plan = plan_of(root, "--keep-top", "1", "--metric", "eval_loss", "--per", "repo")
    by_name = {m["name"]: m for m in plan["models"]}
    assert by_name["still-running"]["action"] == "keep"
    assert any("running" in r for r in by_name["still-running"]["reasons"])
    assert by_name["bert-tiny"]["action"] == "remove"  # eval_loss 0.65 > bert-mini's 0.55
    assert "ancient" not in by_name and "to-delete" not in by_name  # deleted runs are MLflow's business
    running = snapshot(Path(by_name["still-running"]["path"]))
    r = mlrepo("prune", root, "--where", "status = 'running' or name = 'bert-tiny'", "--yes", env=env)
    assert r.code == 0, r.err
    assert snapshot(Path(by_name["still-running"]["path"])) == running
    assert not Path(by_name["bert-tiny"]["path"]).exists()


def _stages(db: Path) -> dict[str, tuple[str, bool]]:
    """Run name -> (lifecycle stage, has a deleted_time), read with sqlite3, as MLflow would see them."""
    with sqlite3.connect(db) as con:
        return {name: (stage, deleted is not None)
                for name, stage, deleted in con.execute("SELECT name, lifecycle_stage, deleted_time FROM runs")}


def test_mlflow_sqlite_runs_are_soft_deleted_and_restored(copy_fixture, env):
    """A run of mlflow.db goes as ``mlflow runs delete`` does it (lifecycle 'deleted'), its artifacts left for
    ``mlflow gc``; ``mlrepo restore`` makes it active again. Archive and delete refuse it."""
    root = copy_fixture(MLFLOW_SQLITE, "mls")
    age(root)
    artifacts = snapshot(root / "artifacts")
    before = _stages(root / "mlflow.db")
    plan = plan_of(root, "--keep-top", "1", "--metric", "acc", "--per", "repo", "--include-failed")
    assert removed(plan) == {"vision-cls/lr-large", "vision-cls/messy-steps"}
    assert plan["bytes_freed"] == 0 and any("soft-deleted" in note for note in plan["notes"])
    r = mlrepo("prune", root, "--keep-top", "1", "--metric", "acc", "--per", "repo", "--include-failed", "--yes",
               env=env)
    assert r.code == 0, r.err
    assert "soft-deleted in mlflow.db mlflow.db/vision-cls/lr-large" in r.err
    after = _stages(root / "mlflow.db")
    assert after["lr-large"] == after["messy-steps"] == ("deleted", True)
    assert {k: v for k, v in after.items() if k not in ("lr-large", "messy-steps")} == \
        {k: v for k, v in before.items() if k not in ("lr-large", "messy-steps")}
    assert snapshot(root / "artifacts") == artifacts  # MLflow's to remove (mlflow gc)
    rows = {m["name"]: m for m in json.loads(mlrepo("ls", root, "--format", "json").out)}
    assert rows["lr-large"]["status"] == "deleted"

    r = mlrepo("archive", root, rows["lr-small"]["id"], "--yes", env=env)
    assert r.code == 1 and "soft-deleted in it (the default), not archived" in r.err
    assert _stages(root / "mlflow.db")["lr-small"] == ("active", False)

    r = mlrepo("restore", root, rows["lr-large"]["id"], env=env)
    assert r.code == 0, r.err
    assert _stages(root / "mlflow.db")["lr-large"] == ("active", False)
    assert _stages(root / "mlflow.db")["ancient"] == before["ancient"]  # deleted by MLflow, not named: left


@pytest.mark.parametrize("point", ["mlflow-stage:journaled", "mlflow-stage:updated"])
def test_mlflow_run_soft_delete_killed_is_finished_next_time(copy_fixture, env, tmp_path, point):
    root = copy_fixture(MLFLOW_SQLITE, "mls")
    age(root)
    run = next(m for m in json.loads(mlrepo("ls", root, "--format", "json").out) if m["name"] == "lr-large")
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-m", "mlrepo", "prune", str(root), "--where", "name = 'lr-large'",
                             "--yes"], env={**env, "MLREPO_FAULT_AT": point, "MLREPO_FAULT_FILE": str(marker)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().endswith("\n")):
        assert proc.poll() is None and time.monotonic() < deadline, "never reached the fault point"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((root / ".mlrepo" / "journal").iterdir())  # the step is pending
    r = mlrepo("restore", root, run["id"], env=env)  # the next run recovers first: the delete is finished...
    assert r.code == 0, r.err
    assert "finished setting run" in r.err
    assert _stages(root / "mlflow.db")["lr-large"] == ("active", False)  # ...and this restore undoes it
    assert not list((root / ".mlrepo" / "journal").iterdir())


def test_symlinks_out_of_the_root_are_never_followed(ws, env, tmp_path):
    outside = tmp_path / "outside"
    (outside / "precious").mkdir(parents=True)
    (outside / "precious" / "weights.bin").write_bytes(b"\0" * 1000)
    kept = snapshot(outside)
    model = ws / "tabular" / "rf_baseline" / "00000"
    os.symlink(outside / "precious", model / "linked_dir")
    os.symlink(outside / "precious" / "weights.bin", model / "linked_file")
    age(ws)
    r = mlrepo("prune", ws, *ACC, "--delete", "--yes", env=env)
    assert r.code == 0, r.err
    assert not model.exists()
    assert snapshot(outside) == kept
    # a model folder that is itself a symlink (the scanner does not follow it; store rows could name one)
    from mlrepo.commands.operations.paths import model_path_problem

    link = ws / "vision" / "cnn_small" / "linked"
    os.symlink(outside / "precious", link)
    assert "symlink" in model_path_problem(str(link), str(ws))
    assert model_path_problem(str(outside / "precious"), str(ws)) == "outside the root"


def test_a_second_prune_waits_for_the_lock(ws, env):
    from mlrepo.commands.operations.lock import Lock

    assert mlrepo("index", ws).code == 0
    with Lock(str(ws)):
        before = snapshot(ws)
        r = mlrepo("prune", ws, *ACC, "--yes", env=env)
        assert r.code == 1 and "another mlrepo" in r.err
        assert snapshot(ws) == before


def test_plan_api_for_the_tui(ws):
    """The TUI calls the same functions: a plan, then the operation with a progress callback."""
    from mlrepo.commands.operations import remove_models
    from mlrepo.commands.operations.plan import KeepRules, parse_age, plan_prune
    from mlrepo.repo_index import open_index

    idx = open_index(ws)
    now = datetime.now(timezone.utc)
    plan = plan_prune(idx, KeepRules(keep_top=2, metrics=("metrics.accuracy",)), now=now)
    assert {d.label for d in plan.removed} == {"tabular/rf_baseline/00000", "tabular/rf_baseline/00003",
                                              "vision/cnn_small/00002"}
    # seen from a minute after the models' metadata times, every one of them "changed a minute ago"
    just_after = idx.df["updated_at"].max() + timedelta(minutes=1)
    soon = plan_prune(idx, KeepRules(keep_top=2, metrics=("metrics.accuracy",)), now=just_after)
    assert soon.removed == []
    protected = {d.label: d.reasons for d in soon.decisions if d.protected}
    assert set(protected) == {d.label for d in plan.removed}
    assert all(r[0].startswith("changed 1min ago") for r in protected.values())
    assert plan_prune(idx, KeepRules(keep_top=2, metrics=("metrics.accuracy",), recent=parse_age("0")),
                      now=just_after).removed  # --recent 0: the guard is off
    events = []
    report = remove_models(str(ws), plan.decisions, "delete", progress=lambda p: events.append(
        (p.done, p.total, p.phase)))
    assert [o.action for o in report.outcomes] == ["deleted"] * 3
    assert events[-1] == (3, 3, "done") and (0, 3, "deleting") in events


def test_models_emptied_from_the_trash_are_forgotten(ws, env):
    assert mlrepo("prune", ws, *ACC, "--yes", env=env).code == 0
    trash = Path(env["XDG_DATA_HOME"]) / "Trash"
    shutil.rmtree(trash / "files" / "00002")  # the user empties cnn_small/00002 from the trash
    (trash / "info" / "00002.trashinfo").unlink()
    rows = json.loads(mlrepo("ls", ws, "--format", "json", env=env).out)
    assert len(rows) == 13 and sum(r["status"] == "trashed" for r in rows) == 2
    r = mlrepo("restore", ws, "--all", "--yes", env=env)
    assert r.code == 0, r.err
    assert "forgot" in r.err and "cnn_small/00002" in r.err
    assert list((ws / ".mlrepo" / "ledger").iterdir()) == []
    assert (ws / "tabular/rf_baseline/00000").is_dir() and not (ws / "vision/cnn_small/00002").exists()

"""Issue #11 beyond MLflow: bytes as ``du`` counts them and exact archives (sparse holes, xattrs, hard links), the
re-check against a real writer that starts after the plan, pins, the HF Trainer's best checkpoint, future times
and ``--recent``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from mlrepo.commands.operations import (
    plan_prune,
    plan_restore,
    remove_models,
    restore_models,
)
from mlrepo.commands.operations.ages import parse_age
from mlrepo.commands.operations.plan import KeepRules, plan_selection
from mlrepo.repo_index import open_index
from treeutil import FIXTURES, age, du_bytes, mlrepo, snapshot

NO_RECENT = parse_age("0")
MB = 1 << 20


def _model(folder: Path, acc: float) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"acc": acc}))
    return folder


@pytest.fixture
def tree(tmp_path) -> Path:
    """Three generic models: ``sparse`` (a 200 MB file holding 8 KB of data), ``linked`` (a weights file and a hard
    link to it, plus a user.* xattr) and ``sharer`` (a hard link to ``linked``'s weights)."""
    root = tmp_path / "root"
    sparse = _model(root / "exp" / "line" / "sparse", 0.1)
    with open(sparse / "big.bin", "wb") as fh:
        fh.write(b"head" * 1024)
        fh.seek(150 * MB)
        fh.write(b"tail" * 1024)
        fh.truncate(200 * MB)
    linked = _model(root / "exp" / "line" / "linked", 0.2)
    (linked / "w.bin").write_bytes(os.urandom(3 * MB))
    os.link(linked / "w.bin", linked / "w-copy.bin")
    os.setxattr(linked / "w.bin", "user.origin", b"lab-7\xff")
    os.setxattr(linked, "user.note", b"keep me")
    sharer = _model(root / "exp" / "line" / "sharer", 0.3)
    os.link(linked / "w.bin", sharer / "w.bin")
    age(root)
    return root


def test_sizes_and_freed_are_allocated_bytes_each_inode_once(tree):
    idx = open_index(tree)
    sizes = dict(zip(idx.df["name"], idx.df["size_bytes"], strict=True))
    for name in ("sparse", "linked", "sharer"):
        assert sizes[name] == du_bytes(tree / "exp" / "line" / name), name
    assert sizes["sparse"] < MB  # not the 200 MB the file claims
    everything = plan_prune(idx, KeepRules(where="name != 'nothing'", recent=NO_RECENT))
    assert {d.name for d in everything.removed} == {"sparse", "linked", "sharer"}
    assert everything.bytes_freed == du_bytes(*(tree / "exp" / "line" / n for n in ("sparse", "linked", "sharer")))
    two = plan_prune(idx, KeepRules(where="name != 'sharer'", recent=NO_RECENT))
    shared = du_bytes(tree / "exp" / "line" / "linked" / "w.bin")  # still linked from sharer: not freed
    assert two.bytes_freed == du_bytes(tree / "exp" / "line" / "sparse", tree / "exp" / "line" / "linked") - shared
    assert any("shared (hard links)" in n for n in two.notes)
    r = mlrepo("du", tree, "--by", "line", "--format", "json")
    assert json.loads(r.out)[0]["size_bytes"] == sum(sizes.values())


def test_archive_round_trip_keeps_holes_xattrs_and_links(tree, tmp_path):
    root = str(tree)
    before = {n: snapshot(tree / "exp" / "line" / n) for n in ("sparse", "linked")}
    blocks = os.lstat(tree / "exp" / "line" / "sparse" / "big.bin").st_blocks
    plan = plan_selection(open_index(tree), ["exp/line/sparse", "exp/line/linked"], recent=NO_RECENT,
                          archive_dir=os.path.join(root, ".mlrepo", "archive"))
    assert plan.archive_bytes is not None and plan.archive_bytes > 2 * MB  # random weights hardly compress
    assert any("archiving frees about" in n for n in plan.notes)
    report = remove_models(root, plan.decisions, "archive")
    assert [o.action for o in report.outcomes] == ["archived", "archived"], report.outcomes
    assert not (tree / "exp" / "line" / "sparse").exists()
    items = plan_restore(open_index(tree), everything=True)
    assert {os.path.basename(i.path) for i in items} == {"sparse", "linked"}
    assert all(o.ok for o in restore_models(root, items).outcomes)
    for name in ("sparse", "linked"):
        assert snapshot(tree / "exp" / "line" / name) == before[name], name
    big = os.lstat(tree / "exp" / "line" / "sparse" / "big.bin")
    assert big.st_size == 200 * MB and big.st_blocks == blocks  # the holes are holes again
    w, copy = os.lstat(tree / "exp" / "line" / "linked" / "w.bin"), os.lstat(tree / "exp" / "line" / "linked" / "w-copy.bin")
    assert w.st_ino == copy.st_ino and w.st_nlink == 2  # the link inside the model (sharer's is its own now)
    assert os.getxattr(tree / "exp" / "line" / "linked" / "w.bin", "user.origin") == b"lab-7\xff"
    assert os.getxattr(tree / "exp" / "line" / "linked", "user.note") == b"keep me"
    # GNU tar reads the same archive format (it ignores the sparse map and restores the same bytes)
    subprocess.run(["tar", "--version"], check=True, capture_output=True)


WRITER = """
import os, sys, time
folder, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    path = os.path.join(folder, f"ckpt-{i:04d}.pt")
    with open(path + ".tmp", "wb") as fh:
        fh.write(os.urandom(4096))
    os.replace(path + ".tmp", path)
    if i == 0:
        print("started", flush=True)
        sys.stdin.readline()  # the test lets it go on once mlrepo is about to move the folders
"""


@pytest.mark.parametrize("how", ["trash", "delete", "archive"])
def test_a_writer_that_starts_after_the_plan_loses_nothing(ws, tmp_path, how, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    idx = open_index(ws)
    plan = plan_prune(idx, KeepRules(keep_top=2, metrics=("metrics.accuracy",)))
    victim = next(d for d in plan.removed if d.label == "tabular/rf_baseline/00000")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, victim.path, "96"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "started"  # it has begun writing after the plan was made
    writer.stdin.write("go\n")
    writer.stdin.flush()
    report = remove_models(str(ws), plan.decisions, how)
    assert writer.wait(timeout=60) == 0
    outcome = next(o for o in report.outcomes if o.id == victim.id)
    assert not outcome.ok and "changed" in outcome.message and "kept" in outcome.message
    assert sorted(p.name for p in Path(victim.path).glob("ckpt-*.pt")) == [f"ckpt-{i:04d}.pt" for i in range(96)]
    assert sum(o.ok for o in report.outcomes) == len(plan.removed) - 1  # the others went


def test_pins_protect_survive_a_rebuilt_cache_and_live_in_mlrepos_state(ws, env):
    r = mlrepo("pin", ws, "tabular/rf_baseline/00000", "--note", "deployed to prod")
    assert r.code == 0, r.err
    pins = json.loads((ws / ".mlrepo" / "pins.json").read_text())["pins"]
    assert [p["note"] for p in pins] == ["deployed to prod"]
    assert mlrepo("index", ws, "--rebuild").code == 0
    rows = {f"{m['line']}/{m['name']}": m for m in json.loads(mlrepo("ls", ws, "--format", "json").out)}
    assert "pinned" in rows["rf_baseline/00000"]["tags"]
    plan = json.loads(mlrepo("prune", ws, "--keep-top", "2", "--metric", "metrics.accuracy", "--dry-run",
                             "--format", "json").out)
    pinned = next(m for m in plan["models"] if m["id"] == rows["rf_baseline/00000"]["id"])
    assert pinned["action"] == "keep" and pinned["reasons"] == ["pinned: deployed to prod (mlrepo unpin releases it)"]
    r = mlrepo("archive", ws, rows["rf_baseline/00000"]["id"], "--yes", env=env)
    assert r.code == 1 and "pinned" in r.err and (ws / "tabular" / "rf_baseline" / "00000").is_dir()
    assert mlrepo("unpin", ws, rows["rf_baseline/00000"]["id"]).code == 0
    plan = json.loads(mlrepo("prune", ws, "--keep-top", "2", "--metric", "metrics.accuracy", "--dry-run",
                             "--format", "json").out)
    assert next(m for m in plan["models"] if m["id"] == rows["rf_baseline/00000"]["id"])["action"] == "remove"
    (ws / ".mlrepo" / "pins.json").write_text("{broken")
    r = mlrepo("prune", ws, "--keep-top", "2", "--metric", "metrics.accuracy", "--dry-run")
    assert r.code == 1 and "cannot read the pins" in r.err and "Traceback" not in r.err


def test_the_hf_trainers_best_checkpoint_is_kept(copy_fixture):
    root = copy_fixture(FIXTURES / "hf_trainer", "hf")
    age(root)
    idx = open_index(root)
    best = idx.df.filter(idx.df["tags"].list.contains("best"))["name"].to_list()
    assert len(best) == 1
    plan = plan_prune(idx, KeepRules(where="format = 'hf-trainer'"))
    kept = {d.name: d.reasons for d in plan.kept}
    assert kept.pop(best[0]) == ["the HF Trainer's best_model_checkpoint"]
    # the final model in the output dir holds the checkpoints: never removed (with them) while they exist
    assert list(kept) == ["run1"] and kept["run1"][0].startswith("contains 3 other model(s)")


def test_future_times_are_said_not_taken_as_recent_and_recent_overrides(ws):
    model = ws / "tabular" / "rf_baseline" / "00000"
    year_2100 = datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp()
    os.utime(model / "meta.json", (year_2100, year_2100))
    d = next(d for d in plan_prune(open_index(ws), KeepRules(keep_top=2, metrics=("metrics.accuracy",))).decisions
             if d.path == str(model))
    assert d.remove and any(r.startswith("dated in the future (2100-01-01") for r in d.reasons)
    os.utime(model / "meta.json")  # written just now: kept, unless --recent says otherwise
    idx = open_index(ws)
    fresh = next(d for d in plan_prune(idx, KeepRules(keep_top=2, metrics=("metrics.accuracy",))).decisions
                 if d.path == str(model))
    assert not fresh.remove and "maybe still being written; --recent overrides" in fresh.reasons[0]
    plan = plan_prune(idx, KeepRules(keep_top=2, metrics=("metrics.accuracy",), recent=NO_RECENT))
    assert next(d for d in plan.decisions if d.path == str(model)).remove
    assert "--recent 0" in " ".join(plan.notes)
    r = mlrepo("prune", ws, "--keep-top", "2", "--metric", "metrics.accuracy", "--recent", "2h", "--dry-run")
    assert r.code == 0 and "(the last 2h) are kept" in r.err


def test_a_db_run_resumed_after_the_plan_is_not_deleted(copy_fixture, tmp_path):
    """The soft-delete of an mlflow.db run re-checks, in the same UPDATE, that the run is still finished and
    active: one that MLflow resumed (RUNNING again) after the plan stays."""
    import sqlite3

    root = copy_fixture(FIXTURES / "mlflow_sqlite", "mls")
    age(root)
    plan = plan_prune(open_index(root), KeepRules(where="name = 'lr-large' or name = 'messy-steps'",
                                                  recent=NO_RECENT))
    assert {d.name for d in plan.removed} == {"lr-large", "messy-steps"}
    with sqlite3.connect(root / "mlflow.db") as con:
        con.execute("UPDATE runs SET status = 'RUNNING', end_time = NULL WHERE name = 'lr-large'")
    report = remove_models(str(root), plan.decisions, "trash")
    outcome = {o.label.rsplit("/", 1)[-1]: o for o in report.outcomes}
    assert outcome["messy-steps"].ok and not outcome["lr-large"].ok
    assert "changed since the plan" in outcome["lr-large"].message
    with sqlite3.connect(root / "mlflow.db") as con:
        stages = dict(con.execute("SELECT name, lifecycle_stage FROM runs"))
    assert stages["lr-large"] == "active" and stages["messy-steps"] == "deleted"


def test_a_model_folder_holding_a_git_repository_is_kept(tree):
    """A folder with a .git (a DVC project, a cloned model) may hold commits found nowhere else: never pruned."""
    subprocess.run(["git", "init", "-q", str(tree / "exp" / "line" / "sparse")], check=True)
    plan = plan_prune(open_index(tree), KeepRules(keep_top=1, metrics=("acc",), recent=NO_RECENT))
    reasons = {d.name: d.reasons for d in plan.kept}
    assert reasons["sparse"] == ["holds a git repository (.git), whose commits may exist nowhere else: remove it by "
                                 "hand if you mean to"]
    assert [d.name for d in plan.removed] == ["linked"]  # the other lower-ranked model still goes

"""mlrepo archive and restore on copies of the real fixtures: archive -> restore gives the identical tree (every
file's content, name, mode and mtime), archived models stay in the index, the archives are standard .tar.zst."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from treeutil import FIXTURES, age, archive_snapshot, mlrepo, snapshot


def _odd_files(model: Path) -> None:
    """What real model folders hold besides plain files: links, empty folders, read-only and executable files,
    a name that is not UTF-8, nanosecond mtimes."""
    (model / "checkpoints" / "empty").mkdir(parents=True)
    (model / "checkpoints" / "weights.bin").write_bytes(os.urandom(300_000))
    os.link(model / "checkpoints" / "weights.bin", model / "checkpoints" / "weights-hardlink.bin")
    os.symlink("checkpoints/weights.bin", model / "best.bin")
    os.symlink("/nonexistent/outside", model / "dangling")
    (model / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(model / "run.sh", 0o750)
    (model / "frozen.json").write_text("{}")
    os.chmod(model / "frozen.json", 0o444)
    (model / os.fsdecode(b"caf\xe9-latin1.txt")).write_bytes(b"x")
    age(model)
    os.utime(model / "frozen.json", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.chmod(model / "checkpoints" / "empty", 0o555)


def test_archive_then_restore_gives_the_identical_tree(ws, env):
    model = ws / "tabular" / "rf_baseline" / "00001"
    _odd_files(model)
    os.utime(ws / "tabular" / "rf_baseline", (1_700_000_000, 1_700_000_000))
    assert mlrepo("index", ws).code == 0
    whole = snapshot(ws, dir_mtimes=False, skip=(".mlrepo",))
    models = {p: snapshot(p) for p in [model, ws / "tabular" / "rf_baseline" / "00002",
                                       ws / "vision" / "00000" / "00001"]}
    r = mlrepo("archive", ws, "--where", "line = 'rf_baseline' or (line = '00000' and name = '00001')", "--yes",
               env=env)
    assert r.code == 0, r.err
    assert "archived 5 of 5 models" in r.err
    assert not model.exists() and not (ws / "vision" / "00000" / "00001").exists()
    archives = sorted((ws / ".mlrepo" / "archive").glob("*.tar.zst"))
    assert len(archives) == 5
    mine = next(a for a in archives if "rf_baseline__00001" in a.name)
    assert archive_snapshot(mine) == models[model]  # read back without mlrepo's code
    r = mlrepo("restore", ws, "--all", env=env)  # no --yes, no terminal: restoring destroys nothing, so it goes
    assert r.code == 0, r.err
    assert "restored 5 of 5 models" in r.err
    for path, snap in models.items():
        assert snapshot(path) == snap, path
    assert snapshot(ws, dir_mtimes=False, skip=(".mlrepo",)) == whole
    assert list((ws / ".mlrepo" / "archive").iterdir()) == []
    assert list((ws / ".mlrepo" / "ledger").iterdir()) == []
    assert os.listdir(ws / ".mlrepo" / "journal") == []


def test_archived_models_stay_in_the_index(ws, env):
    r = mlrepo("archive", ws, "tabular/sgd_sweep/00003", "tabular/rf_baseline/00002", "--yes", env=env)
    assert r.code == 0, r.err
    rows = {(m["line"], m["name"]): m for m in json.loads(mlrepo("ls", ws, "--format", "json").out)}
    assert len(rows) == 14
    best = rows[("sgd_sweep", "00003")]
    assert best["status"] == "archived"
    assert best["metrics.accuracy.digits.test"] == 0.83 and best["params.optimizer.name"] is not None
    assert best["tags"] == ["best"]
    archive_bytes = best["size_bytes"]
    assert 0 < archive_bytes < 2_000
    # best skips archived models unless asked
    r = mlrepo("best", ws, "--metric", "metrics.accuracy")
    assert r.out.strip().endswith("rf_baseline/00001")
    r = mlrepo("best", ws, "--metric", "metrics.accuracy", "--all-status")  # archived: no folder to print
    assert r.code == 1 and r.out == "" and "rf_baseline/00002" in r.err and "is archived: `mlrepo restore" in r.err
    r = mlrepo("best", ws, "--metric", "metrics.accuracy", "--all-status", "--format", "json")
    assert json.loads(r.out)[0]["path"].endswith("rf_baseline/00002")
    r = mlrepo("ls", ws, "--where", "status = 'archived'", "--format", "json")
    assert {m["name"] for m in json.loads(r.out)} == {"00003", "00002"}
    # show works on an archived model by its id
    assert mlrepo("show", best["id"], "--root", ws).code == 0
    # archiving an archived model is refused; restoring an active one is a usage error
    r = mlrepo("archive", ws, best["id"], "--yes", env=env)
    assert r.code == 1 and "already archived" in r.out + r.err
    r = mlrepo("restore", ws, "tabular/sgd_sweep/00001", "--yes", env=env)
    assert r.code == 2 and "not archived or trashed" in r.err


def test_archive_to_another_folder(ws, env, tmp_path):
    other = tmp_path / "other-disk" / "archives"
    original = snapshot(ws / "vision" / "cnn_small" / "00000")
    r = mlrepo("archive", ws, "vision/cnn_small/00000", "--to", other, "--yes", env=env)
    assert r.code == 0, r.err
    (archive,) = other.glob("*.tar.zst")
    assert not list(other.glob(".tmp-*"))
    if shutil.which("zstd") and shutil.which("tar"):  # a standard archive: tar opens it without mlrepo
        listing = subprocess.run(["tar", "--zstd", "-tf", archive], capture_output=True, text=True)
        assert listing.returncode == 0 and "00000/meta.json" in listing.stdout
    assert mlrepo("restore", ws, "vision/cnn_small/00000", "--yes", env=env).code == 0
    assert snapshot(ws / "vision" / "cnn_small" / "00000") == original
    assert not archive.exists()


def test_archive_dry_run_and_no_terminal_change_nothing(ws, env):
    assert mlrepo("index", ws).code == 0
    before = snapshot(ws)
    r = mlrepo("archive", ws, "--where", "repo = 'vision'", "--dry-run", env=env)
    assert r.code == 0 and "archive 6 of 6 models" in r.out
    assert snapshot(ws) == before
    r = mlrepo("archive", ws, "--where", "repo = 'vision'", env=env)
    assert r.code == 3 and "no terminal" in r.err
    assert snapshot(ws) == before


def test_restore_refuses_a_damaged_archive_and_keeps_it(ws, env):
    original = snapshot(ws / "tabular" / "rf_baseline" / "00003")
    assert mlrepo("archive", ws, "tabular/rf_baseline/00003", "--yes", env=env).code == 0
    (archive,) = (ws / ".mlrepo" / "archive").glob("*.tar.zst")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    good = archive.read_bytes()
    archive.write_bytes(bytes(data))
    r = mlrepo("restore", ws, "tabular/rf_baseline/00003", "--yes", env=env)
    assert r.code == 1 and "not restored" in r.err
    assert not (ws / "tabular" / "rf_baseline" / "00003").exists()
    assert list((ws / ".mlrepo" / "staging").iterdir()) == []
    archive.write_bytes(good)
    assert mlrepo("restore", ws, "tabular/rf_baseline/00003", "--yes", env=env).code == 0
    assert snapshot(ws / "tabular" / "rf_baseline" / "00003") == original


def test_restore_never_overwrites_a_folder_in_the_way(ws, env):
    assert mlrepo("archive", ws, "tabular/rf_baseline/00003", "--yes", env=env).code == 0
    (ws / "tabular" / "rf_baseline" / "00003").mkdir()
    (ws / "tabular" / "rf_baseline" / "00003" / "new.txt").write_text("new work")
    r = mlrepo("restore", ws, "--all", "--yes", env=env)
    assert r.code == 1 and "already at" in r.out + r.err
    assert (ws / "tabular" / "rf_baseline" / "00003" / "new.txt").read_text() == "new work"
    assert len(list((ws / ".mlrepo" / "archive").glob("*.tar.zst"))) == 1


def test_archive_mlflow_file_store_runs(copy_fixture, env):
    root = copy_fixture(FIXTURES / "mlflow_file", "mlf")
    age(root)
    rows = json.loads(mlrepo("ls", root, "--format", "json").out)
    target = next(m for m in rows if m["name"] == "lr-small")
    running = next(m for m in rows if m["name"] == "still-running")
    original = snapshot(target["path"])
    r = mlrepo("archive", root, "--where", "line = 'vision-cls' or name = 'still-running'", "--yes", env=env)
    assert r.code == 0, r.err
    assert Path(running["path"]).is_dir()  # running: kept
    assert not Path(target["path"]).exists()
    assert mlrepo("restore", root, target["id"], "--yes", env=env).code == 0
    assert snapshot(target["path"]) == original
    back = {m["name"]: m for m in json.loads(mlrepo("ls", root, "--format", "json").out)}
    assert back["lr-small"]["status"] == "active" and back["lr-small"]["metrics.acc"] == 0.82

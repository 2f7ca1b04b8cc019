"""The live index on real files and real watchdog observers: saves, updates, removals, moves, bursts, half-written
metadata, copies, deleted repos, the root going away, the cache left warm, and `mlrepo watch` as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlrepo
import orjson
import pytest
from mlrepo.repo_index import scanner as scanner_mod
from mlrepo.repo_index.live import POLL_FOLDERS_PER_SECOND, ChangeBatch, LiveIndex
from mlrepo.repo_index.live.watchers import inotify_watched_inodes
from mlrepo.repo_index.rows import model_id
from treeutil import CASCADE_018, FIXTURES

TEMPLATE = json.loads((CASCADE_018 / "tabular" / "rf_baseline" / "00001" / "meta.json").read_text())


class Recorder:
    """Collects batches from the live worker thread; ``wait`` polls until a condition holds."""

    def __init__(self) -> None:
        self.batches: list[ChangeBatch] = []
        self.lock = threading.Lock()

    def __call__(self, batch: ChangeBatch) -> None:
        with self.lock:
            self.batches.append(batch)

    @property
    def events(self) -> list:
        with self.lock:
            return [e for b in self.batches for e in b.events]

    def of(self, kind: str, path: Path | str | None = None) -> list:
        return [e for e in self.events if e.event == kind and (path is None or e.path == str(path))]

    def wait(self, cond, timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out; events so far: {[(e.event, e.path) for e in self.events]}")


@pytest.fixture
def live_root(copy_fixture):
    """A copy of the Cascade 0.18 fixture (14 models) with a LiveIndex on it; stopped at the end."""
    started: list[LiveIndex] = []
    said: list[str] = []

    def make(src: Path = CASCADE_018, before=None, **kw) -> tuple[Path, LiveIndex, Recorder]:
        root = copy_fixture(src)
        if before is not None:
            before(root)
        rec = Recorder()
        kw.setdefault("settle", 1.0)
        live = LiveIndex(root, on_change=rec, on_warning=said.append, **kw)
        live.start()
        started.append(live)
        return root, live, rec

    yield make
    for live in started:
        live.stop()
    assert said == []  # no fallback and no processing error in any of these


def meta_with(accuracy: float) -> list:
    meta = json.loads(json.dumps(TEMPLATE))
    meta[0]["metrics"][0]["value"] = accuracy
    return meta


def save_atomic(folder: Path, accuracy: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta_with(accuracy)))
    os.replace(tmp, folder / "meta.json")


def row(live: LiveIndex, folder: Path) -> dict | None:
    hits = live.index.df.filter(live.index.df["path"] == str(folder))
    return hits.row(0, named=True) if hits.height else None


def test_atomic_save_is_added_by_reading_that_model_only(live_root, monkeypatch):
    root, live, rec = live_root()
    assert live.mode == "inotify" and len(live.index) == 14
    scans = []
    real_scan = scanner_mod.Scanner.scan
    monkeypatch.setattr(scanner_mod.Scanner, "scan", lambda self: scans.append(self.root) or real_scan(self))
    model = root / "tabular" / "rf_baseline" / "00004"
    model.mkdir()
    (model / "SLUG").write_text("brisk_otter")
    save_atomic(model, 0.91)
    rec.wait(lambda: rec.of("added", model))
    (event,) = rec.events
    assert event.id == model_id("tabular/rf_baseline/00004") and event.format == "cascade"
    assert (event.repo, event.line, event.name, event.error) == ("tabular", "rf_baseline", "00004", None)
    assert row(live, model)["metrics.accuracy"] == 0.91 and len(live.index) == 15
    # a new folder under a known line is claimed and read on its own: no walk of the tree (a Scanner rooted at the
    # new folder runs only if the machine was so slow that the folder was looked at before its meta.json landed)
    assert set(scans) <= {str(model)} and live.stats["reads"] <= 2


def test_non_atomic_save_in_chunks_reports_once_without_error(live_root):
    root, live, rec = live_root()
    model = root / "vision" / "cnn_small" / "00009"
    model.mkdir()
    text = json.dumps(meta_with(0.42), indent=2)
    with open(model / "meta.json", "w") as fh:
        for i in range(0, len(text), 150):
            fh.write(text[i:i + 150])
            fh.flush()
            time.sleep(0.03)
    rec.wait(lambda: rec.of("added", model))
    time.sleep(0.4)
    assert [e.event for e in rec.events] == ["added"] and rec.events[0].error is None
    assert row(live, model)["metrics.accuracy"] == 0.42


def test_half_written_meta_waits_then_completes_and_broken_one_is_reported(live_root):
    root, live, rec = live_root(settle=1.0)
    model = root / "vision" / "cnn_small" / "00010"
    model.mkdir()
    text = json.dumps(meta_with(0.33))
    (model / "meta.json").write_text(text[: len(text) // 2])  # the writer pauses mid-file, past the debounce
    time.sleep(0.6)
    assert rec.events == [] and row(live, model) is None  # not an error while it may still be written
    with open(model / "meta.json", "a") as fh:
        fh.write(text[len(text) // 2:])
    rec.wait(lambda: rec.of("added", model))
    assert [(e.event, e.error) for e in rec.events] == [("added", None)]
    assert row(live, model)["metrics.accuracy"] == 0.33

    broken = root / "vision" / "cnn_small" / "00011"
    broken.mkdir()
    (broken / "meta.json").write_text(text[:40])  # and stays that way
    rec.wait(lambda: rec.of("added", broken), timeout=6)
    assert "meta.json" in rec.of("added", broken)[0].error
    assert row(live, broken)["error"]


def test_update_and_remove(live_root):
    root, live, rec = live_root()
    model = root / "tabular" / "rf_baseline" / "00002"
    save_atomic(model, 0.5)
    rec.wait(lambda: rec.of("updated", model))
    assert row(live, model)["metrics.accuracy"] == 0.5
    (model / "meta.json").write_text(json.dumps(meta_with(0.6)))  # rewritten in place
    rec.wait(lambda: row(live, model)["metrics.accuracy"] == 0.6)
    shutil.rmtree(model)
    rec.wait(lambda: rec.of("removed", model))
    assert row(live, model) is None and len(live.index) == 13
    assert {e.event for e in rec.events} == {"updated", "removed"}


def test_line_renamed_and_model_moved_to_another_line(live_root):
    root, live, rec = live_root()
    old, new = root / "tabular" / "rf_baseline", root / "tabular" / "rf_renamed"
    os.rename(old, new)
    rec.wait(lambda: len(rec.of("removed")) == 4 and len(rec.of("added")) == 4)
    assert sorted(e.path for e in rec.of("added")) == [str(new / f"0000{i}") for i in range(4)]
    assert set(live.index.df.filter(live.index.df["repo"] == "tabular")["line"]) == {"rf_renamed", "sgd_sweep"}
    assert len(live.index) == 14

    src, dst = new / "00003", root / "tabular" / "sgd_sweep" / "00007"
    os.rename(src, dst)
    rec.wait(lambda: rec.of("removed", src) and rec.of("added", dst))
    moved = row(live, dst)
    assert (moved["line"], moved["name"], moved["metrics.accuracy"]) == ("sgd_sweep", "00007", 0.79)
    assert len(live.index) == 14


def test_copied_line_and_deleted_repo(live_root):
    root, live, rec = live_root()
    subprocess.run(["cp", "-r", str(root / "tabular" / "rf_baseline"), str(root / "tabular" / "rf_copy")], check=True)
    rec.wait(lambda: len(rec.of("added")) == 4)
    assert len(live.index) == 18
    copied = live.index.df.filter(live.index.df["line"] == "rf_copy").sort("name")
    original = live.index.df.filter(live.index.df["line"] == "rf_baseline").sort("name")
    assert copied["metrics.accuracy"].to_list() == original["metrics.accuracy"].to_list()

    shutil.rmtree(root / "vision")
    rec.wait(lambda: len(rec.of("removed")) == 6)
    assert set(live.index.df["repo"]) == {"tabular"} and len(live.index) == 12

    elsewhere = root.parent / "outside_line"
    shutil.copytree(CASCADE_018 / "vision" / "cnn_small", elsewhere)
    os.rename(elsewhere, root / "tabular" / "moved_in")  # mv from outside the root: only the top folder is told
    rec.wait(lambda: len(live.index.df.filter(live.index.df["line"] == "moved_in")) == 3)


def test_burst_of_1000_saves_is_coalesced(live_root):
    root, live, rec = live_root()
    line = root / "vision" / "burst"
    line.mkdir()
    shutil.copy(root / "vision" / "cnn_small" / "meta.json", line / "meta.json")
    busy = root / "tabular" / "rf_baseline" / "00000"
    start = time.monotonic()
    for i in range(1000):
        if i % 2:
            save_atomic(busy, i / 1000)  # one model saved 500 times
        else:
            save_atomic(line / f"{i // 10:05d}", i / 1000)  # 100 new models, 5 saves each
    written = time.monotonic() - start

    def settled() -> bool:
        df = live.index.df
        return (len(df.filter(df["line"] == "burst")) == 100 and row(live, busy)["metrics.accuracy"] == 0.999
                and all(row(live, line / f"{n:05d}")["metrics.accuracy"] == (n * 10 + 8) / 1000 for n in (0, 99)))

    rec.wait(settled, timeout=20)
    took = time.monotonic() - start
    live.flush()
    burst = live.index.df.filter(live.index.df["line"] == "burst")
    values = dict(zip(burst["name"], burst["metrics.accuracy"], strict=True))
    assert values == {f"{n:05d}": (n * 10 + 8) / 1000 for n in range(100)}
    assert len(live.index) == 114 and not rec.of("removed")
    assert len(rec.events) < 300, len(rec.events)  # 1000 saves, 101 models: coalesced per model
    assert len(rec.of("updated", busy)) <= max(3, int(written / live.max_delay) + 2)
    assert all(e.error is None for e in rec.events)
    assert took < written + 10


def test_cache_is_warm_and_true_after_a_session(live_root):
    root, live, rec = live_root()
    save_atomic(root / "tabular" / "rf_baseline" / "00005", 0.77)
    shutil.rmtree(root / "vision" / "cnn_small" / "00001")
    os.rename(root / "tabular" / "sgd_sweep", root / "tabular" / "sgd_v2")
    shutil.copytree(root / "vision" / "00000", root / "vision" / "copied")
    rec.wait(lambda: len(rec.of("added")) == 1 + 4 + 3 and len(rec.of("removed")) == 1 + 4)
    live.stop()
    warm = mlrepo.open_index(root)
    assert warm.stats.read == 0 and len(warm) == 17
    assert warm.df.equals(live.index.df)
    assert warm.df.equals(mlrepo.open_index(root, rebuild=True, use_cache=False).df)


def test_resync_without_an_observer_finds_what_changed(copy_fixture):
    """observer="off": nothing is seen until asked; resync revalidates like a warm open_index (stat calls)."""
    root = copy_fixture(CASCADE_018)
    rec = Recorder()
    with LiveIndex(root, on_change=rec, observer="off") as live:
        save_atomic(root / "tabular" / "rf_baseline" / "00003", 0.12)
        shutil.rmtree(root / "vision" / "cnn_small")
        time.sleep(0.3)
        assert rec.events == []
        live.resync()
        rec.wait(lambda: len(rec.events) == 4)
        assert sorted(e.event for e in rec.events) == ["removed"] * 3 + ["updated"]
        assert live.stats["reads"] == 0 and live.stats["resyncs"] == 1  # the one changed model: read by the scan


def test_experiment_rename_updates_its_runs_and_polling_works(live_root):
    """MLflow runs take their line (the experiment) from ../meta.yaml: renaming the experiment (an atomic rewrite outside every run
    folder) updates each run; here with watchdog's PollingObserver."""
    root, live, rec = live_root(FIXTURES / "mlflow_file", observer="polling", poll_interval=0.2)
    assert live.mode == "polling"
    exp = root / "mlruns" / "998583103970949552"
    runs = {r["path"] for r in live.index.df.filter(live.index.df["path"].str.starts_with(str(exp))).to_dicts()}
    assert runs
    text = (exp / "meta.yaml").read_text()
    name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("name:"))
    (exp / "meta.yaml.tmp").write_text(text.replace(f"name: {name}", "name: renamed-exp"))
    os.replace(exp / "meta.yaml.tmp", exp / "meta.yaml")
    rec.wait(lambda: {e.path for e in rec.of("updated")} >= runs)
    assert {e.line for e in rec.of("updated")} == {"renamed-exp"}  # repo is the store, line the experiment


def test_inotify_failure_falls_back_to_polling_with_a_warning(copy_fixture, monkeypatch):
    import errno

    import watchdog.observers

    class Refusing(watchdog.observers.Observer):  # the real observer, refused by the kernel's watch limit
        def schedule(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watchdog.observers, "Observer", Refusing)
    root = copy_fixture(CASCADE_018)
    said: list[str] = []
    rec = Recorder()
    with LiveIndex(root, on_change=rec, on_warning=said.append, poll_interval=0.2) as live:
        assert live.mode == "polling"
        assert said and "max_user_watches" in said[0] and "polling" in said[0]
        save_atomic(root / "tabular" / "rf_baseline" / "00006", 0.1)
        rec.wait(lambda: rec.of("added"))


def test_root_disappearing_stops_cleanly(live_root):
    root, live, rec = live_root()
    shutil.rmtree(root)
    rec.wait(lambda: rec.batches and rec.batches[-1].final)
    assert len(rec.of("removed")) == 14 and len(live.index) == 0
    assert "disappeared" in live.error
    live.stop()
    assert not root.exists()  # the cache was not written back into a root that is gone


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_mlrepo_watch_prints_json_lines_and_exits_0_on_a_signal(copy_fixture, sig):
    root = copy_fixture(CASCADE_018)
    proc = subprocess.Popen([sys.executable, "-m", "mlrepo", "watch", str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = proc.stderr.readline()  # "watching 14 models under ... (inotify); Ctrl-C to stop"
        assert "watching 14 models" in ready, ready + proc.stderr.read()
        model = root / "vision" / "cnn_small" / "00020"
        start = time.monotonic()
        save_atomic(model, 0.66)
        line = proc.stdout.readline()
        assert time.monotonic() - start < 5
        event = orjson.loads(line)
        assert event["event"] == "added" and event["path"] == str(model) and event["format"] == "cascade"
        assert event["id"] == model_id("vision/cnn_small/00020") and event["line"] == "cnn_small"
        assert event["schema_version"] == 1 and event["metrics"] and event["status"] == "active"
        shutil.rmtree(model)
        gone = orjson.loads(proc.stdout.readline())
        assert gone["event"] == "removed" and gone["path"] == str(model) and gone["status"] == "removed"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert mlrepo.open_index(root).stats.read == 0  # the watch left the cache warm


def test_mlrepo_watch_on_a_missing_root_is_a_usage_error(tmp_path, cli):
    result = cli("watch", tmp_path / "nope")
    assert result.code == 2 and "no such folder" in result.err and "Traceback" not in result.err


def test_hf_best_checkpoint_follows_the_output_dirs_state(live_root):
    """HF checkpoints depend on ``..``/``../trainer_state.json``: a new best recorded there updates the checkpoints."""
    root, live, rec = live_root(FIXTURES / "hf_trainer")
    out = root / "run1"
    best = {r["name"] for r in live.index.df.filter(live.index.df["tags"].list.contains("best")).to_dicts()}
    assert best == {"checkpoint-4"}
    state = json.loads((out / "trainer_state.json").read_text())
    state["best_model_checkpoint"] = str(out / "checkpoint-12")
    (out / "trainer_state.json.tmp").write_text(json.dumps(state))
    os.replace(out / "trainer_state.json.tmp", out / "trainer_state.json")
    rec.wait(lambda: {e.name for e in rec.of("updated")} >= {"checkpoint-4", "checkpoint-12"})
    best = {r["name"] for r in live.index.df.filter(live.index.df["tags"].list.contains("best")).to_dicts()}
    assert best == {"checkpoint-12"}


def test_archive_and_restore_change_the_status_not_the_id(live_root, cli):
    """`mlrepo archive` writes its ledger entry, then moves the folder away: live, the model stays listed as
    archived under the same id (as open_index shows it); `mlrepo restore` brings it back to active."""
    def age(root: Path) -> None:  # prune/archive keep models changed in the last minutes
        old = time.time() - 7200
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.utime(os.path.join(dirpath, name), (old, old), follow_symlinks=False)

    root, live, rec = live_root(before=age)
    model = root / "tabular" / "rf_baseline" / "00001"
    assert cli("archive", root, "tabular/rf_baseline/00001", "--yes").code == 0
    rec.wait(lambda: rec.of("updated", model) and (row(live, model) or {}).get("status") == "archived")
    mine = model_id("tabular/rf_baseline/00001")
    # (on a very slow machine the ledger entry may be seen while the folder is still there: then the archived copy
    # shows for a moment under an id of its own, as open_index would show it at that instant)
    assert [(e.event, e.status) for e in rec.events if e.id == mine] == [("updated", "archived")]
    assert cli("restore", root, "--all", "--yes").code == 0
    rec.wait(lambda: (row(live, model) or {}).get("status") == "active")
    time.sleep(1.2)  # the ledger entry's removal is looked at after a second of quiet: nothing more to say
    seen = [(e.event, e.status) for e in rec.events if e.id == mine]  # the same id throughout, never removed
    assert seen[0] == ("updated", "archived") and seen[-1] == ("updated", "active"), seen
    assert {event for event, _ in seen} == {"updated"}, seen
    assert len(live.index) == 14
    live.stop()
    assert mlrepo.open_index(root).df.equals(live.index.df)


def test_restore_seen_before_its_folder_key_is_due_keeps_the_id(live_root, cli):
    """The ledger entry's removal is due before the restored folder's own key (here: folder keys wait 3 s, as a busy
    machine can make them): the model still changes status under its id, never removed and added again."""
    def age(root: Path) -> None:
        old = time.time() - 7200
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.utime(os.path.join(dirpath, name), (old, old), follow_symlinks=False)

    root, live, rec = live_root(before=age, debounce=3.0, max_delay=3.0)
    model = root / "tabular" / "rf_baseline" / "00001"
    mine = model_id("tabular/rf_baseline/00001")
    assert cli("archive", root, "tabular/rf_baseline/00001", "--yes").code == 0
    rec.wait(lambda: (row(live, model) or {}).get("status") == "archived")
    assert cli("restore", root, "--all", "--yes").code == 0
    rec.wait(lambda: (row(live, model) or {}).get("status") == "active")
    seen = [(e.event, e.status) for e in rec.events if e.id == mine]
    assert seen[-1] == ("updated", "active") and {event for event, _ in seen} == {"updated"}, seen
    live.flush()  # the folder's own key, due later, finds nothing more to say
    assert [(e.event, e.status) for e in rec.events if e.id == mine] == seen and len(live.index) == 14


def test_mlflow_db_write_updates_its_runs(live_root):
    """A store file (mlflow.db) is one key: a write to it re-reads the store, and only changed runs are reported."""
    import sqlite3

    root, live, rec = live_root(FIXTURES / "mlflow_sqlite")
    runs = live.index.df.filter(live.index.df["format"] == "mlflow")
    assert runs.height >= 2
    db = sqlite3.connect(root / "mlflow.db")
    run_uuid, old_name = db.execute("SELECT run_uuid, name FROM runs ORDER BY run_uuid LIMIT 1").fetchone()
    with db:
        db.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", ("renamed-run", run_uuid))
    db.close()
    rec.wait(lambda: rec.of("updated"))
    time.sleep(0.4)
    assert [(e.event, e.name) for e in rec.events] == [("updated", "renamed-run")]
    assert "renamed-run" in live.index.df["name"].to_list() and old_name not in live.index.df["name"].to_list()


def test_polling_a_large_tree_slows_down_with_its_size(tmp_path):
    """A watchdog snapshot costs ~27 us a folder: a tree too big for inotify is polled less often, never pegging
    a core (at 100k models, 200k folders: every 25 s rather than a 5 s snapshot every second)."""
    live = LiveIndex(str(tmp_path), poll_interval=1.0)
    live._n_dirs = 1_000
    assert live._poll_every() == 1.0
    live._n_dirs = 200_000
    assert live._poll_every() == 200_000 / POLL_FOLDERS_PER_SECOND == 25.0


def folder_inodes(root: Path) -> dict[str, int]:
    """Every real folder under ``root`` (and ``root``), by path: what inotify has to watch."""
    out = {str(root): root.stat().st_ino}
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                out[path] = os.lstat(path).st_ino
    return out


def test_the_watches_counted_are_the_folders_of_a_real_tree(live_root):
    """The kernel's own listing of this process's inotify watches names every folder of the tree, a folder made
    after the start too: what tells a silently skipped folder (watch limit reached) from a watched one."""
    root, live, rec = live_root()
    assert live.mode == "inotify"
    watched = inotify_watched_inodes()
    assert watched is not None
    missing = [path for path, ino in folder_inodes(root).items() if ino not in watched]
    assert missing == []
    new = root / "vision" / "new_line" / "deep"
    new.mkdir(parents=True)
    rec.wait(lambda: new.stat().st_ino in (inotify_watched_inodes() or set()))
    live.stop()
    assert new.stat().st_ino not in (inotify_watched_inodes() or set())  # the watches go with the observer


# A child process in a user namespace of its own, whose inotify watch limit it lowers (no root needed): the limit of
# the namespace is checked on every inotify_add_watch, while /proc/sys/fs/inotify/max_user_watches still shows the
# machine's, so the live index starts on inotify and has to notice the folders that watchdog skipped.
LOW_LIMIT_CHILD = """
import json, os, shutil, sys, threading, time
root, extra, later = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import mlrepo
from mlrepo.repo_index.live import LiveIndex, watchers
mlrepo.open_index(root)  # the cache folder exists before the folders are counted
os.mkdir(os.path.join(root, ".mlrepo"))  # where a sync writes its cookie
folders = 1 + sum(len(dirs) for _, dirs, _ in os.walk(root))
with open("/proc/sys/user/max_inotify_watches", "w") as fh:
    fh.write(str(folders + extra))
watchers.WATCH_CHECK_SECONDS = 0.2
said, added = [], threading.Event()
live = LiveIndex(root, on_warning=said.append, on_change=lambda b: any(e.event == "added" for e in b.events)
                 and added.set(), poll_interval=0.2, save_interval=0.2)
live.start()
mode = live.mode
synced = []
if later == "copy":  # more folders than the limit leaves room for, made while inotify runs
    synced.append(live.sync() is not None)
    shutil.copytree(os.path.join(root, "tabular"), os.path.join(root, "tabular_copy"))
    synced.append(live.sync() is not None)  # no promise of freshness with folders unwatched
    deadline = time.monotonic() + 20
    while live.mode != "polling" and time.monotonic() < deadline:
        time.sleep(0.05)
else:  # a model saved while polling
    os.makedirs(os.path.join(root, "tabular", "rf_baseline", "00009"))
    shutil.copy(os.path.join(root, "tabular", "rf_baseline", "00001", "meta.json"),
                os.path.join(root, "tabular", "rf_baseline", "00009", "meta.json"))
seen = added.wait(20)
live.stop()
print(json.dumps({"start": mode, "end": live.mode, "said": said, "added": seen, "synced": synced}))
"""


def in_low_watch_limit(root: Path, extra: int, later: str) -> dict:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c",
                            "echo 100 > /proc/sys/user/max_inotify_watches"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespace with its own inotify limit here: {probe.stderr.decode().strip()}")
    run = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", LOW_LIMIT_CHILD,
                          str(root), str(extra), later], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_a_real_watch_limit_below_the_tree_falls_back_to_polling(copy_fixture):
    """The kernel refuses watches past the limit and watchdog skips those folders without a word: the live index
    counts the watches it got, warns, polls instead, and still sees a new model."""
    root = copy_fixture(CASCADE_018)
    out = in_low_watch_limit(root, -25, "save")
    assert out["start"] == out["end"] == "polling"
    (warning,) = out["said"]
    # watchdog 7 skips the folders past the limit (counted), watchdog 6 refuses the whole tree (ENOSPC)
    assert ("inotify could not watch" in warning or "cannot watch" in warning) and "max_user_watches" in warning
    assert "polling every" in warning
    assert out["added"]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_new_folders_past_a_real_watch_limit_switch_to_polling(copy_fixture):
    """Room for every folder at the start, not for a copied repo: the count made while inotify runs sees the
    folders left unwatched, warns, and switches to polling, which finds the copied models."""
    root = copy_fixture(CASCADE_018)
    out = in_low_watch_limit(root, 2, "copy")
    assert (out["start"], out["end"]) == ("inotify", "polling")
    (warning,) = out["said"]
    assert "inotify stopped following new folders" in warning and "polling every" in warning
    assert out["added"]
    assert out["synced"] == [True, False]  # a sync answered before the copy, and refused to after it

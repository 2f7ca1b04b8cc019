"""Fault injection with real processes and real SIGKILL: no mocks.

``python -m mlrepo prune/archive/restore ... --yes`` runs in a subprocess with ``MLREPO_FAULT_AT=k``: at its k-th
fault point (the boundaries between journaled steps, plus points in the middle of writing an archive, of
extracting one and of deleting a tombstone) it writes a marker and waits; the test then kills it with SIGKILL.
Every k from 1 to the number of points the operation passes is tried. Then the next command runs (``restore
--all --yes``, stopped right after its recovery; when that recovery itself passes a fault point it is first
killed there too, a second crash), and the test checks that every model is whole in exactly one place: its folder,
its archive, or its trash entry, each compared file by file (content, mode, mtime) with the original, and that
nothing is left over (journal, temp archives, tombstones, staging folders, orphan trash entries).

The default run covers ~60 kill points over prune (trash, delete), archive and restore (from archives and from the
trash); ``-m slow`` adds prune --archive, more models, and kills at random times.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from treeutil import CASCADE_018, age, archive_snapshot, snapshot, trash_env

TWO = ["tabular/rf_baseline/00000", "tabular/rf_baseline/00003"]  # what the prune rules below remove
ALL_RF = [f"tabular/rf_baseline/0000{i}" for i in range(4)]
PRUNE = ["--keep-top", "2", "--metric", "metrics.accuracy", "--where", "line = 'rf_baseline'"]


class World:
    """A root and a user (home, XDG trash) under one folder, rebuilt from a template at the same absolute path
    for every kill (the journal and the ledger hold absolute paths)."""

    def __init__(self, base: Path, models: list[str]) -> None:
        self.base = base
        self.dir = base / "world"
        self.template = base / "template"
        self.root = self.dir / "repo"
        self.models = models
        self.env = trash_env(self.dir / "user")
        shutil.copytree(CASCADE_018, self.root, symlinks=True)
        age(self.root)
        self.originals = {m: snapshot(self.root / m) for m in models}
        self.second_kills = 0  # kills inside a recovery (a crash while recovering from a crash)

    def run(self, *args: str, fault: str | None = None, log: Path | None = None, delay: float | None = None,
            kill_after: float | None = None) -> tuple[int | None, str | None]:
        """Run mlrepo; with ``fault``, kill it (SIGKILL) when it reaches that point. Returns (exit code or None if
        killed, the fault point it was killed at)."""
        env = dict(self.env)
        marker = self.base / "marker"
        marker.unlink(missing_ok=True)
        if fault is not None:
            env["MLREPO_FAULT_AT"] = fault
            env["MLREPO_FAULT_FILE"] = str(marker)
        if log is not None:
            env["MLREPO_FAULT_LOG"] = str(log)
        if delay is not None:
            env["MLREPO_FAULT_DELAY"] = str(delay)
        proc = subprocess.Popen([sys.executable, "-m", "mlrepo", *args], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start = time.monotonic()
        while proc.poll() is None:
            if fault is not None and marker.exists() and marker.read_text().endswith("\n"):
                break
            if kill_after is not None and time.monotonic() - start > kill_after:
                break
            if time.monotonic() - start > 60:
                proc.kill()
                raise AssertionError(f"mlrepo {args} hung")
            time.sleep(0.003)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
            return None, marker.read_text().split(maxsplit=1)[1].strip() if marker.exists() else "timer"
        errors = proc.stderr.read().decode()
        proc.stderr.close()
        assert proc.returncode in (0, 1), errors
        return proc.returncode, None

    def save_template(self) -> None:
        shutil.copytree(self.dir, self.template, symlinks=True)

    def reset(self) -> None:
        shutil.rmtree(self.dir)
        shutil.copytree(self.template, self.dir, symlinks=True)

    # -- the check -------------------------------------------------------------------------------------------
    def places(self, deleted_ok: bool = False) -> dict[str, list[str]]:
        """Where each model is, whole; raises on a damaged copy or anything left over."""
        state = self.root / ".mlrepo"
        found: dict[str, list[str]] = {m: [] for m in self.models}
        for model in self.models:
            if os.path.lexists(self.root / model):
                assert snapshot(self.root / model) == self.originals[model], f"{model}: folder damaged"
                found[model].append("folder")
        referenced = set()
        for entry_file in sorted((state / "ledger").glob("*.json")) if (state / "ledger").exists() else []:
            entry = json.loads(entry_file.read_text())
            model = os.path.relpath(entry["path"], self.root)
            if entry["kind"] == "archive":
                referenced.add(entry["archive"])
                assert archive_snapshot(entry["archive"]) == self.originals[model], f"{model}: archive damaged"
                found[model].append("archive")
            else:
                referenced.add(entry["trash_files"])
                assert snapshot(entry["trash_files"]) == self.originals[model], f"{model}: trash entry damaged"
                assert Path(entry["trash_info"]).is_file(), f"{model}: .trashinfo missing"
                found[model].append("trash")
        archive_dir = state / "archive"
        for leftover in archive_dir.iterdir() if archive_dir.exists() else []:
            assert str(leftover) in referenced, f"left over in the archive folder: {leftover.name}"
        trash = Path(self.env["XDG_DATA_HOME"]) / "Trash"
        for item in (trash / "files").iterdir() if (trash / "files").exists() else []:
            assert str(item) in referenced, f"left over in the trash: {item.name}"
        for info in (trash / "info").iterdir() if (trash / "info").exists() else []:
            assert str(trash / "files" / info.name.removesuffix(".trashinfo")) in referenced, \
                f"orphan .trashinfo {info.name}"
        for scratch in ("tomb", "staging"):
            folder = state / scratch
            assert not folder.exists() or not list(folder.iterdir()), f"left over in .mlrepo/{scratch}"
        journal = state / "journal"
        assert not journal.exists() or not list(journal.iterdir()), "journal not cleared"
        for model, where in found.items():
            if deleted_ok and not where:
                continue
            assert len(where) == 1, f"{model} is in {len(where) or 'no'} places: {where}"
        return found

    def recover_and_check(self, deleted_ok: bool = False) -> dict[str, list[str]]:
        """The next command (restore --all --yes), stopped right after its recovery; a first attempt is killed
        inside the recovery when the recovery passes a fault point."""
        code, point = self.run("restore", self.root, "--all", "--yes", fault="1")
        if point not in (None, "recovered"):  # killed during recovery: a second crash, then recover again
            self.second_kills += 1
            code, point = self.run("restore", self.root, "--all", "--yes", fault="recovered")
        assert point == "recovered" or code is not None
        return self.places(deleted_ok)


def _count_points(world: World, args: list[str]) -> list[str]:
    log = world.base / "points.log"
    log.unlink(missing_ok=True)
    code, _ = world.run(*args, log=log)
    assert code == 0
    return [line.split(maxsplit=1)[1] for line in log.read_text().splitlines()]


def _kill_everywhere(tmp_path: Path, models: list[str], setup: list[list[str]], command: list[str],
                     deleted_ok: bool = False) -> tuple[int, list[str], int]:
    world = World(tmp_path, models)
    for args in setup:
        assert world.run(*[a.replace("{root}", str(world.root)) for a in args])[0] == 0
    before = world.places()
    world.save_template()
    args = [a.replace("{root}", str(world.root)) for a in command]
    names = _count_points(world, args)
    after = world.places(deleted_ok)
    assert after != before or not models
    killed = 0
    for k in range(1, len(names) + 1):
        world.reset()
        code, point = world.run(*args, fault=str(k))
        assert code is None and point == names[k - 1], (k, point, names[k - 1])
        killed += 1
        world.recover_and_check(deleted_ok)
    return killed, names, world.second_kills


SCENARIOS = {
    # name: (models, setup commands, the command killed at every point, whether its models may end deleted)
    "archive": (TWO, [], ["archive", "{root}", *TWO, "--yes"], False),
    "prune-trash": (TWO, [], ["prune", "{root}", *PRUNE, "--yes"], False),
    "prune-delete": (TWO, [], ["prune", "{root}", *PRUNE, "--delete", "--yes"], True),
    "restore-archive": (TWO, [["archive", "{root}", *TWO, "--yes"]], ["restore", "{root}", "--all", "--yes"], False),
    "restore-trash": (TWO, [["prune", "{root}", *PRUNE, "--yes"]], ["restore", "{root}", "--all", "--yes"], False),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_at_every_point(scenario, tmp_path):
    models, setup, command, deleted_ok = SCENARIOS[scenario]
    killed, names, second = _kill_everywhere(tmp_path, models, setup, command, deleted_ok)
    assert killed == len(names) >= 7
    # the points named in the journal's design were all passed through
    expected = {"archive": {"archive:partial", "archive:renamed", "archive:journal-archived", "archive:tomb-partial"},
                "prune-trash": {"trash:journaled", "trash:info-written", "trash:moved", "trash:ledger"},
                "prune-delete": {"delete:tombstoned", "delete:tomb-partial"},
                "restore-archive": {"restore:partial", "restore:extracted", "restore:placed",
                                    "restore:ledger-removed"},
                "restore-trash": {"untrash:moved", "untrash:info-removed"}}[scenario]
    assert expected <= set(names)
    print(f"{scenario}: {killed} kill points (+{second} kills inside the recovery that followed), 0 models lost")


def test_recovery_keeps_the_folder_when_the_archive_was_damaged_meanwhile(tmp_path):
    """Killed once the folder is a tombstone; the archive then loses a byte (a bad disk): recovery must not trust
    it, and puts the folder back instead."""
    world = World(tmp_path, TWO[:1])
    code, point = world.run("archive", world.root, TWO[0], "--yes", fault="archive:tombstoned")
    assert code is None and point == "archive:tombstoned"
    assert not (world.root / TWO[0]).exists()
    (archive,) = (world.root / ".mlrepo" / "archive").glob("*.tar.zst")
    data = bytearray(archive.read_bytes())
    data[-20] ^= 0x01
    archive.write_bytes(bytes(data))
    assert world.recover_and_check() == {TWO[0]: ["folder"]}
    assert not archive.exists()


def test_recovery_keeps_a_folder_written_to_after_it_was_archived(tmp_path):
    """Killed after the archive was verified, before the folder was moved; then someone writes into the folder:
    the archive no longer holds the model as it is, so recovery discards the archive, not the folder."""
    world = World(tmp_path, TWO[:1])
    code, point = world.run("archive", world.root, TWO[0], "--yes", fault="archive:journal-archived")
    assert code is None
    (world.root / TWO[0] / "notes.txt").write_text("written after the archive")
    world.originals[TWO[0]] = snapshot(world.root / TWO[0])
    assert world.recover_and_check() == {TWO[0]: ["folder"]}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["archive-all", "prune-archive", "restore-all"])
def test_kill_at_every_point_exhaustive(scenario, tmp_path):
    if scenario == "archive-all":
        killed, _, _ = _kill_everywhere(tmp_path, ALL_RF, [], ["archive", "{root}", "--where",
                                                              "line = 'rf_baseline'", "--yes"])
    elif scenario == "prune-archive":
        killed, _, _ = _kill_everywhere(tmp_path, TWO, [], ["prune", "{root}", *PRUNE, "--archive", "--yes"])
    else:
        killed, _, _ = _kill_everywhere(tmp_path, ALL_RF, [["archive", "{root}", "--where", "line = 'rf_baseline'",
                                                            "--yes"]], ["restore", "{root}", "--all", "--yes"])
    assert killed > 20


@pytest.mark.slow
def test_kill_at_random_times(tmp_path):
    """Kills at random moments (the fault points only sleep a little, to widen the windows) across many runs of
    every operation, each followed by the next command and the check."""
    rng = random.Random(4)
    world = World(tmp_path, ALL_RF)
    world.save_template()
    ops = [["archive", str(world.root), "--where", "line = 'rf_baseline'", "--yes"],
           ["prune", str(world.root), *PRUNE, "--yes"],
           ["prune", str(world.root), *PRUNE, "--archive", "--yes"]]
    killed = finished = 0
    for _ in range(60):
        world.reset()
        op = rng.choice(ops)
        for args, window in ((op, (0.25, 0.9)), (["restore", str(world.root), "--all", "--yes"], (0.25, 0.8))):
            code, _ = world.run(*args, delay=0.02, kill_after=rng.uniform(*window))
            killed += code is None
            finished += code is not None
            world.recover_and_check()
    print(f"random kills: {killed} killed mid-run, {finished} finished first; 0 models lost")
    assert killed >= 60


OLD_JOURNALS = Path(__file__).parent / "fixtures" / "journals-0.1"


@pytest.mark.parametrize("scenario", ["archive", "trash", "delete"])
def test_journals_of_0_1_recover(scenario, tmp_path):
    """A run of mlrepo 0.1 (before the journal's records were typed) killed mid-step: this version reads the records
    it left (the same JSON) and finishes the step. The crashed worlds were made by that version
    (``fixtures/journals-0.1/make_journals.py``); their absolute paths are put back here."""
    world = World(tmp_path, TWO)
    for model in TWO:
        shutil.rmtree(world.root / model)
    shutil.rmtree(world.dir / "user")
    with tarfile.open(OLD_JOURNALS / f"{scenario}.tar.gz") as tar:
        tar.extractall(world.dir, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    for path in [*(world.root / ".mlrepo").rglob("*.json"), *(world.dir / "user").rglob("*.trashinfo")]:
        text = path.read_text()
        place = quote(str(world.dir)) if path.suffix == ".trashinfo" else str(world.dir)
        path.write_text(text.replace("@WORLD@", place))
    (record,) = (world.root / ".mlrepo" / "journal").glob("*.json")
    assert json.loads(record.read_text())["op"] == scenario
    found = world.recover_and_check(deleted_ok=scenario == "delete")
    expected = {"archive": [["archive"], ["folder"]], "trash": [["trash"], ["folder"]], "delete": [[], ["folder"]]}
    assert [found[m] for m in TWO] == expected[scenario]

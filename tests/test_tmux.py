"""The installed `mlrepo tui` in a real terminal (tmux): every wait is for something on the screen, never for time.

The default suite runs each keyboard-trust scenario 3 times; ``-m slow`` runs it 20 times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from treeutil import CASCADE_018

pytestmark = [pytest.mark.tmux, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]
MLREPO = Path(sys.executable).parent / "mlrepo"
RUNS = [pytest.param(3, id="3x"), pytest.param(20, id="20x", marks=pytest.mark.slow)]
SCREENS = ("Parameter history", "Disk usage", "Compare ", "Metric curves", "Keep the top", "Keys  ·",
           "Columns (space", "Trash ", "Archive ")  # titles of every screen and dialog the table keys open


def _tmux(*args: str) -> subprocess.CompletedProcess[str]:
    """tmux on a server of this test process's own, apart from the user's sessions and the other workers'."""
    return subprocess.run(["tmux", "-L", f"mlrepo-tests-{os.getpid()}", "-f", "/dev/null", *args],
                          capture_output=True, text=True, check=False)


def _new_session(session: str, size: tuple[int, int], command: str) -> None:
    """A detached session running ``command``. tmux's server exits with its last session; one asked for a new
    session while it was exiting makes none, so the session is checked and asked for again until it exists."""
    for _ in range(100):
        _tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), command)
        if _tmux("has-session", "-t", session).returncode == 0:
            return
    raise AssertionError(f"tmux made no session {session}: {_tmux('list-sessions').stderr}")


def _screen(session: str) -> list[str]:
    return _tmux("capture-pane", "-p", "-t", session).stdout.rstrip("\n").split("\n")


def _wait(session: str, what: str, ok: Callable[[list[str]], bool], timeout: float = 60) -> list[str]:
    """Poll the pane until ``ok`` holds; the timeout only bounds a failure (a busy machine is slow, not wrong)."""
    deadline = time.monotonic() + timeout
    lines = _screen(session)
    while not ok(lines):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never appeared; screen:\n" + "\n".join(lines))
        time.sleep(0.05)
        lines = _screen(session)
    return lines


def _count(lines: list[str]) -> int | None:
    """N of the status line's "N models" (or the total of "K of N models")."""
    for line in lines:
        words = line.split()
        if "models" in words:
            before = words[: words.index("models")]
            if before and before[-1].isdigit():
                return int(before[-1])
    return None


@contextmanager
def _tui(root: Path, tmp: Path, size: tuple[int, int] = (160, 40)) -> Iterator[tuple[str, Path, Path]]:
    """``mlrepo tui ROOT`` in a fresh tmux session; yields the session, its stdout file and its exit-code file.
    Textual draws on stderr, so that stays the terminal: after the app exits the pane is kept, and whatever it
    printed there (a traceback) is read back from the screen."""
    session = f"mlrepo-{uuid.uuid4().hex[:8]}"
    out, rc = tmp / f"{session}.out", tmp / f"{session}.rc"
    command = (f"env -u COLUMNS -u LINES TERM=xterm-256color {MLREPO} tui {root} > {out}; "
               f"echo $? > {rc}.tmp && mv {rc}.tmp {rc}; exec sleep 600")
    _new_session(session, size, command)
    try:
        # ready: the table checked against the disk (the status line no longer says so)
        _wait(session, "the checked table", lambda lines: _count(lines) and not any(
            "checking the disk" in line or line.strip().startswith("indexing") for line in lines))
        yield session, out, rc
        if rc.exists():
            after = _tmux("capture-pane", "-p", "-S", "-", "-t", session).stdout
            assert "Traceback" not in after and "Error" not in after, after
    finally:
        _tmux("kill-session", "-t", session)


def _assert_exited_0(rc: Path, session: str, timeout: float = 60) -> None:
    """``mlrepo tui`` exited, with 0; a failure shows the pane (what mlrepo said on stderr)."""
    deadline = time.monotonic() + timeout
    while not rc.exists():
        if time.monotonic() > deadline:
            raise AssertionError("mlrepo tui did not exit:\n" + _tmux("capture-pane", "-p", "-t", session).stdout)
        time.sleep(0.05)
    assert int(rc.read_text()) == 0, _tmux("capture-pane", "-p", "-S", "-", "-t", session).stdout


class Writer(threading.Thread):
    """Saves a new model into the root every ``every`` seconds, as a training job would."""

    def __init__(self, root: Path, every: float = 0.15) -> None:
        super().__init__(daemon=True)
        self.source = root / "tabular" / "sgd_sweep" / "00003"
        self.every, self.stopped, self.saved = every, threading.Event(), 0

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            target = self.source.parent / f"{10_000 + self.saved:05d}"
            shutil.copytree(self.source, target.with_name(target.name + ".tmp"))
            target.with_name(target.name + ".tmp").rename(target)
            self.saved += 1


def test_tui_in_tmux_filters_sorts_and_prints_the_pick(copy_fixture, tmp_path):
    root = copy_fixture(CASCADE_018)
    with _tui(root, tmp_path) as (session, out, rc):
        lines = _screen(session)
        # stdout is a file here: the app must still size itself to the terminal (160 columns, 40 rows)
        assert len(lines) == 40 and "14 models" in lines[-2] and "palette" in lines[-1][100:]
        _tmux("send-keys", "-t", session, "/")
        _tmux("send-keys", "-t", session, "-l", "params.optimizer.name = 'sgd'")
        _tmux("send-keys", "-t", session, "Enter")
        _wait(session, "10 of 14", lambda lines: "10 of 14 models" in lines[-2])
        _tmux("send-keys", "-t", session, "Right", "Right", "s")
        lines = _wait(session, "the sort", lambda lines: "sorted by name ▲ asc" in lines[-2])
        assert "▲" in lines[1]
        _tmux("send-keys", "-t", session, "p")
        _assert_exited_0(rc, session)
    picked = out.read_text().strip()
    assert picked.startswith(str(root)) and Path(picked).is_dir()


@pytest.mark.parametrize("runs", RUNS)
def test_typed_filter_keeps_every_key_while_models_are_saved(copy_fixture, tmp_path, runs):
    """A writer saves a model every 150 ms while a filter is typed one key at a time: every key lands in the
    filter box (its letters a, d, m, h, c, s are also table keys), and no screen or dialog opens."""
    text = "params.optimizer.name = 'adam' and metrics.score_d >= 0 or tags contains 'x'"
    for run in range(runs):
        root = copy_fixture(CASCADE_018, f"root-{run}")
        with _tui(root, tmp_path, size=(160, 30)) as (session, _out, _rc):
            before = _count(_screen(session))
            writer = Writer(root)
            writer.start()
            try:
                _tmux("send-keys", "-t", session, "/")
                for i, char in enumerate(text):
                    _tmux("send-keys", "-t", session, "-l", char)
                    typed = text[: i + 1]
                    lines = _wait(session, f"{typed!r} in the filter box",
                                  lambda lines, typed=typed: lines[0].strip() == typed.strip())
                    assert not any(title in line for line in lines[:-1] for title in SCREENS), "\n".join(lines)
                    assert not any("marked" in line for line in lines[-2:])
                # the table followed the writer meanwhile: the keys kept going to the box all the same
                lines = _wait(session, "models saved meanwhile", lambda lines: (_count(lines) or 0) > before)
            finally:
                writer.stopped.set()
                writer.join()
            assert writer.saved > 5
            _tmux("send-keys", "-t", session, "Enter")
            _wait(session, "the filter applied", lambda lines: " of " in lines[-2])


@pytest.mark.parametrize("runs", RUNS)
def test_q_then_mashed_keys_exits_0_without_a_traceback(copy_fixture, tmp_path, runs):
    root = copy_fixture(CASCADE_018)
    for _ in range(runs):
        with _tui(root, tmp_path) as (session, _out, rc):
            _tmux("send-keys", "-t", session, "q", "s", "h", "d", "m", "a", "x", "c", "g", "k", "?", "/", "s", "h",
                  "Right", "s", "m", "d", "Escape", "h")
            _assert_exited_0(rc, session)

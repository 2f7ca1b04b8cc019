"""The installed `mlrepo tui` in a real terminal (tmux): wait for the table, filter, sort, pick a model."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from treeutil import CASCADE_018

pytestmark = [pytest.mark.tmux, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")]
MLREPO = Path(sys.executable).parent / "mlrepo"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def _wait_for(session: str, text: str, timeout: float = 40) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


def test_tui_in_tmux_filters_sorts_and_prints_the_pick(copy_fixture, tmp_path):
    root = copy_fixture(CASCADE_018)
    out = tmp_path / "picked.txt"
    session = f"mlrepo-{uuid.uuid4().hex[:8]}"
    command = f"env -u COLUMNS -u LINES TERM=xterm-256color {MLREPO} tui {root} > {out}"  # no stale sizes
    _tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40", command)
    try:
        screen = _wait_for(session, "14 models")
        # stdout is a file here: the app must still size itself to the terminal (160 columns, 40 rows)
        lines = screen.rstrip("\n").split("\n")
        assert len(lines) == 40 and "14 models" in lines[-2] and "palette" in lines[-1][100:]
        time.sleep(1.0)  # let the table settle and take focus (this machine may be loaded)
        _tmux("send-keys", "-t", session, "/")
        time.sleep(0.3)
        _tmux("send-keys", "-t", session, "-l", "params.optimizer.name = 'sgd'")
        _tmux("send-keys", "-t", session, "Enter")
        _wait_for(session, "10 of 14 models")
        time.sleep(0.5)
        _tmux("send-keys", "-t", session, "Right", "Right", "s")
        screen = _wait_for(session, "sorted by name")
        assert "name▲" in screen
        _tmux("send-keys", "-t", session, "p")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and session in _tmux("list-sessions"):
            time.sleep(0.2)
        picked = out.read_text().strip()
        assert picked.startswith(str(root)) and Path(picked).is_dir()
    finally:
        _tmux("kill-session", "-t", session)

"""A running `mlrepo watch` answers `ls` and `best` of other mlrepo processes (``watch_socket``): the answer is
byte for byte what the command prints reading the disk itself, it holds every change made before the question (a
watch whose debounce would hold changes back for a minute still answers them: the sync does), and a watch that
cannot promise that, or a socket that is not safely this user's, is never used."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest
from mlrepo.commands.cli.watch_socket import socket_path
from treeutil import CASCADE_018, mlrepo

META = CASCADE_018 / "tabular" / "rf_baseline" / "00001" / "meta.json"
CASES = [
    ("ls",), ("ls", "--format", "csv"), ("ls", "--format", "json"), ("ls", "--format", "jsonl", "--columns", "all"),
    ("ls", "--format", "md"), ("ls", "--where", "metrics.accuracy > 0.7", "--sort", "metrics.accuracy", "--limit", "3"),
    ("ls", "--columns", "id,path,metrics.accuracy", "--format", "csv", "--sort", "name", "--desc"),
    ("best", "--metric", "metrics.accuracy"), ("best", "--metric", "metrics.accuracy", "--per", "line"),
    ("best", "--metric", "metrics.accuracy", "--format", "json"),
]


class Watch:
    """``mlrepo watch ROOT`` as a user runs it, ready once it said so on stderr."""

    def __init__(self, root: Path, env: dict[str, str], *args: str) -> None:
        self.root, self.env = root, env
        self.proc = subprocess.Popen([sys.executable, "-m", "mlrepo", "watch", str(root), *args], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ready = self.proc.stderr.readline()
        assert self.ready.startswith("watching "), self.ready + self.proc.stderr.read()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            assert self.proc.wait(timeout=20) == 0
        return self.proc.stderr.read()


@pytest.fixture
def run_env(monkeypatch) -> dict[str, str]:
    """The user's private runtime folder (where the socket goes): a short path, as a socket's must be."""
    runtime = tempfile.mkdtemp(prefix="run-", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    yield {**os.environ, "XDG_RUNTIME_DIR": runtime}
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def watched(copy_fixture, run_env):
    started: list[Watch] = []

    def start(root: Path | None = None, *args: str) -> Watch:
        watch = Watch(root or copy_fixture(CASCADE_018, "repo"), run_env, *args)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        if watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait()


def both(watch: Watch, *args: str) -> tuple:
    """The command answered by the watch (it must be) and read from the disk: (code, stdout, stderr) each."""
    asked = mlrepo(*args, watch.root, env={**watch.env, "MLREPO_WATCH": "require"})
    read = mlrepo(*args, watch.root, env={**watch.env, "MLREPO_WATCH": "off"})
    return (asked.code, asked.out, asked.err), (read.code, read.out, read.err)


def test_answers_are_what_the_disk_gives(watched):
    watch = watched()
    assert "answering ls and best" in watch.ready
    for case in CASES:
        asked, read = both(watch, *case)
        assert asked == read and asked[0] == 0 and asked[1], case


def save(folder: Path, accuracy: float) -> None:
    meta = json.loads(META.read_text())
    meta[0]["metrics"][0]["value"] = accuracy
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".meta.json.tmp").write_text(json.dumps(meta))
    os.replace(folder / ".meta.json.tmp", folder / "meta.json")


def test_every_change_made_before_the_question_is_in_the_answer(watched):
    """Debounce 60 s: without the sync none of these changes would be read yet when the question comes."""
    watch = watched(None, "--debounce", "60")
    root = watch.root
    model = root / "tabular" / "rf_baseline" / "00001"
    changes = [
        lambda: save(model, 0.987),  # a metric changes
        lambda: save(root / "tabular" / "rf_baseline" / "00042", 0.5),  # a model is saved
        lambda: save(root / "vision" / "new_line" / "deep" / "00000", 0.25),  # in folders made just now
        lambda: shutil.rmtree(root / "tabular" / "rf_baseline" / "00042"),  # a model goes
        lambda: (model / "meta.json").write_text('[{"name": "rf", "metr'),  # caught half-written: an error
        lambda: save(model, 0.123),  # and whole again
        lambda: os.rename(root / "vision", root / "vision_renamed"),  # a line moves
    ]
    for n, change in enumerate(changes):
        change()
        asked, read = both(watch, "ls", "--format", "jsonl", "--columns", "all")
        assert asked == read and asked[0] == 0, n
        rows = {r["path"]: r for r in map(json.loads, asked[1].splitlines())}
        if n == 0:
            assert rows[str(model)]["metrics.accuracy"] == 0.987
        if n == 4:
            assert rows[str(model)]["error"]
        if n == 6:
            assert not any("/vision/" in p for p in rows) and any("/vision_renamed/" in p for p in rows)


def test_a_watch_that_cannot_promise_freshness_is_not_asked(watched):
    watch = watched(None, "--polling")
    assert "not answering other commands: it does not use inotify" in watch.ready
    asked = mlrepo("ls", watch.root, "--format", "csv", env={**watch.env, "MLREPO_WATCH": "require"})
    assert asked.code == 1 and "no `mlrepo watch` answered" in asked.err and asked.out == ""
    assert "Traceback" not in asked.err
    auto = mlrepo("ls", watch.root, "--format", "csv", env=watch.env)
    assert auto.code == 0 and auto.out == mlrepo("ls", watch.root, "--format", "csv",
                                                 env={**watch.env, "MLREPO_WATCH": "off"}).out


def test_a_terminal_is_not_answered(watched):
    """A terminal's width and colours stay the command's own: only scripts' output is answered."""
    watch = watched()
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "mlrepo", "ls", str(watch.root)], stdout=follower,
                              stderr=subprocess.PIPE, text=True, timeout=60,
                              env={**watch.env, "MLREPO_WATCH": "require"})
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 1 and "stdout is a terminal" in proc.stderr


def test_a_killed_watch_and_a_second_watch(watched):
    first = watched()
    second = watched(first.root)
    assert "not answering other commands: another `mlrepo watch` of this root answers" in second.ready
    second.stop()
    first.proc.kill()  # its socket stays behind
    first.proc.wait()
    path = socket_path(str(first.root))
    assert path and os.path.exists(path)
    asked = mlrepo("ls", first.root, env={**first.env, "MLREPO_WATCH": "require"})
    assert asked.code == 1 and "no watch runs for this root" in asked.err
    assert mlrepo("ls", first.root, "--format", "csv", env=first.env).code == 0  # auto: the disk
    third = watched(first.root)
    assert "answering ls and best" in third.ready  # the dead socket was replaced
    asked, read = both(third, "ls", "--format", "csv")
    assert asked == read and asked[0] == 0


@pytest.mark.parametrize("planted", ["open to others", "a symlink"])
def test_a_socket_folder_that_is_not_private_is_never_used(watched, run_env, tmp_path, planted):
    folder = Path(run_env["XDG_RUNTIME_DIR"]) / "mlrepo"
    if planted == "open to others":
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    else:
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    watch = watched()
    assert "not answering other commands: no private folder for its socket" in watch.ready
    assert list((tmp_path / "elsewhere").iterdir()) == [] if planted == "a symlink" else True
    asked = mlrepo("ls", watch.root, env={**watch.env, "MLREPO_WATCH": "require"})
    assert asked.code == 1 and "no private socket folder" in asked.err


def test_a_symlinked_state_folder_gets_no_cookie(watched, copy_fixture, tmp_path):
    root = copy_fixture(CASCADE_018, "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / ".mlrepo").symlink_to(outside)
    watch = watched(root)
    assert "not answering other commands" in watch.ready and "symlink" in watch.ready
    assert list(outside.iterdir()) == []


def test_odd_questions_get_a_refusal_and_the_watch_goes_on(watched):
    watch = watched()
    path = socket_path(str(watch.root))
    assert path is not None
    st = os.stat(watch.root)
    good = {"root": str(watch.root), "root_id": [st.st_dev, st.st_ino], "command": "ls",
            "params": {"where_expr": None, "sort_col": None, "asc": None, "limit": 1, "columns": [], "fmt": "csv"}}
    for request, why in [(b"\xff not json", "the command failed"),
                         (orjson.dumps({**good, "mlrepo": "0.0.1 /elsewhere"}), "another mlrepo"),
                         (orjson.dumps({**good, "mlrepo": None, "root": "/"}), "another mlrepo")]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(20)
            conn.connect(path)
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
            reply = orjson.loads(conn.makefile("rb").readline())
        assert reply["ok"] is False and why in reply["why"]
    asked, read = both(watch, "ls", "--format", "csv")
    assert asked == read and asked[0] == 0


def test_an_mlflow_file_store_is_watched_but_not_answered(watched, tmp_path):
    from mlflow_stores import active_runs, make_two_stores

    stores = make_two_stores(tmp_path / "proj")
    store = tmp_path / "proj" / "mlruns"
    watch = watched(store)
    assert "not answering other commands: an MLflow file store keeps mlrepo's state outside it" in watch.ready
    assert not (store / ".mlrepo").exists()
    assert len(active_runs(stores.uris["file"])) > 0  # MLflow still reads its store
    watch.stop()
    project = watched(tmp_path / "proj")  # the folder holding both stores answers, the SQLite runs included
    asked, read = both(project, "ls", "--format", "csv", "--columns", "id,path,format,status")
    assert asked == read and asked[0] == 0 and "mlflow" in asked[1]

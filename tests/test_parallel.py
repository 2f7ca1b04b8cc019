"""A cold scan shared with worker processes gives exactly the serial scan's index, whoever reads what, and a
worker that fails costs only time."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest
from mlrepo.repo_index import parallel
from mlrepo.repo_index.rows import merge_rows, scanned_rows
from mlrepo.repo_index.scanner import Scanner
from mlrepo.repo_index.table import frame_of
from polars.testing import assert_frame_equal

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = [FIXTURES / "cascade" / "cascade-0.18", FIXTURES / "cascade" / "cascade-0.12",
           FIXTURES / "mlflow_file", FIXTURES / "mlflow_sqlite", FIXTURES / "lightning", FIXTURES / "hf_trainer"]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Every format, a store file, a broken model and an unlistable folder in one root."""
    root = tmp_path / "root"
    for src in SOURCES:
        shutil.copytree(src, root / src.name, symlinks=True)
    broken = root / "cascade-0.12" / "tree" / "00099"
    broken.mkdir()
    (broken / "meta.json").write_bytes(b'[{"type": "model", "metrics": {"f1": 0.')  # cut mid-write
    return root


def frame(rows) -> pl.DataFrame:
    df = frame_of(merge_rows(rows))
    return df.select(sorted(df.columns)).sort("_rel")


def serial(root: Path):
    result = Scanner(str(root)).scan()
    return result, frame([scanned_rows(result)])


def test_shared_scan_equals_serial(mixed: Path):
    expected_result, expected = serial(mixed)
    result, rows = parallel.scan(Scanner(str(mixed)), workers=1, serial_work=0)
    assert_frame_equal(frame(rows), expected)
    assert result.skeleton == expected_result.skeleton
    assert result.stores == expected_result.stores
    assert expected.height == 48 and expected["error"].drop_nulls().len() == 3  # the cut file, two NaN metrics


def test_worker_process_reads_its_tasks(mixed: Path, monkeypatch: pytest.MonkeyPatch):
    """The worker as it runs in a scan (``python -m``), alone on the counter: its rows are the serial scan's."""
    monkeypatch.setattr(parallel, "CHUNK", 4)  # many small tasks from a small root
    _result, expected = serial(mixed)
    scanner = Scanner(str(mixed))
    result = scanner.start()
    stack = [("", None, True)]
    scanner.run(stack, result, budget=0)  # no work allowed here: everything is left as tasks
    tasks = parallel._split(scanner, stack, result)
    assert len(tasks) >= 8 and not result.found  # the HF checkpoints now come inside their final model's task
    with tempfile.TemporaryFile() as shared:
        shared.write((0).to_bytes(8, "little") + pickle.dumps(
            {"root": str(mixed), "skip": sorted(scanner.skip_paths), "tasks": tasks}))
        shared.flush()
        fd = shared.fileno()
        out = subprocess.run([sys.executable, "-m", "mlrepo.repo_index.parallel", str(fd)], capture_output=True,
                             check=True, timeout=60, pass_fds=(fd,), stdin=subprocess.DEVNULL).stdout
    share, taken = pickle.loads(out)
    assert taken == list(range(len(tasks)))
    assert_frame_equal(frame([scanned_rows(result), share.rows]), expected)
    assert {**result.skeleton, **share.skeleton} == _result.skeleton


def test_worker_imports_no_polars(mixed: Path):
    """A worker starts in tens of ms because it never loads polars, whatever formats it reads."""
    code = ("import sys, mlrepo.repo_index.parallel as p; r = p.Scanner(sys.argv[1]).scan(); "
            "print(len(r.found) + len(r.store_found), 'polars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(mixed)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["48", "False"]


def test_failed_worker_share_is_done_again(mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture):
    """A worker that takes tasks and dies (SIGKILL) without answering: the scan does those tasks itself."""
    fake = tmp_path / "dying-python"
    taken = tmp_path / "taken"
    fake.write_text(f"#!{sys.executable}\n"
                    "import os, sys\n"
                    "from mlrepo.repo_index.parallel import _take\n"
                    "fd = int(sys.argv[-1])\n"
                    "sys.stdin.buffer.read()\n"  # the go: the tasks are in the shared file
                    "print([_take(fd) for _ in range(3)], file=sys.stderr)\n"
                    f"open({str(taken)!r}, 'w').close()\n"
                    "os.kill(os.getpid(), 9)\n")
    fake.chmod(0o755)
    _result, expected = serial(mixed)
    monkeypatch.setattr(sys, "executable", str(fake))
    monkeypatch.setattr(parallel, "CHUNK", 4)
    run_task = Scanner.run_task

    def slow_first(self, task, result):  # wait until the dying worker has taken its tasks (however busy the machine)
        deadline = time.monotonic() + 120
        while not result.found and not taken.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        run_task(self, task, result)

    monkeypatch.setattr(Scanner, "run_task", slow_first)
    result, rows = parallel.scan(Scanner(str(mixed)), workers=1, serial_work=0)
    assert "a scan worker failed (exit -9)" in caplog.text
    assert len(rows) == 2  # what this process read at first, then the dead worker's tasks read again
    assert_frame_equal(frame(rows), expected)


def test_small_scan_starts_no_worker(mixed: Path, monkeypatch: pytest.MonkeyPatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a worker was started for a small root")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    _result, rows = parallel.scan(Scanner(str(mixed)), workers=1)
    assert sum(r.n for r in rows) == 48
    assert os.path.isdir(mixed)


def test_no_process_to_be_had_scans_alone(mixed: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture):
    def no_fork(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    _result, expected = serial(mixed)
    monkeypatch.setattr(subprocess, "Popen", no_fork)
    _got, rows = parallel.scan(Scanner(str(mixed)), workers=1, serial_work=0)
    assert "no scan workers" in caplog.text
    assert_frame_equal(frame(rows), expected)

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CASCADE_018 = FIXTURES / "cascade" / "cascade-0.18"
CASCADE_012 = FIXTURES / "cascade" / "cascade-0.12"
CASCADE_07 = FIXTURES / "cascade" / "cascade-0.7"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: str | os.PathLike | None = None, stdin: str | None = None) -> Result:
    """The installed entry point in a real subprocess: exit codes and streams as a user sees them."""
    proc = subprocess.run([sys.executable, "-m", "mlrepo", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, input=stdin, timeout=120)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(autouse=True)
def cache_home(tmp_path_factory, monkeypatch) -> Path:
    """Each test's index caches in a folder of its own (MLREPO_CACHE_DIR, inherited by the CLI subprocesses), never
    in the user's cache folder."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MLREPO_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def copy_fixture(tmp_path: Path):
    """Copy a fixture tree into tmp (tests that index write a cache; the committed fixtures stay clean)."""

    def copy(src: Path, name: str | None = None) -> Path:
        dest = tmp_path / (name or src.name)
        shutil.copytree(src, dest, symlinks=True)
        return dest

    return copy


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def ws(copy_fixture):
    """The real Cascade 0.18 workspace, its files months old: prune's recent-change rule keeps nothing of it."""
    from treeutil import age

    root = copy_fixture(CASCADE_018, "repo")
    age(root)
    return root


@pytest.fixture
def env(tmp_path):
    """An environment whose freedesktop trash is in tmp, for commands run as subprocesses."""
    from treeutil import trash_env

    return trash_env(tmp_path / "user")

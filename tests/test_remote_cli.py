"""``prune``, ``archive`` and ``restore`` on a bucket through the installed ``mlrepo``, as a user types them: the
same keep rules as on disk, the objects of exactly the kept models left, and every object back byte for byte."""

from __future__ import annotations

import hashlib
import json

import pytest
from remote_run import open_root
from treeutil import FIXTURES, mlrepo

obs = pytest.importorskip("obstore")

TREE = FIXTURES / "cascade" / "cascade-0.18"
RULES = ("--keep-top", "1", "--metric", "f1.digits.val", "--per", "line", "--recent", "0")


def objects(store, prefix: str) -> dict[str, str]:
    """Every key below ``prefix`` outside mlrepo's own ``.mlrepo/``, with the sha256 of its bytes."""
    keys = [m["path"] for batch in obs.list(store, prefix + "/") for m in batch]
    return {k: hashlib.sha256(bytes(obs.get(store, k).bytes())).hexdigest() for k in keys
            if not k.startswith(f"{prefix}/.mlrepo/")}


@pytest.fixture
def tree(s3, bucket, s3_env):
    """The Cascade 0.18 fixture uploaded as ``s3://<bucket>/exp``; returns (url, store, its objects)."""
    store = open_root(s3.env, bucket, "exp").store
    for path in sorted(TREE.rglob("*")):
        if path.is_file():
            obs.put(store, f"exp/{path.relative_to(TREE).as_posix()}", path.read_bytes())
    return f"s3://{bucket}/exp", store, objects(store, "exp")


def test_prune_keep_top_leaves_exactly_the_kept_models_and_restore_brings_every_object_back(tree):
    url, store, before = tree
    res = mlrepo("prune", url, *RULES, "--dry-run", "--format", "json")
    assert res.code == 0, res.err
    plan = json.loads(res.out)
    gone = [m["path"] for m in plan["models"] if m["action"] == "remove"]
    assert len(gone) == 3 and all(p.startswith(url + "/tabular/rf_baseline/") for p in gone), gone
    moved = {k for k in before for p in gone if f"s3://{store_name(url)}/{k}".startswith(p + "/")}
    assert plan["requests"]["copy"] == len(moved) and plan["requests"]["delete"] >= 3
    assert objects(store, "exp") == before  # the dry run moved nothing

    res = mlrepo("prune", url, *RULES, "--yes")
    assert res.code == 0, res.err
    assert "trashed 3 of 3 models" in res.err and "requests" in res.err
    assert objects(store, "exp") == {k: v for k, v in before.items() if k not in moved}
    listed = mlrepo("ls", url, "--format", "json")
    assert listed.code == 0 and len(json.loads(listed.out)) == 14 - 3

    res = mlrepo("restore", url, "--all")
    assert res.code == 0, res.err
    assert "restored 3 of 3 models" in res.err
    assert objects(store, "exp") == before
    assert not [m for batch in obs.list(store, "exp/.mlrepo/trash/") for m in batch]


def test_archive_on_a_bucket_writes_the_archive_there_and_restore_unpacks_it(tree):
    url, store, before = tree
    res = mlrepo("archive", url, "--where", "line = 'sgd_sweep'", "--recent", "0", "--yes")
    assert res.code == 0, res.err
    assert "archived 4 of 4 models" in res.err
    assert not [k for k in objects(store, "exp") if "/sgd_sweep/0000" in k]  # the line's meta.yml stays
    archives = [m["path"] for batch in obs.list(store, "exp/.mlrepo/archive/") for m in batch]
    assert len(archives) == 4 and all(a.endswith(".tar.zst") for a in archives)
    res = mlrepo("restore", url, "--all")
    assert res.code == 0, res.err
    assert objects(store, "exp") == before


def test_local_folders_and_unknown_models_are_refused_on_a_bucket(tree, tmp_path):
    url, store, before = tree
    res = mlrepo("prune", url, *RULES, "--archive", tmp_path / "arch", "--yes")
    assert res.code == 2 and "on a remote root the archives go under" in res.err, res.err
    res = mlrepo("archive", url, "--to", tmp_path / "arch", "--where", "line = 'sgd_sweep'", "--yes")
    assert res.code == 2, res.err
    res = mlrepo("prune", url, *RULES)  # no terminal, no --yes: nothing moves
    assert res.code == 3 and "add --yes" in res.err, res.err
    res = mlrepo("restore", url, "no-such-model")
    assert res.code == 1 and "not trashed or archived by mlrepo here: no-such-model" in res.err, res.err
    assert objects(store, "exp") == before


def store_name(url: str) -> str:
    return url.removeprefix("s3://").split("/", 1)[0]

"""A cache written by an older mlrepo is never half-trusted: the version in its state says which facts it lacks.
Version 5 added a DVC project's ``.git`` as a store; a cache of version 4 knows no such store, so reusing it would
show the project and never its experiments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl

from mlrepo.repo_index import open_index
from mlrepo.repo_index.cache import Cache
from treeutil import FIXTURES


def test_a_cache_from_before_dvc_experiments_is_rebuilt_not_reused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bundle = FIXTURES / "dvc_exp" / "project.bundle"
    subprocess.run(["git", "clone", "-q", str(bundle), str(root / "proj")], check=True)
    subprocess.run(["git", "-C", str(root / "proj"), "fetch", "-q", str(bundle), "refs/exps/*:refs/exps/*"], check=True)
    assert sorted(open_index(root).df["format"].to_list()) == ["dvc", "dvc-exp", "dvc-exp", "dvc-exp"]
    # the cache as mlrepo wrote it before experiments were read: version 4, no .git store, no experiment rows
    cache = Cache(str(root))
    state = json.loads(Path(cache.state_path).read_text())
    state["version"], state["stores"] = 4, {}
    Path(cache.state_path).write_text(json.dumps(state))
    table = pl.read_ipc(cache.table_path)
    table.filter(pl.col("format") != "dvc-exp").write_ipc(cache.table_path)
    idx = open_index(root)
    assert sorted(idx.df["format"].to_list()) == ["dvc", "dvc-exp", "dvc-exp", "dvc-exp"]
    assert idx.stats.reused == 0  # read again from the disk, not revalidated from the old cache

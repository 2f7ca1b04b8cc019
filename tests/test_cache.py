"""The cache is revalidated against the disk on every use and re-reads only what changed."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import mlrepo
from mlrepo.repo_index.cache import cache_dir
from treeutil import CASCADE_018


def _touch_meta(path, data):
    (path / "meta.json").write_text(json.dumps(data))


def test_warm_index_reads_nothing_and_matches_cold(copy_fixture):
    root = copy_fixture(CASCADE_018)
    cold = mlrepo.open_index(root)
    assert cold.stats.read == 14 and cold.stats.cache_written
    assert (Path(cache_dir(str(root))) / "index.arrow").exists()
    assert not (root / ".mlrepo").exists()  # derived data never lands in the root
    warm = mlrepo.open_index(root)
    assert warm.stats.read == 0 and warm.stats.reused == 14
    assert warm.df.equals(cold.df)
    assert warm.metrics == cold.metrics


def test_changes_are_seen_and_only_they_are_read(copy_fixture):
    root = copy_fixture(CASCADE_018)
    mlrepo.open_index(root)
    model = root / "tabular" / "rf_baseline" / "00001"
    meta = json.loads((model / "meta.json").read_text())
    meta[0]["metrics"][0]["value"] = 0.99
    time.sleep(0.01)
    _touch_meta(model, meta)  # rewritten in place: the folder's listing does not change
    idx = mlrepo.open_index(root)
    assert idx.stats.read == 1
    row = idx.df.filter(idx.df["path"] == str(model)).row(0, named=True)
    assert row["metrics.accuracy"] == 0.99

    new = root / "tabular" / "rf_baseline" / "00004"
    shutil.copytree(model, new)  # cp -r of a model
    shutil.rmtree(root / "vision" / "cnn_small" / "00000")
    (model / "artifacts" / "extra.bin").write_bytes(b"x" * 1000)  # a new file deep inside a model
    idx = mlrepo.open_index(root)
    assert len(idx) == 14 and idx.stats.read == 2
    assert str(new) in idx.df["path"].to_list()
    sizes = dict(zip(idx.df["path"], idx.df["size_bytes"], strict=True))
    extra = os.lstat(model / "artifacts" / "extra.bin").st_blocks * 512  # sizes are allocated bytes, as du
    assert sizes[str(model)] == sizes[str(new)] + extra


def test_new_metric_split_requalifies_cached_columns(copy_fixture):
    """metrics.precision is one column until a model records precision for a split: then both are qualified."""
    root = copy_fixture(CASCADE_018)
    assert "metrics.precision" in mlrepo.open_index(root).df.columns
    model = root / "vision" / "cnn_small" / "00003"
    model.mkdir()
    _touch_meta(model, [{"type": "model", "metrics": [{"name": "precision", "value": 0.5, "split": "test"}]}])
    idx = mlrepo.open_index(root)
    assert idx.stats.read == 1 and "metrics.precision" in idx.df.columns  # plain one keeps its name
    assert "metrics.precision.test" in idx.df.columns


def test_plain_folder_becoming_a_model_and_damaged_cache(copy_fixture):
    root = copy_fixture(CASCADE_018)
    mlrepo.open_index(root)
    (root / "tabular" / "notes").mkdir()
    mlrepo.open_index(root)
    (root / "tabular" / "notes" / "metrics.json").write_text('{"acc": 1.0}')
    idx = mlrepo.open_index(root)
    assert "generic" in idx.counts_by_format()
    (Path(cache_dir(str(root))) / "index.arrow").write_bytes(b"garbage")
    again = mlrepo.open_index(root)
    assert len(again) == len(idx) and again.stats.read == len(idx)


def test_read_only_root_caches_elsewhere(copy_fixture, tmp_path, monkeypatch):
    root = copy_fixture(CASCADE_018)
    monkeypatch.delenv("MLREPO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default: the user cache folder
    os.chmod(root, 0o555)
    try:
        if os.access(root, os.W_OK):  # root ignores modes; nothing to prove here
            return
        mlrepo.open_index(root)
        assert not (root / ".mlrepo").exists()
        assert mlrepo.open_index(root).stats.reused == 14
        assert cache_dir(str(root)).startswith(str(tmp_path / "xdg" / "mlrepo"))
    finally:
        os.chmod(root, 0o755)



def test_names_that_are_not_utf8_keep_the_cache_and_the_listing(tmp_path, cli):
    """A root whose name is not UTF-8 (orjson refuses it) is listed and cached; a folder inside with such a name is
    listed every time (its tree is read afresh: the table keeps the name escaped, which no cache can match)."""
    root = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    shutil.copytree(CASCADE_018, root)
    first = cli("ls", root, "--format", "csv")
    assert first.code == 0 and first.out.count("\n") == 15 and "Traceback" not in first.err
    assert mlrepo.open_index(root).stats.read == 0  # the cache written by the command is used
    assert cli("ls", root, "--format", "csv").out == first.out
    os.rename(root / "vision", Path(os.fsdecode(bytes(root) + b"/vis\xefon")))
    lists = [cli("ls", root, "--format", "csv", "--columns", "path,error") for _ in range(2)]
    assert lists[0].out == lists[1].out and lists[0].out.count("\n") == 15 and lists[0].code == 0

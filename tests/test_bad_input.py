"""Broken metadata is reported per model; the rest of the index is whole; never a traceback."""

from __future__ import annotations

import json
import os

import mlrepo
import polars as pl
import pytest
from treeutil import CASCADE_018

GOOD = [{"type": "model", "metrics": [{"name": "f1", "value": 0.5}], "params": {"lr": 0.1}}]


def _model(root, rel: str, content: bytes | str, name: str = "meta.json"):
    path = root / rel
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.fixture
def broken_root(tmp_path):
    root = tmp_path / "repo"
    (root / "line").mkdir(parents=True)
    (root / "line" / "meta.json").write_text('[{"type": "line"}]')
    _model(root, "line/00000", json.dumps(GOOD))
    _model(root, "line/00001", json.dumps(GOOD)[:40])  # a save interrupted mid-write
    _model(root, "line/00002", b"\x00\x01\x02binary\xff")
    _model(root, "line/00003", json.dumps([{"type": "model", "metrics": "f1=0.9", "params": [1, 2]}]))
    _model(root, "line/00004", '[{"type": "model", "metrics": [{"name": "f1", "value": NaN}, '
                               '{"name": "acc", "value": "0.75"}, {"name": "auc", "value": Infinity},'
                               '{"name": "bad", "value": "high"}]}]')
    unreadable = _model(root, "line/00005", json.dumps(GOOD))
    os.chmod(unreadable / "meta.json", 0)
    loop = root / "line" / "00006"
    loop.mkdir()
    os.symlink("meta.json", loop / "meta.json")  # a symlink to itself: ELOOP
    os.symlink(str(root), root / "line" / "back-to-root")  # a directory symlink loop
    weird = _model(root, "line/00007", json.dumps(GOOD))
    os.rename(weird, os.fsencode(str(root / "line")) + b"/caf\xe9")  # a non-UTF-8 folder name
    _model(root, "generic/run", "acc: [1, 2\n", "metrics.yaml")  # broken YAML
    _model(root, "generic/ok", '{"acc": 0.9}', "metrics.json")
    return root


def test_each_kind_of_bad_input_is_reported_per_model(broken_root):
    idx = mlrepo.open_index(broken_root, use_cache=False)
    rows = {os.path.basename(r["path"]): r for r in idx.df.iter_rows(named=True)}
    assert rows["00000"]["error"] is None and rows["00000"]["metrics.f1"] == 0.5
    assert "truncated" in rows["00001"]["error"]
    assert "binary" in rows["00002"]["error"]
    assert "metrics is a str" in rows["00003"]["error"] and "params is a list" in rows["00003"]["error"]
    nan = rows["00004"]
    assert nan["metrics.f1"] is None and "NaN" in nan["error"]
    assert nan["metrics.acc"] == 0.75  # a number written as a string is still a number
    assert nan["metrics.auc"] == float("inf")
    assert "'bad' is not a number" in nan["error"]
    if os.geteuid() != 0:  # root reads anything
        assert "cannot read" in rows["00005"]["error"]
    assert "cannot read" in rows["00006"]["error"]
    assert "invalid YAML" in rows["run"]["error"]
    assert rows["ok"]["metrics.acc"] == 0.9
    bad_name = [r for name, r in rows.items() if name.startswith("caf")]
    assert len(bad_name) == 1 and "not valid UTF-8" in bad_name[0]["error"]
    assert bad_name[0]["metrics.f1"] == 0.5
    assert not any("back-to-root" in p for p in idx.df["path"])  # the loop is not followed


def test_cli_never_shows_a_traceback_on_bad_input(broken_root, cli):
    for args in (["index", broken_root], ["ls", broken_root, "--format", "json"], ["du", broken_root],
                 ["best", broken_root, "--metric", "f1"], ["history", broken_root],
                 ["export", broken_root, "--format", "csv"]):
        r = cli(*args)
        assert r.code == 0, (args, r.err)
        assert "Traceback" not in r.err
    r = cli("index", broken_root)
    assert "could not be read fully" in r.out and "truncated" in r.err


def test_unlistable_folder_is_skipped_with_a_reason(tmp_path):
    root = tmp_path / "r"
    _model(root, "a/line/00000", json.dumps(GOOD))
    secret = root / "secret"
    secret.mkdir()
    os.chmod(secret, 0)
    try:
        idx = mlrepo.open_index(root, use_cache=False)
        assert len(idx) == 1
        if os.geteuid() != 0:
            assert any("secret" in p for p, _ in idx.stats.skipped)
    finally:
        os.chmod(secret, 0o755)


def test_mixed_types_across_models_do_not_break_columns(tmp_path):
    root = tmp_path / "r"
    _model(root, "a/l/00000", json.dumps([{"type": "model", "params": {"x": 1, "y": "a"}}]))
    _model(root, "a/l/00001", json.dumps([{"type": "model", "params": {"x": "one", "y": None}}]))
    _model(root, "a/l/00002", json.dumps([{"type": "model", "params": {"x": 2.5, "y": [1, {"z": 2}]}}]))
    idx = mlrepo.open_index(root, use_cache=False)
    assert idx.df.schema["params.x"] == pl.String
    assert sorted(idx.df["params.x"].to_list()) == ["1", "2.5", "one"]


def test_scanner_skips_tool_folders(tmp_path, copy_fixture):
    root = copy_fixture(CASCADE_018)
    for tool in (".git", ".venv", "node_modules", "__pycache__"):
        _model(root, f"{tool}/x/00000", json.dumps(GOOD))
    _model(root, ".mlrepo/archive/x/00000", json.dumps(GOOD))
    assert len(mlrepo.open_index(root, use_cache=False)) == 14


def test_volume_trash_is_not_indexed(tmp_path):
    root = tmp_path / "r"
    _model(root, "a/l/00000", json.dumps(GOOD))
    _model(root, ".Trash-0/files/l/00001", json.dumps(GOOD))
    assert len(mlrepo.open_index(root, use_cache=False)) == 1

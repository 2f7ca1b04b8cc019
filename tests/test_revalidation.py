"""Warm revalidation: one stat per folder of a model and one per metadata file, spread over threads, and still
every change seen (a metadata file rewritten in place leaves its folder's mtime alone)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import mlrepo
from mlrepo.repo_index import scanner
from mlrepo.repo_index.folder_walk import stamp_of
from treeutil import CASCADE_018, FIXTURES


@pytest.fixture(params=["serial", "threads"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Revalidate in this thread, or in threads even for a small tree (the fixtures are far below the bar)."""
    monkeypatch.setattr(scanner, "THREADED_CHECKS", 0 if request.param == "threads" else 10**9)
    return request.param


def _keep_mtime(folder: Path):
    """Put ``folder``'s mtime back as it was after a change inside it (as a listing-preserving write leaves it)."""
    st = folder.stat()
    return lambda: os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))


def _bump(path: Path, seconds: int = 5) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_every_change_is_seen_and_only_it_is_read(copy_fixture, mode: str):
    root = copy_fixture(CASCADE_018)
    cold = mlrepo.open_index(root)
    warm = mlrepo.open_index(root)
    assert (warm.stats.read, warm.stats.reused) == (0, 14)
    assert warm.df.equals(cold.df)

    model = root / "tabular" / "rf_baseline" / "00001"
    restore = _keep_mtime(model)
    meta = json.loads((model / "meta.json").read_text())
    meta[0]["metrics"][0]["value"] = 0.99
    (model / "meta.json").write_text(json.dumps(meta))
    _bump(model / "meta.json")
    restore()  # the model folder's mtime did not move: only the file's own stat can tell
    idx = mlrepo.open_index(root)
    assert idx.stats.read == 1
    assert idx.df.filter(idx.df["path"] == str(model))["metrics.accuracy"].to_list() == [0.99]

    before = dict(zip(idx.df["path"], idx.df["size_bytes"], strict=True))[str(model)]
    restore = _keep_mtime(model)
    (model / "artifacts" / "extra.bin").write_bytes(b"x" * 5000)  # only artifacts/ changes its mtime
    restore()
    idx = mlrepo.open_index(root)
    assert idx.stats.read == 1
    after = dict(zip(idx.df["path"], idx.df["size_bytes"], strict=True))[str(model)]
    assert after == before + os.lstat(model / "artifacts" / "extra.bin").st_blocks * 512

    shutil.copytree(model, root / "tabular" / "rf_baseline" / "00009")
    shutil.rmtree(root / "vision" / "cnn_small" / "00000")
    idx = mlrepo.open_index(root)
    assert len(idx) == 14 and idx.stats.read == 1
    assert str(root / "tabular" / "rf_baseline" / "00009") in idx.df["path"].to_list()
    assert str(root / "vision" / "cnn_small" / "00000") not in idx.df["path"].to_list()
    assert mlrepo.open_index(root).df.equals(mlrepo.open_index(root, rebuild=True).df)


def test_nested_checkpoints_follow_their_output_folder(copy_fixture, mode: str):
    """HF checkpoints are models inside a model; each stamps the output folder's trainer_state.json."""
    root = copy_fixture(FIXTURES / "hf_trainer")
    cold = mlrepo.open_index(root)
    assert (mlrepo.open_index(root).stats.read, len(cold)) == (0, 5)
    _bump(root / "run1" / "trainer_state.json")
    idx = mlrepo.open_index(root)
    assert idx.stats.read == 4 and idx.stats.reused == 1  # run1 and its three checkpoints; run2 untouched
    assert idx.df.equals(mlrepo.open_index(root, rebuild=True).df)


def test_shared_metadata_files_are_statted_once_per_folder(tmp_path: Path):
    """``../x`` of every sibling is one file: memoised, the stamp is the same number, and it still moves."""
    out = tmp_path / "out"
    for step in (4, 8):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        (out / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (out / "trainer_state.json").write_text('{"global_step": 8}')
    metas = ["trainer_state.json", "..", "../trainer_state.json"]
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        def stamps(shared: dict | None) -> list[int]:
            return [stamp_of(f"checkpoint-{s}", [""], metas, fd, shared) for s in (4, 8)]

        plain, memo = stamps(None), {}
        assert stamps(memo) == plain and set(memo) == {".", "trainer_state.json"}
        _bump(out / "trainer_state.json")
        moved = stamps({})
        assert moved == stamps(None) and all(a != b for a, b in zip(moved, plain, strict=True))
    finally:
        os.close(fd)


def test_scans_keep_no_metric_history_and_curves_read_it_on_demand(copy_fixture):
    """The index stores latest values only: a scan builds no curve; the curves view reads them again."""
    from mlrepo.repo_index.curves import metric_curves
    from mlrepo.repo_index.readers import Place, claim, default_readers
    from mlrepo.repo_index.scanner import scan_model

    root = copy_fixture(FIXTURES / "lightning")
    version = root / "lightning_logs" / "version_0"
    place = Place(str(version), "lightning_logs/version_0", frozenset(os.listdir(version)),
                  frozenset(os.listdir(version.parent)))
    reader = claim(default_readers(), place)
    assert reader is not None and reader.format == "lightning"
    read = reader.read(place)
    scanned = scan_model(reader, place).record
    assert {m.name: m.value for m in scanned.metrics} == {m.name: m.value for m in read.metrics}
    assert any(m.history for m in read.metrics) and not any(m.history for m in scanned.metrics)
    curves = metric_curves(str(version), "lightning")
    assert curves["val_loss"] == [(2, 3.3515429496765137), (5, 1.4021222591400146)]

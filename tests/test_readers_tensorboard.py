"""TensorBoard event folders as torch.utils.tensorboard and Lightning's TensorBoardLogger wrote them
(tests/fixtures/make_tensorboard.py): every scalar and hparam checked; values are float32, as the files hold them."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import mlrepo
import numpy as np
from mlrepo.repo_index.curves import metric_curves
from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.tensorboard import TensorBoardReader, read_events

TB = Path(__file__).parent / "fixtures" / "tensorboard"
PLAIN = TB / "runs" / "plain"
VERSION_0 = TB / "lightning_logs" / "version_0"


def f32(x: float) -> float:
    return float(np.float32(x))


PLAIN_METRICS = {
    "loss": [(s, f32(1.0 / (s + 1))) for s in range(5)],
    "acc": sorted([(s, f32(0.5 + 0.1 * s)) for s in range(5)] + [(2, f32(0.1))], key=lambda p: p[0]),
    "lr": [(s, f32(0.1 * 0.5 ** s)) for s in range(5)],  # new-style tensor scalars
    "split/train": [(s, 0.25 * s) for s in range(5)],  # add_scalars: split_train/
    "split/val": [(s, 0.5 * s) for s in range(5)],
}
# Lightning: values printed by the script that made the fixture (trainer.callback_metrics and the event files)
LIGHTNING_CURVES = {
    "train_loss": [(1, 1.5855194330215454), (3, 3.363577365875244), (5, 1.488145351409912), (7, 3.2397284507751465)],
    "val_loss": [(3, 3.452819585800171), (7, 3.3406639099121094)],
}


def place_of(path: Path) -> Place:
    return Place(str(path), path.name, frozenset(os.listdir(path)), frozenset(os.listdir(path.parent)))


def test_every_scalar_and_hparam():
    index = mlrepo.open_index(TB, use_cache=False)
    assert index.counts_by_format() == {"tensorboard": 1, "lightning": 1}  # sub-folders belong to their run
    rows = {r["name"]: r for r in index.df.to_dicts()}
    plain = rows["plain"]
    assert (plain["path"], plain["format"], plain["repo"], plain["line"], plain["error"]) == (
        str(PLAIN), "tensorboard", "tensorboard", "runs", None)
    expected = {name: points[-1][1] for name, points in PLAIN_METRICS.items()}
    expected["acc"] = f32(0.9)  # the value at the highest step, not the one logged last (at step 2)
    expected["hparam/accuracy"] = f32(0.9)  # add_hparams' metric, in its time-named sub-folder
    for name, value in expected.items():
        assert plain[f"metrics.{name}"] == value, name
    # add_hparams: numbers are written as doubles (a bool as 1), strings as strings
    assert {k: plain[f"params.{k}"] for k in ("lr", "batch_size", "optimizer", "nesterov")} == {
        "lr": 0.1, "batch_size": 32, "optimizer": "sgd", "nesterov": 1}
    # the image, the histogram and the text are not scalars
    for junk in ("sample", "weights", "note", "note/text_summary", "epoch"):
        assert f"metrics.{junk}" not in index.df.columns
    assert plain["tags"] == [] and plain["status"] == "active"


def test_curves_keep_step_order():
    curves = metric_curves(str(PLAIN), "tensorboard")
    assert {k: v for k, v in curves.items() if k in PLAIN_METRICS} == PLAIN_METRICS
    assert "hparam/accuracy" not in curves  # a single point is no curve


def test_lightning_tensorboard_logger_is_one_row():
    """version_N with hparams.yaml and an events file: the Lightning row, with the event file's scalars."""
    index = mlrepo.open_index(TB / "lightning_logs", use_cache=False)
    assert len(index) == 1
    row = index.df.to_dicts()[0]
    assert (row["path"], row["format"], row["name"], row["error"]) == (str(VERSION_0), "lightning", "version_0", None)
    assert (row["params.hidden"], row["params.lr"]) == (4, 0.05)
    metrics = {c.removeprefix("metrics."): row[c] for c in index.df.columns if c.startswith("metrics.")}
    assert metrics == {"train_loss": 3.2397284507751465, "val_loss": 3.3406639099121094, "hp_metric": -1.0}
    curves = metric_curves(str(VERSION_0), "lightning")
    assert curves == LIGHTNING_CURVES
    meta = TensorBoardReader().read(place_of(VERSION_0)).meta_files
    assert meta and all(m.startswith("events.out.tfevents.") for m in meta)


def test_lower_step_never_replaces_the_highest(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(PLAIN, run)
    rec = TensorBoardReader().read(place_of(run))
    assert {m.name: m.value for m in rec.metrics}["acc"] == f32(0.9)


def _records(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append(data[pos:pos + 12 + length + 4])
        pos += 12 + length + 4
    return out


def test_cut_tail_and_garbage(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(PLAIN, run)
    events = next(p for p in run.iterdir() if p.name.startswith("events."))
    data = events.read_bytes()
    for cut in range(0, len(data), 97):  # a run still being written: whatever is complete is read, no error
        points: dict = {}
        assert read_events(data[:cut], points, {}) is None
        for name, series in points.items():
            assert series == [p for p in _unsorted_plain(name)][:len(series)]
    events.write_bytes(data[:100] + b"\xff" * 40 + data[140:])
    rec = TensorBoardReader().read(place_of(run))
    assert rec.errors and rec.errors[0].startswith(events.name + ": record at byte")


def _unsorted_plain(name: str) -> list[tuple[int, float]]:
    """The points of ``name`` in the order the script wrote them."""
    if name == "acc":
        return [(s, f32(0.5 + 0.1 * s)) for s in range(5)] + [(2, f32(0.1))]
    return PLAIN_METRICS[name]


def test_ten_megabytes_of_images_read_fast(tmp_path):
    """Images and histograms are skipped by length: a 10 MB log made of the fixture's own image and histogram
    records reads in well under a second."""
    events = next(p for p in PLAIN.iterdir() if p.name.startswith("events."))
    records = _records(events.read_bytes())
    image = next(r for r in records if b"sample" in r) + next(r for r in records if b"weights" in r)
    run = tmp_path / "big"
    run.mkdir()
    copies = (10 << 20) // len(image)
    (run / events.name).write_bytes(records[0] + image * copies + b"".join(records[1:]))
    assert (run / events.name).stat().st_size >= 10 << 20
    start = time.perf_counter()
    rec = TensorBoardReader().read(place_of(run))
    elapsed = time.perf_counter() - start
    assert {m.name: m.value for m in rec.metrics}["loss"] == f32(0.2)
    assert elapsed < 1.0, elapsed


def test_a_fifo_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "events.out.tfevents.1.host.1.0")
    rec = TensorBoardReader().read(place_of(run))
    assert rec.errors == ["events.out.tfevents.1.host.1.0: not a regular file"]

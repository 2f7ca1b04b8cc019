"""The Cascade reader on real workspaces written by cascade-ml 0.18.0, 0.12.1 and 0.7.3 (see fixtures/)."""

from __future__ import annotations

import math

import mlrepo
import polars as pl
import pytest
from treeutil import CASCADE_012, CASCADE_018, CASCADE_07

# Every model of the 0.18 workspace: params as written (flattened) and every metric value, by column.
RF = {"model": "rf", "max_depth": 4, "optimizer.name": "sgd"}
SGD = {"model": "linear", "optimizer.name": "sgd", "optimizer.momentum": 0.9}
EXPECTED_018 = {
    "tabular/rf_baseline/00000": ({**RF, "epochs": 10, "optimizer.lr": 0.1},
                                  {"accuracy": 0.71, "f1.digits.val": 0.69, "f1.digits.test": 0.66,
                                   "loss.digits.val": 0.82}),
    "tabular/rf_baseline/00001": ({**RF, "epochs": 10, "optimizer.lr": 0.01},
                                  {"accuracy": 0.84, "f1.digits.val": 0.83, "f1.digits.test": 0.8,
                                   "loss.digits.val": 0.41}),
    "tabular/rf_baseline/00002": ({**RF, "epochs": 30, "optimizer.lr": 0.01},
                                  {"accuracy": 0.87, "f1.digits.val": 0.86, "f1.digits.test": 0.84,
                                   "loss.digits.val": 0.35}),
    "tabular/rf_baseline/00003": ({**RF, "epochs": 30, "max_depth": 8, "optimizer.lr": 0.01,
                                   "optimizer.name": "adam"},
                                  {"accuracy": 0.79, "f1.digits.val": 0.78, "f1.digits.test": 0.75,
                                   "loss.digits.val": 0.52}),
    "tabular/sgd_sweep/00000": ({**SGD, "epochs": 20, "batch_size": 32, "optimizer.lr": 0.01},
                                {"accuracy.digits.test": 0.78, "score_d": 12.5, "loss.train": 0.3,
                                 "loss.val": 0.44}),
    "tabular/sgd_sweep/00001": ({**SGD, "epochs": 20, "batch_size": 32, "optimizer.lr": 0.001},
                                {"accuracy.digits.test": 0.74, "score_d": 15.25, "loss.train": 0.38,
                                 "loss.val": 0.5}),
    "tabular/sgd_sweep/00002": ({**SGD, "epochs": 40, "batch_size": 32, "optimizer.lr": 0.01},
                                {"accuracy.digits.test": 0.81, "score_d": 9.75, "loss.train": 0.22,
                                 "loss.val": 0.39}),
    "tabular/sgd_sweep/00003": ({**SGD, "epochs": 40, "batch_size": 64, "optimizer.lr": 0.01},
                                {"accuracy.digits.test": 0.83, "score_d": 8.0, "loss.train": 0.2,
                                 "loss.val": 0.37}),
}
VISION_BASE = {"augment.crop": 24, "augment.flip": True, "epochs": 5, "model": "cnn",
               "optimizer.betas": "[0.9,0.999]", "optimizer.lr": 0.001, "optimizer.name": "adam"}
EXPECTED_018.update({
    "vision/00000/00000": (VISION_BASE, {"accuracy.cifar10-mini.val": 0.62, "accuracy.cifar10-mini.test": 0.6,
                                         "loss.cifar10-mini.val": 1.1}),
    "vision/00000/00001": ({**VISION_BASE, "epochs": 15},
                           {"accuracy.cifar10-mini.val": 0.75, "accuracy.cifar10-mini.test": 0.73,
                            "loss.cifar10-mini.val": 0.74}),
    "vision/00000/00002": ({**VISION_BASE, "epochs": 30, "augment.crop": 32},
                           {"accuracy.cifar10-mini.val": 0.88, "accuracy.cifar10-mini.test": 0.86,
                            "loss.cifar10-mini.val": 0.41}),
    "vision/cnn_small/00000": ({"dropout": 0.1, "epochs": 10, "model": "cnn_small", "optimizer.lr": 0.01,
                                "optimizer.name": "sgd"}, {"accuracy": 0.66, "precision": 0.7, "loss": 0.95}),
    "vision/cnn_small/00001": ({"dropout": 0.3, "epochs": 10, "model": "cnn_small", "optimizer.lr": 0.01,
                                "optimizer.name": "sgd"}, {"accuracy": 0.69, "precision": 0.72, "loss": 0.9}),
    "vision/cnn_small/00002": ({"dropout": 0.3, "epochs": 10, "model": "cnn_small", "optimizer.lr": 0.5,
                                "optimizer.name": "sgd"}, {"accuracy": 0.1, "precision": 0.0, "loss": None}),
})


def _key(row: dict) -> str:
    return f"{row['repo']}/{row['line']}/{row['name']}"


@pytest.fixture(scope="module")
def idx018():
    return mlrepo.open_index(CASCADE_018, use_cache=False)


def test_018_every_model_param_and_metric(idx018):
    df = idx018.df
    assert sorted(_key(r) for r in df.iter_rows(named=True)) == sorted(EXPECTED_018)
    assert set(df["format"]) == {"cascade"}
    all_params = {k for params, _ in EXPECTED_018.values() for k in params}
    assert set(idx018.param_columns) == {f"params.{k}" for k in all_params}
    for row in df.iter_rows(named=True):
        params, metrics = EXPECTED_018[_key(row)]
        got_params = {c.removeprefix("params."): row[c] for c in idx018.param_columns if row[c] is not None}
        assert got_params == params, _key(row)
        got_metrics = {c.removeprefix("metrics."): row[c] for c in idx018.metric_columns if row[c] is not None}
        assert got_metrics == {k: v for k, v in metrics.items() if v is not None}, _key(row)


def test_018_metric_qualifiers_and_directions(idx018):
    info = idx018.metrics
    assert info["metrics.f1.digits.val"].split == "val" and info["metrics.f1.digits.val"].dataset == "digits"
    assert info["metrics.score_d"].direction == "min"
    assert info["metrics.loss.train"].direction == "min"
    assert info["metrics.accuracy"].direction == "max"
    assert info["metrics.precision"].direction is None  # not in the metadata: decided by name when ranking


def test_018_tags_times_sizes_and_nan(idx018):
    rows = {_key(r): r for r in idx018.df.iter_rows(named=True)}
    assert rows["tabular/rf_baseline/00002"]["tags"] == ["best", "candidate"]
    assert rows["vision/cnn_small/00002"]["tags"] == ["diverged"]
    created = rows["tabular/rf_baseline/00000"]["created_at"]
    assert created.tzinfo is not None and created.year >= 2026
    # a full save has SLUG, meta, model.pkl and artifacts/weights.json; 00002 of rf also has files/
    assert rows["tabular/rf_baseline/00000"]["n_files"] == 4
    assert rows["tabular/rf_baseline/00002"]["n_files"] == 5
    assert rows["vision/cnn_small/00002"]["n_files"] == 2  # only_meta save: SLUG and meta.json
    assert all(r["size_bytes"] > 0 for r in rows.values())
    assert "NaN" in rows["vision/cnn_small/00002"]["error"]
    assert rows["tabular/rf_baseline/00000"]["error"] is None


def test_auto_named_line_is_not_a_model(idx018):
    """cascade names an unnamed line 00000, like a model: the reader must use the meta's type."""
    assert idx018.df.filter(pl.col("path").str.ends_with("vision/00000")).is_empty()


def test_012_repo_exactly():
    idx = mlrepo.open_index(CASCADE_012, use_cache=False)
    rows = {_key(r): r for r in idx.df.iter_rows(named=True)}
    assert sorted(rows) == [f"cascade-0.12/{line}/0000{i}" for line in ("logreg", "tree") for i in range(3)]
    one = rows["cascade-0.12/logreg/00001"]
    assert (one["metrics.accuracy"], one["metrics.f1_val"], one["metrics.f1_test"], one["metrics.loss"]) == (
        0.82, 0.8, 0.79, 0.45)
    assert (one["params.optimizer.lr"], one["params.optimizer.name"], one["params.penalty"]) == (0.01, "sgd", "l2")
    assert one["tags"] == ["good"]
    nested = rows["cascade-0.12/logreg/00002"]  # a dict-valued metric becomes one column per key
    assert (nested["metrics.per_class_f1.0"], nested["metrics.per_class_f1.1"]) == (0.83, 0.85)
    tree2 = rows["cascade-0.12/tree/00002"]
    assert tree2["metrics.accuracy"] is None and tree2["metrics.loss"] == 0.63 and "NaN" in tree2["error"]
    assert rows["cascade-0.12/tree/00001"]["params.criterion.name"] == "gini"


def test_07_repo():
    idx = mlrepo.open_index(CASCADE_07, use_cache=False)
    assert len(idx) == 6
    ridge = idx.df.filter((pl.col("line") == "ridge") & (pl.col("name") == "00002")).row(0, named=True)
    assert (ridge["metrics.mse"], ridge["metrics.mae"], ridge["metrics.r2"]) == (1.4, 0.9, 0.78)
    assert ridge["params.alpha"] == 0.1 and ridge["params.optimizer.lr"] == 0.01
    assert not math.isnan(ridge["metrics.r2"])

"""One root holding every format's real fixtures: one index, each fixture's rows exactly as when read alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlrepo

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = ("cascade/cascade-0.18", "mlflow_file", "mlflow_sqlite", "lightning", "hf_trainer", "tensorboard", "wandb",
           "mlflow3", "hydra", "dvc", "ray", "lightning_ckpt")


def test_every_format_in_one_root(tmp_path):
    alone = {}
    for src in SOURCES:
        dest = tmp_path / Path(src).name
        shutil.copytree(FIXTURES / src, dest, symlinks=True)
        index = mlrepo.open_index(dest, use_cache=False)
        alone[src] = index.df.select("path", "format", "name", "tags", "status").sort("path")
    mixed = mlrepo.open_index(tmp_path, use_cache=False)
    assert set(mixed.counts_by_format()) == {"cascade", "mlflow", "lightning", "hf-trainer", "tensorboard", "wandb",
                                             "mlflow-model", "hydra", "dvc", "ray-tune"}
    assert len(mixed) == sum(frame.height for frame in alone.values())
    assert mixed.df["id"].n_unique() == len(mixed)
    # a moved mlflow.db whose runs have no folder follows its logged models' folders: nothing outside the root
    assert all(p.startswith(str(tmp_path) + "/") for p in mixed.df["path"].to_list())
    together = mixed.df.select("path", "format", "name", "tags", "status").sort("path")
    for src, frame in alone.items():
        prefix = str(tmp_path / Path(src).name) + "/"
        mine = together.filter(together["path"].str.starts_with(prefix))
        assert mine.equals(frame), src

"""Format readers behind one small interface.

The scanner lists each directory once and asks every reader, in order, whether the directory is one of its
models (``claim``). A claimed directory is read by that reader (``read``) in a worker thread and is not searched
for further models. A reader may also own a *store* file (MLflow's ``mlflow.db``) that describes many models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mlrepo.repo_index.records import ModelRecord


@dataclass(frozen=True, slots=True)
class Place:
    """A directory as the scanner sees it: its path, relative path under the root, and entry names."""

    path: str
    rel: str
    names: frozenset[str]
    parent_names: frozenset[str]


class Reader(Protocol):
    format: str

    def claim(self, place: Place) -> bool:
        """Is this directory one model of this format? Cheap: decide from names, read only if unavoidable."""

    def read(self, place: Place) -> ModelRecord:
        """Read the model's metadata. Never raises: problems go to ``record.errors``."""


class StoreReader(Protocol):
    format: str
    store_files: tuple[str, ...]

    def read_store(self, path: str, root: str) -> list[ModelRecord]:
        """Every model recorded in the store file at ``path``; never raises."""


def default_readers() -> list[Reader]:
    from mlrepo.repo_index.readers.cascade import CascadeReader
    from mlrepo.repo_index.readers.generic import GenericReader
    from mlrepo.repo_index.readers.hf_trainer import HfTrainerReader
    from mlrepo.repo_index.readers.lightning import LightningReader
    from mlrepo.repo_index.readers.mlflow_file import MlflowFileReader

    # MLflow first: its claim is decided from names alone, where Cascade's parses the meta.yaml every run has.
    # The generic reader claims any folder with metrics.json, so it is asked last.
    return [MlflowFileReader(), CascadeReader(), LightningReader(), HfTrainerReader(), GenericReader()]


def default_store_readers() -> list[StoreReader]:
    from mlrepo.repo_index.readers.mlflow_sqlite import MlflowSqliteReader

    return [MlflowSqliteReader()]

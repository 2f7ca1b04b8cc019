"""Format readers behind one small interface.

The scanner lists each directory once and asks every reader, in order, whether the directory is one of its
models (``claim``). A claimed directory is read by that reader (``read``) in a worker thread and is not searched
for further models (except the sub-folders its record names as ``nested``). A reader may also own a *store* file
(MLflow's ``mlflow.db``) that describes many models.

One folder is one row: when a *companion* reader (one whose files often sit inside another tool's run folder, as
TensorBoard event files do in a Ray trial or a Lightning ``version_N``) also claims a claimed folder, both read it
and their records are merged into the first claimer's row (``Merged``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from mlrepo.errors import in_words
from mlrepo.repo_index.records import ModelRecord, merge_records


@dataclass(frozen=True, slots=True)
class Place:
    """A directory as the scanner sees it: its path, relative path under the root, and entry names."""

    path: str
    rel: str
    names: frozenset[str]
    parent_names: frozenset[str]


class Reader(Protocol):
    @property
    def format(self) -> str: ...

    def claim(self, place: Place) -> bool:
        """Is this directory one model of this format? Cheap: decide from names, read only if unavoidable."""

    def read(self, place: Place) -> ModelRecord:
        """Read the model's metadata. Never raises: problems go to ``record.errors``."""


@dataclass(frozen=True, slots=True)
class Merged:
    """A folder two or more readers claim, read by each and merged into the first one's record (its format)."""

    readers: tuple[Reader, ...]

    @property
    def format(self) -> str:
        return self.readers[0].format

    def claim(self, place: Place) -> bool:
        return all(r.claim(place) for r in self.readers)

    def read(self, place: Place) -> ModelRecord:
        records = []
        for reader in self.readers:
            try:
                records.append(reader.read(place))
            except Exception as exc:  # noqa: BLE001 - one reader's bug must not lose the other's record
                rec = ModelRecord(path=place.path, format=reader.format)
                rec.add_error(f"{reader.format} metadata {in_words(exc)}")
                records.append(rec)
        return merge_records(records)


def claim(readers: list[Reader], place: Place) -> Reader | None:
    """The reader for ``place``: the first that claims it, merged with the companion readers after it that claim it
    too. Only companions are asked once a folder is claimed, so a claimed folder costs no other reader's look."""
    for i, reader in enumerate(readers):
        if reader.claim(place):
            more = [r for r in readers[i + 1:] if getattr(r, "companion", False) and r.claim(place)]
            return Merged((reader, *more)) if more else reader
    return None


def folder_format(path: str) -> str | None:
    """The format of the model that the folder ``path`` is, as a scan from its parent would claim it; None when it
    is no model folder (or cannot be listed). For a command that must tell a ROOT from a model before indexing."""
    try:
        with os.scandir(path) as it:
            names = frozenset(e.name for e in it)
        with os.scandir(os.path.dirname(os.path.abspath(path))) as it:
            parent_names = frozenset(e.name for e in it)
    except OSError:
        return None
    reader = claim(default_readers(), Place(path, os.path.basename(os.path.abspath(path)), names, parent_names))
    return None if reader is None else reader.format


class StoreReader(Protocol):
    @property
    def format(self) -> str: ...

    @property
    def store_files(self) -> tuple[str, ...]: ...

    @property
    def host(self) -> str | None:
        """None: the store file sits in a plain folder (``mlflow.db``); a format: it sits in the folder of a row of
        that format and is looked for only there (a DVC project's ``.git``)."""

    def stamp(self, path: str) -> int:
        """A number that changes when the store's models may have changed; cheap (stats), it decides re-reading."""

    def read_store(self, path: str, root: str) -> list[ModelRecord]:
        """Every model recorded in the store file at ``path``; never raises."""


def default_readers() -> list[Reader]:
    from mlrepo.repo_index.readers.cascade import CascadeReader
    from mlrepo.repo_index.readers.dvc import DvcReader
    from mlrepo.repo_index.readers.generic import GenericReader
    from mlrepo.repo_index.readers.hf_model import HfModelReader
    from mlrepo.repo_index.readers.hf_trainer import HfTrainerReader
    from mlrepo.repo_index.readers.hydra import HydraReader
    from mlrepo.repo_index.readers.lightning import LightningReader
    from mlrepo.repo_index.readers.mlflow_file import MlflowFileReader
    from mlrepo.repo_index.readers.mlflow_models import MlflowModelReader
    from mlrepo.repo_index.readers.ray_tune import RayTuneReader
    from mlrepo.repo_index.readers.tensorboard import TensorBoardReader
    from mlrepo.repo_index.readers.wandb_run import WandbReader

    # MLflow first: its claim is decided from names alone, where Cascade's parses the meta.yaml every run has.
    # The generic reader claims any folder with metrics.json, so it is asked last. TensorBoard and generic are
    # companions: in a folder another reader claims, they add to its row (see ``claim``).
    # Hydra before the readers of the logs a job folder holds: it joins them into the job's row.
    return [MlflowFileReader(), MlflowModelReader(), CascadeReader(), HydraReader(), LightningReader(),
            HfTrainerReader(), HfModelReader(), WandbReader(), RayTuneReader(), DvcReader(), TensorBoardReader(),
            GenericReader()]


def default_store_readers() -> list[StoreReader]:
    from mlrepo.repo_index.readers.dvc_exps import DvcExpStore
    from mlrepo.repo_index.readers.mlflow_sqlite import MlflowSqliteReader

    return [MlflowSqliteReader(), DvcExpStore()]

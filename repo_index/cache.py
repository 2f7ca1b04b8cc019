"""The index cache: ``index.arrow`` plus a small JSON of what revalidation needs, in the user cache folder
(``MLREPO_CACHE_DIR`` overrides it), keyed by the root's real path. It is derived data: nothing is written into the
root for it, so no tool that owns a folder (MLflow's file store lists every folder of ``mlruns/``) trips over it.

Arrow IPC loads 100k rows in milliseconds. Both files are replaced atomically, so a reader never sees half a
cache; a cache that does not load (damaged, a FIFO in its place...) is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

import orjson
import platformdirs
import polars as pl
from mlrepo.repo_index.files import atomic_write
from mlrepo.repo_index.readers.parsing import open_regular, read_bytes
from mlrepo.repo_index.rows import MetricInfo, split_paths
from mlrepo.repo_index.scanner import Previous
from mlrepo.repo_index.state import (  # where the state lives is state.py's; kept importable here
    STATE_DIR,
    state_dir,
)
from mlrepo.repo_index.table import HIDDEN_SCHEMA

__all__ = ["CACHE_ENV", "STATE_DIR", "Cache", "atomic_write", "cache_dir", "state_dir"]

# 4: sizes are allocated bytes; MLflow repo is the store, line the experiment. 5: a DVC project's .git is a store
# (its experiments): a cache of 4 knows no such store, so a reused project's experiments would never be asked
CACHE_VERSION = 5
CACHE_ENV = "MLREPO_CACHE_DIR"


def cache_dir(root: str) -> str:
    """``<cache folder>/<root's name>-<hash of its real path>``."""
    base = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("mlrepo")
    real = os.path.realpath(root)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(real))[:40]
    return os.path.join(os.path.abspath(os.path.expanduser(base)), f"{name}-{digest}")


class Cache:
    def __init__(self, root: str) -> None:
        self.root = root
        self.dir = cache_dir(root)
        self.table_path = os.path.join(self.dir, "index.arrow")
        self.state_path = os.path.join(self.dir, "index.json")

    def prepare(self) -> None:
        """Create the cache folder if it can be; a root that refuses is indexed without a cache."""
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError:
            pass

    def load_table(self) -> tuple[pl.DataFrame, dict[str, MetricInfo], dict] | None:
        """The cached table, its metrics and the state beside it; None when there is no usable cache."""
        try:
            state = _loads(read_bytes(self.state_path))  # regular files only, never blocking on a FIFO
            if not isinstance(state, dict) or state.get("version") != CACHE_VERSION or state.get("root") != self.root:
                return None
            fd = open_regular(self.table_path)
            with os.fdopen(fd, "rb") as fh:
                frame = pl.read_ipc(fh)
            if any(frame.schema.get(name) != dtype for name, dtype in HIDDEN_SCHEMA.items()):
                return None  # written by another layout: rebuilt, never half-trusted
            info = {k: MetricInfo(**v) for k, v in state["metrics"].items()}
        except Exception:  # missing, stale or damaged: rebuilt from the disk, which is the truth anyway
            return None
        return frame, info, state

    def load(self) -> tuple[pl.DataFrame, Previous, dict[str, MetricInfo]] | None:
        """The cached table with what revalidation needs (``Previous``)."""
        loaded = self.load_table()
        if loaded is None:
            return None
        frame, info, state = loaded
        models = {
            rel: (fmt, split_paths(dirs), split_paths(meta), stamp)
            for rel, fmt, dirs, meta, stamp, store in zip(
                frame["_rel"].to_list(), frame["format"].to_list(), frame["_dirs"].to_list(),
                frame["_meta"].to_list(), frame["_stamp"].to_list(), frame["_store"].to_list(), strict=True)
            if store is None
        }
        previous = Previous(
            models=models,
            skeleton=state["skeleton"],
            stores={k: (v[0], v[1]) for k, v in state["stores"].items()},
        )
        return frame, previous, info

    def save(self, frame: pl.DataFrame, skeleton: dict[str, int], stores: dict[str, tuple[int, list[str]]],
             info: dict[str, MetricInfo]) -> bool:
        """Write the cache; False (and no error) when the disk refuses, the index still works without it. A folder
        whose name is not UTF-8 is kept in the table under an escaped name, which revalidation cannot match to the
        disk: such a tree is not cached (read afresh each time, never missing a model)."""
        if not all(map(_utf8, [*skeleton, *stores, *(m for _, models in stores.values() for m in models)])):
            return False
        state = {
            "version": CACHE_VERSION,
            "root": self.root,
            "skeleton": skeleton,
            "stores": stores,
            "metrics": {k: asdict(v) for k, v in info.items()},
        }
        try:
            os.makedirs(self.dir, exist_ok=True)
            atomic_write(self.table_path, lambda fh: frame.write_ipc(fh, compression="uncompressed"))
            atomic_write(self.state_path, lambda fh: fh.write(_dumps(state)))
        except OSError:
            return False
        return True


def _utf8(name: str) -> bool:
    return name.isascii() or not any("\udc80" <= c <= "\udcff" for c in name)


def _dumps(state: dict) -> bytes:
    """orjson, or for a root whose name is not UTF-8 (orjson refuses its surrogate escapes) the standard library's
    JSON, which writes them as ``\\udcXX`` and reads them back as they were."""
    try:
        return orjson.dumps(state)
    except TypeError:
        return json.dumps(state).encode("ascii")


def _loads(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)

"""What the live index knows of the tree, kept beside the table so that routing an event is a few dict look-ups:
the models by folder, the plain folders (the skeleton), the store files, and which models read metadata from a path
outside their own folder. One lock guards it all: the live worker writes, the observer thread reads."""

from __future__ import annotations

import bisect
import os
import threading
from dataclasses import dataclass
from typing import Any

from mlrepo.repo_index.index import Index
from mlrepo.repo_index.live.relpaths import join, under
from mlrepo.repo_index.rows import split_paths


@dataclass(slots=True)
class KnownModel:
    format: str
    dirs: tuple[str, ...]  # its folders, relative to it (split_paths: shared, immutable)
    meta: tuple[str, ...]  # its metadata files, relative to it (``..`` for outside)
    stamp: int
    store: str | None  # the store file (mlflow.db) the model was read from, if any


class ModelMap:
    """The models, folders and stores under the root, and the index they are the rows of."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.index: Index | None = None
        self.models: dict[str, KnownModel] = {}
        self.sorted: list[str] = []  # the model folders, sorted: what is under a folder is a slice
        self.skeleton: dict[str, int] = {}  # plain folder -> mtime (-1: list it again)
        self.stores: dict[str, tuple[int, list[str]]] = {}  # store file -> (stamp, its models)
        self.ext: dict[str, set[str]] = {}  # a path outside a model folder -> models whose metadata it is
        self.deferred: set[str] = set()  # new models held back until their metadata parses
        self.dirty = False  # the cache is behind the table
        self.n_dirs = 0  # folders in the tree (what inotify has to watch)
        self.grown = 0  # counts the changes that brought folders the watch may not follow yet

    def load(self, index: Index) -> None:
        raw = index.raw
        models: dict[str, KnownModel] = {}
        n_dirs = 0
        for rel, fmt, dirs, meta, stamp, store in zip(
                raw["_rel"].to_list(), raw["format"].to_list(), raw["_dirs"].to_list(), raw["_meta"].to_list(),
                raw["_stamp"].to_list(), raw["_store"].to_list(), strict=True):
            model = models[rel] = KnownModel(fmt, split_paths(dirs), split_paths(meta), stamp, store)
            n_dirs += len(model.dirs)
        with self.lock:
            self.index = index
            self.models = models
            self.sorted = sorted(models)
            self.skeleton = dict(index.stats.skeleton)
            self.stores = dict(index.stats.stores)
            self.ext = {}
            for rel, model in models.items():
                self._link(rel, model)
            self.n_dirs = n_dirs + len(self.skeleton)

    def _link(self, rel: str, model: KnownModel, add: bool = True) -> None:
        for meta in model.meta:
            if meta.startswith(".."):
                target = os.path.normpath(os.path.join(rel, meta))
                if target == ".":
                    target = ""
                if add:
                    self.ext.setdefault(target, set()).add(rel)
                else:
                    deps = self.ext.get(target)
                    if deps is not None:
                        deps.discard(rel)
                        if not deps:
                            del self.ext[target]

    def is_ledger_row(self, model: KnownModel) -> bool:
        """An archived/trashed model from mlrepo's ledger: its folder is not there."""
        return model.store is not None and model.store not in self.stores

    def ledger_rels(self) -> list[str]:
        """The models known only from the ledger (archived/trashed), by rel."""
        with self.lock:
            return [rel for rel, model in self.models.items() if self.is_ledger_row(model)]

    def known_under(self, rel: str) -> list[str]:
        with self.lock:
            if not rel:
                return list(self.sorted)
            lo = bisect.bisect_left(self.sorted, rel + "/")
            hi = bisect.bisect_left(self.sorted, rel + "0")  # "0" sorts right after "/"
            return self.sorted[lo:hi]

    def stale(self, rel: str) -> None:
        """``rel``'s listing changed: the saved skeleton must not trust its mtime. The caller holds the lock."""
        if rel in self.skeleton and self.skeleton[rel] != -1:
            self.skeleton[rel] = -1
            self.dirty = True

    def folders(self) -> list[str]:
        """Every folder known to be in the tree: plain folders and the models' own. The caller holds the lock."""
        return list(self.skeleton) + [join(r, d) for r, m in self.models.items() if m.store is None for d in m.dirs]

    def replace(self, index: Index, touched: list[str], rows: dict[str, dict[str, Any]]) -> None:
        """The table is now ``index``: follow it for the ``touched`` models (``rows``: their rows after, by rel)."""
        with self.lock:
            self.index = index
            for rel in touched:
                gone = self.models.pop(rel, None)
                if gone is not None:
                    self._link(rel, gone, add=False)
                    self.n_dirs -= len(gone.dirs)
                row = rows.get(rel)
                if row is not None:
                    model = KnownModel(row["format"], split_paths(row["_dirs"]), split_paths(row["_meta"]),
                                       row["_stamp"], row["_store"])
                    self.models[rel] = model
                    self._link(rel, model)
                    self.n_dirs += len(model.dirs)
                    if gone is None or gone.dirs != model.dirs:
                        self.grown += 1
            if len(touched) > 64:
                self.sorted = sorted(self.models)
            else:
                for rel in touched:
                    i = bisect.bisect_left(self.sorted, rel)
                    present = i < len(self.sorted) and self.sorted[i] == rel
                    if rel in self.models and not present:
                        self.sorted.insert(i, rel)
                    elif rel not in self.models and present:
                        del self.sorted[i]
            self.dirty = True

    def drop_under(self, rel: str) -> None:
        """Forget ``rel`` and the plain folders under it. The caller holds the lock."""
        for inner in [s for s in self.skeleton if s == rel or under(s, rel)]:
            del self.skeleton[inner]

    def clear(self, empty: Index) -> None:
        """The root is gone: nothing is known any more."""
        with self.lock:
            self.index = empty
            self.models, self.sorted, self.ext = {}, [], {}

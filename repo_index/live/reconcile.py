"""Turning due keys into re-read models and one ``ChangeBatch``, against the model map.

A ``model`` key re-reads that one folder with ``scan_model``; a ``tree`` key claims the folder or runs a ``Scanner``
rooted at it, with what is already known under it as the previous scan, so known models are revalidated with
``stat`` calls and never re-read. A model whose metadata does not parse is held back while its files keep changing
(a half-written ``meta.json`` is not an error yet) and is reported with its error only when it has stayed broken for
``settle`` seconds. Changes are applied with ``index.apply_changes`` (filter, concat, sort: never a scan)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from mlrepo.repo_index.archived import with_archived
from mlrepo.repo_index.index import Index, _drop_empty, apply_changes
from mlrepo.repo_index.live.events import ChangeBatch, ChangeEvent
from mlrepo.repo_index.live.modelmap import ModelMap
from mlrepo.repo_index.live.relpaths import is_dir, join, listdir, parent, under
from mlrepo.repo_index.live.routing import Key, Pending, Router
from mlrepo.repo_index.readers import Place, Reader, StoreReader
from mlrepo.repo_index.rows import _clean_text
from mlrepo.repo_index.scanner import (
    Found,
    Previous,
    Scanner,
    scan_model,
    store_models,
)

#: the order keys are looked at in one round: a tree scan covers the model keys inside it
ORDER = {"root": 0, "tree": 1, "store": 2, "claim": 3, "model": 4, "ledger": 5}
HIDDEN = ("_stamp", "_dirs", "_meta", "_source_id", "_nested")  # a change only there is not reported


@dataclass(slots=True)
class Work:
    """What one round of processing changes."""

    upserts: dict[str, Found] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    store_of: dict[str, str] = field(default_factory=dict)
    done_trees: list[str] = field(default_factory=list)
    ledger: bool = False  # mlrepo's ledger of archived/trashed models changed

    def remove(self, rel: str) -> None:
        self.removed.add(rel)
        self.upserts.pop(rel, None)


class Reconciler:
    """Reads what the due keys point at and applies it to the model map's index."""

    def __init__(self, root: str, known: ModelMap, router: Router, readers: Sequence[Reader],
                 store_readers: Sequence[StoreReader], cache_dir: str, settle: float, retry: float,
                 stats: dict[str, int]) -> None:
        self.root, self.known, self.router = root, known, router
        self.readers, self.store_readers = readers, store_readers
        self.by_format = {r.format: r for r in readers}
        self.store_files = {name: r for r in store_readers for name in r.store_files}
        self.cache_dir, self.settle, self.retry, self.stats = cache_dir, settle, retry, stats
        #: changes first seen up to this time are final, broken or not (a ``sync`` answers for the disk as it is)
        self.settled_before = float("-inf")

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def process(self, ready: list[tuple[Key, Pending]], resync: str | None) -> Work:
        work = Work()
        if resync:
            self.stats["resyncs"] += 1
            now = time.monotonic()
            self._tree("", Pending(now - self.settle, now - self.settle, now), work, rescan=True)
        ready.sort(key=lambda kp: (ORDER[kp[0][0]], kp[0][1].count("/"), kp[0][1]))
        for (kind, rel), pend in ready:
            if kind == "root":  # checked before every round
                continue
            if kind == "ledger":
                work.ledger = True
                self._back_in_place(work)
                continue
            if any(under(rel, t) or rel == t for t in work.done_trees) and kind != "tree":
                continue
            if kind == "tree":
                self._tree(rel, pend, work)
            elif kind == "claim":
                self._claim_key(rel, pend, work)
            elif kind == "model":
                self._model(rel, pend, work)
            elif kind == "store":
                self._store(rel, work)
        return work

    # -- reading ---------------------------------------------------------------------------------------------------
    def _settled(self, pend: Pending) -> bool:
        return pend.first <= self.settled_before or time.monotonic() - pend.last >= self.settle

    def _claim(self, rel: str, names: frozenset[str]) -> Reader | None:
        parent_names = listdir(self.abs(parent(rel))) or frozenset()
        place = Place(self.abs(rel), rel, names, parent_names)
        return next((r for r in self.readers if r.claim(place)), None)

    def _read(self, reader: Reader, rel: str, names: frozenset[str], pend: Pending, work: Work) -> None:
        found = scan_model(reader, Place(self.abs(rel), rel, names, frozenset()))
        self.stats["reads"] += 1
        if found.record.errors and not self._settled(pend):
            self.router.defer(rel, pend, self.retry)
            return
        with self.known.lock:
            self.known.deferred.discard(rel)
        work.upserts[rel] = found
        work.removed.discard(rel)
        # the store files this row's folder hosts (a DVC project's .git: its experiments) are asked again below
        hosted = [join(rel, n) for n in sorted(names)
                  if n in self.store_files and self.store_files[n].host == found.record.format]
        with self.known.lock:
            theirs = {m for store in hosted for m in self.known.stores.get(store, (0, []))[1]}
        # a folder that is now a model is not searched: what was known inside it is no longer a model
        for inner in self.known.known_under(rel):
            if inner not in theirs:
                work.remove(inner)
        with self.known.lock:
            self.known.drop_under(rel)
        for store in hosted:
            self._store(store, work)

    def _remove_tree(self, rel: str, work: Work) -> None:
        """``rel`` is gone: every model in and under it goes, and what the skeleton knew of it."""
        known = self.known
        if rel in known.models:
            work.remove(rel)
        for inner in known.known_under(rel):
            work.remove(inner)
        with known.lock:
            known.deferred = {d for d in known.deferred if not (d == rel or under(d, rel))}
            known.drop_under(rel)
            for store in [s for s in known.stores if under(s, rel)]:
                for model in known.stores.pop(store)[1]:
                    work.removed.add(model)
            known.stale(parent(rel))
            known.dirty = True

    def _model(self, rel: str, pend: Pending, work: Work) -> None:
        path = self.abs(rel)
        names = listdir(path) if is_dir(path) else None
        if names is None:
            with self.known.lock:
                self.known.deferred.discard(rel)
            self._remove_tree(rel, work)
            return
        model = self.known.models.get(rel)
        reader = self.by_format.get(model.format) if model is not None else None
        if reader is None or not reader.claim(Place(path, rel, names, frozenset())):
            reader = self._claim(rel, names)
        if reader is None:  # no longer a model (its metadata went): a plain folder, searched like any other
            with self.known.lock:
                self.known.deferred.discard(rel)
            if model is not None:
                work.remove(rel)
            self._tree(rel, pend, work, claimed=False)
            return
        self._read(reader, rel, names, pend, work)

    def _claim_key(self, rel: str, pend: Pending, work: Work) -> None:
        if rel in self.known.models:
            self._model(rel, pend, work)
            return
        path = self.abs(rel)
        names = listdir(path) if is_dir(path) else None
        if names is None:
            self._remove_tree(rel, work)
            return
        reader = self._claim(rel, names)
        if reader is not None:
            self._read(reader, rel, names, pend, work)

    def _back_in_place(self, work: Work) -> None:
        """Archived/trashed models whose folder is back (``restore`` renames it in, then drops the ledger entry) are
        read in this round: the model changes status under its id, and is never seen gone while its folder's own
        key waits (a busy machine can hold that key past the ledger's)."""
        now = time.monotonic()
        for rel in self.known.ledger_rels():
            if rel in work.upserts:
                continue
            path = self.abs(rel)
            names = listdir(path) if is_dir(path) else None
            reader = self._claim(rel, names) if names is not None else None
            if reader is not None and names is not None:
                self._read(reader, rel, names, Pending(now - self.settle, now - self.settle, now), work)

    def _previous_under(self, rel: str) -> Previous:
        """What is known under ``rel``, relative to it, as a Scanner's previous scan."""
        cut = len(rel) + 1 if rel else 0
        models = {}
        for inner in self.known.known_under(rel):
            model = self.known.models.get(inner)
            if model is not None and model.store is None:
                models[inner[cut:]] = (model.format, list(model.dirs), list(model.meta), model.stamp)
        with self.known.lock:
            skeleton = {s[cut:]: m for s, m in self.known.skeleton.items() if under(s, rel)}
            stores = {s[cut:]: (stamp, [os.path.relpath(self.abs(m), self.abs(rel)) for m in ms])
                      for s, (stamp, ms) in self.known.stores.items() if under(s, rel)}
        skeleton[""] = -1  # something changed here: list it again
        return Previous(models=models, skeleton=skeleton, stores=stores)

    def _tree(self, rel: str, pend: Pending, work: Work, claimed: bool | None = None, rescan: bool = False) -> None:
        """A folder that appeared, went, or came back: claim it, or search it with a Scanner rooted there."""
        known = self.known
        path = self.abs(rel)
        if not is_dir(path):
            self._remove_tree(rel, work)
            return
        names = listdir(path)
        if names is None:
            return
        if rel and claimed is None:
            if rel in known.models or rel in known.deferred:
                self._model(rel, pend, work)
                return
            reader = self._claim(rel, names)
            if reader is not None:
                self._read(reader, rel, names, pend, work)
                return
        previous = self._previous_under(rel)
        with known.lock:
            store_paths = [self.abs(r) for r, m in known.models.items()
                           if m.store in known.stores and (not rel or under(r, rel))] if known.stores else []
        scanner = Scanner(path, readers=self.readers, store_readers=self.store_readers, previous=previous,
                          extra_skip=[self.cache_dir, *store_paths])
        self.stats["subtree_scans"] += 1
        result = scanner.scan()
        seen: set[str] = set()
        for found in [*result.found]:
            inner = join(rel, found.rel)
            seen.add(inner)
            if found.record.errors and not self._settled(pend) and not rescan:
                self.router.defer(inner, pend, self.retry)
                continue
            work.upserts[inner] = Found(found.record, inner, found.dirs, found.stamp)
            work.removed.discard(inner)
            with known.lock:
                known.deferred.discard(inner)
        seen.update(join(rel, r) for r in result.reused)
        for found in result.store_found:
            inner = os.path.normpath(os.path.join(rel, found.rel)) if rel else found.rel
            seen.add(inner)
            work.upserts[inner] = Found(found.record, inner, found.dirs, found.stamp)
        seen.update(os.path.normpath(os.path.join(rel, r)) if rel else r for r in result.store_reused)
        for inner in known.known_under(rel) + ([rel] if rel in known.models else []):
            if inner not in seen and inner not in known.deferred:
                work.remove(inner)
        with known.lock:
            known.drop_under(rel)
            for srel, mtime in result.skeleton.items():
                known.skeleton[join(rel, srel)] = mtime
            for srel in [s for s in known.stores if under(s, rel)]:
                del known.stores[srel]
            for srel, (stamp, models) in result.stores.items():
                full = join(rel, srel)
                rels = [os.path.normpath(os.path.join(rel, m)) if rel else m for m in models]
                known.stores[full] = (stamp, rels)
                for m in rels:
                    work.store_of[m] = full
            if rel:
                known.stale(parent(rel))
            known.dirty = True
        work.done_trees.append(rel)

    def _store(self, file_rel: str, work: Work) -> None:
        known = self.known
        path = self.abs(file_rel)
        with known.lock:
            before = known.stores.get(file_rel)
        reader = self.store_files[os.path.basename(file_rel)]
        # a hosted store may be a folder (a .git); a plain folder's store file is a file (mlflow.db)
        if not (os.path.lexists(path) if reader.host is not None else os.path.isfile(path)):
            if before is not None:
                with known.lock:
                    known.stores.pop(file_rel, None)
                    known.dirty = True
                for model in before[1]:
                    work.removed.add(model)
            return
        stamp = reader.stamp(path)
        if before is not None and before[0] == stamp:
            return
        found, failed = store_models(reader, path, self.root, stamp)
        rels = []
        for item in found:
            work.upserts[item.rel] = item
            work.store_of[item.rel] = file_rel
            work.removed.discard(item.rel)
            rels.append(item.rel)
        for model in (before[1] if before else []):
            if model not in rels:
                work.removed.add(model)
        with known.lock:
            known.stores[file_rel] = (-1 if failed else stamp, rels)
            known.dirty = True

    # -- applying --------------------------------------------------------------------------------------------------
    def _with_ledger(self, index: Index) -> Index:
        """The rows of archived/trashed models taken afresh from mlrepo's ledger, as ``open_index`` merges them
        (a folder that is back wins its model's id, so they follow every change to the set of models)."""
        raw = index.raw.filter(pl.col("_store").is_null() | pl.col("_store").is_in(list(self.known.stores)))
        raw, info = with_archived(self.root, _drop_empty(raw), index.info)
        return Index(self.root, raw, {k: v for k, v in info.items() if k in raw.columns}, index.stats)

    def apply(self, work: Work) -> ChangeBatch | None:
        """Apply ``work`` to the index and the model map; the batch of what users see changed, if anything did."""
        if not work.upserts and not work.removed and not work.ledger:
            return None
        known = self.known
        old = known.index
        assert old is not None
        store_of = {rel: work.store_of[rel] for rel in work.upserts if rel in work.store_of}
        new = apply_changes(old, list(work.upserts.values()), work.removed, store_of)
        if work.ledger or work.removed or any(rel not in known.models for rel in work.upserts):
            new = self._with_ledger(new)
            before_ledger = set(known.ledger_rels())
            after_ledger = set(new.raw.filter(pl.col("_store").is_not_null() & ~pl.col("_store").is_in(
                list(known.stores)))["_rel"].to_list())
            work.removed |= before_ledger  # so both sides of the diff below see the ledger rows
            work.removed |= after_ledger
        touched = sorted(set(work.upserts) | work.removed)
        clean = {rel: _clean_text(rel)[0] for rel in touched}  # the table keeps undecodable names escaped

        def rows(index: Index) -> dict[str, dict[str, Any]]:
            frame = index.raw.filter(pl.col("_rel").is_in(list(clean.values())))
            return {row["_rel"]: row for row in frame.iter_rows(named=True)}

        before, after = rows(old), rows(new)
        events: list[ChangeEvent] = []
        for rel in touched:
            a, b = before.get(clean[rel]), after.get(clean[rel])
            if a is None and b is not None:
                events.append(ChangeEvent.of_row("added", b))
            elif a is not None and b is None:
                events.append(ChangeEvent.of_row("removed", a))
            elif a is not None and b is not None:
                same = ({k: v for k, v in a.items() if v is not None and k not in HIDDEN}
                        == {k: v for k, v in b.items() if v is not None and k not in HIDDEN})
                if not same:
                    events.append(ChangeEvent.of_row("updated", b))
        known.replace(new, touched, {rel: after[clean[rel]] for rel in touched if clean[rel] in after})
        if not events:
            return None
        return ChangeBatch(events, new, columns_changed=new.df.columns != old.df.columns)

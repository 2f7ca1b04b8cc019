"""One walk over a root: finds model folders, sizes them and reads their metadata in worker threads.

The walk lists every directory once (``os.scandir``); a directory a reader claims is sized by the same worker
that reads its metadata, so no second walk is needed for ``du``. With the previous scan at hand (the cache), a
directory whose mtime has not changed is not listed again, and a model whose stamp (the mtimes of its folders
and metadata files) has not changed is not read again: revalidation costs one ``stat`` per folder of a model and
one per metadata file (a file rewritten in place leaves its folder's mtime alone, so it keeps its own stat; a file
added to an inner folder changes only that folder's mtime, so inner folders keep theirs). Those stats, the bulk of
a warm start, run in a few threads: ``stat`` releases the GIL, so they use every core.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mlrepo.errors import in_words
from mlrepo.repo_index.readers import (
    Place,
    Reader,
    StoreReader,
    claim,
    default_readers,
    default_store_readers,
)
from mlrepo.repo_index.folder_walk import stamp_of, walk_model
from mlrepo.repo_index.readers.history import without_history
from mlrepo.repo_index.records import ModelRecord

#: Folders never searched for models: mlrepo's own, version control, environments, caches.
SKIP_DIRS = frozenset({
    ".mlrepo", ".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", ".dvc", ".cache",
})
# A folder to visit: its rel, its listing when already made, and whether readers were already asked about it.
Pending = tuple[str, "tuple[list[os.DirEntry], frozenset[str]] | None", bool]
#: revalidating fewer known models than this is not worth starting threads for
THREADED_CHECKS = 2000


@dataclass(slots=True)
class Found:
    """A model as scanned: the reader's record plus what revalidation needs."""

    record: ModelRecord
    rel: str
    dirs: list[str]  # folders inside the model, relative to it ("" is the model folder)
    stamp: int


@dataclass(slots=True)
class Previous:
    """What the last scan knew, so an unchanged tree is revalidated with ``stat`` calls only."""

    models: Mapping[str, tuple[str, Sequence[str], Sequence[str], int]]  # rel -> (format, dirs, meta_files, stamp)
    skeleton: dict[str, int]  # rel -> mtime_ns of each searched folder that is not a model
    stores: dict[str, tuple[int, list[str]]]  # store file rel -> (stamp, rels of its models)
    children: dict[str, list[str]] = field(default_factory=dict)
    store_names: dict[str, list[str]] = field(default_factory=dict)  # folder rel -> names of its store files

    def __post_init__(self) -> None:
        for rel in self.stores:
            folder, _, name = rel.rpartition("/")
            self.store_names.setdefault(folder, []).append(name)
        children = self.children
        for rel in (*self.skeleton, *self.models):
            if rel:
                parent = rel.rpartition("/")[0]
                if parent in children:
                    children[parent].append(rel)
                else:
                    children[parent] = [rel]


@dataclass(slots=True)
class ScanResult:
    found: list[Found]  # models read in this scan
    reused: list[str]  # rels of models taken unchanged from the previous scan
    skeleton: dict[str, int]
    stores: dict[str, tuple[int, list[str]]]
    store_found: list[Found]
    store_reused: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why) for folders that could not be listed

    def store_of(self) -> dict[str, str]:
        """Rel of each model read from a store file -> rel of that store file."""
        found = {f.rel for f in self.store_found}
        return {rel: store for store, (_stamp, rels) in self.stores.items() for rel in rels if rel in found}


def _mtime(path: str) -> int:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return -1


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def scan_model(reader: Reader, place: Place, entries: list[os.DirEntry] | None = None) -> Found:
    """Read one claimed folder and size it. Metric histories are not kept: the index stores the latest values,
    and curves are read on demand (``curves.py``)."""
    try:
        with without_history():
            record = reader.read(place)
    except Exception as exc:  # a reader bug must not sink the index: report it on the model
        record = ModelRecord(path=place.path, format=reader.format, name=os.path.basename(place.path))
        record.add_error(f"metadata {in_words(exc)}")
    walk = walk_model(place.path, entries, record.meta_files, record.nested)
    record.size_bytes, record.n_files = walk.size, walk.n_files
    dir_mtime = walk.dir_mtimes[""]
    if record.updated_at is None:
        record.updated_at = _utc(max(walk.hi, dir_mtime))
    if record.created_at is None:
        record.created_at = _utc(walk.lo if walk.n_files else dir_mtime)
    return Found(record, place.rel, walk.dirs, walk.stamp(place.path, record.meta_files))


def store_models(reader: StoreReader, file_path: str, root: str, stamp: int) -> tuple[list[Found], bool]:
    """Every model a store file records, each folder that exists sized; and whether the store failed to read
    (then its one record is the store file itself, with the reason: not sized, a ``.git`` is no model)."""
    with without_history():
        records = reader.read_store(file_path, root)
    found = []
    for record in records:
        if record.path != file_path and os.path.isdir(record.path):
            walk = walk_model(record.path)
            record.size_bytes, record.n_files = walk.size, walk.n_files
        found.append(Found(record, os.path.relpath(record.path, root), [], stamp))
    failed = len(records) == 1 and records[0].path == file_path and bool(records[0].errors)
    return found, failed


def usable_cores() -> int:
    """Cores this process may run on (its affinity), for the revalidation threads and the scan workers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _list(path: str) -> tuple[list[os.DirEntry], frozenset[str]]:
    with os.scandir(path) as it:
        entries = list(it)
    return entries, frozenset(e.name for e in entries)


class Scanner:
    """Walks ``root`` once; ``previous`` (from the cache) lets it skip what has not changed."""

    def __init__(
        self,
        root: str,
        readers: Iterable[Reader] | None = None,
        store_readers: Iterable[StoreReader] | None = None,
        previous: Previous | None = None,
        extra_skip: Iterable[str] = (),
    ) -> None:
        self.root = os.path.abspath(root)
        self._readers = list(readers) if readers is not None else None
        self._store_readers = list(store_readers) if store_readers is not None else None
        self.previous = previous
        self.skip_paths = {os.path.abspath(p) for p in extra_skip}

    # Readers load on first use: a revalidation that finds nothing changed never imports them (yaml, sqlite3...).
    @functools.cached_property
    def readers(self) -> list[Reader]:
        return self._readers if self._readers is not None else default_readers()

    @functools.cached_property
    def by_format(self) -> dict[str, Reader]:
        return {r.format: r for r in self.readers}

    @functools.cached_property
    def store_files(self) -> dict[str, StoreReader]:
        readers = self._store_readers if self._store_readers is not None else default_store_readers()
        return {name: r for r in readers for name in r.store_files}

    @functools.cached_property
    def store_hosts(self) -> frozenset[str]:
        """Formats whose rows' folders hold a store file (a DVC project's ``.git``: its experiments)."""
        return frozenset(r.host for r in self.store_files.values() if r.host is not None)

    # -- helpers -------------------------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _claim(self, place: Place) -> Reader | None:
        return claim(self.readers, place)

    # -- the walk ------------------------------------------------------------------------------------------
    def scan(self) -> ScanResult:
        result = self.start()
        self.run([("", None, True)], result)
        return result

    def start(self) -> ScanResult:
        """A fresh result for ``run``; a parallel scan (``parallel.py``) drives ``run`` and ``run_task`` itself."""
        self._found: list[Found] = []
        self._deferred: list[tuple[str, str]] = []
        self._checks: list[tuple[str, list[str]]] = []
        self._budget: int | None = None
        result = ScanResult(self._found, [], {}, {}, [], [])
        return result

    def run(self, stack: list[Pending], result: ScanResult, budget: int | None = None) -> None:
        """Search the folders on ``stack``, depth first. With ``budget`` (units of work: a folder searched or a
        model read), stop once it is spent: the folders still on the stack are left there, and claimed models are
        kept in ``deferred`` instead of being read, for other processes to share. Work, not time, decides, so a
        busy machine makes the same choices as an idle one."""
        self._stack = stack
        self._budget = budget
        while stack or self._checks:
            while stack:
                if self._budget is not None:
                    if self._budget <= 0:
                        return
                    self._budget -= 1
                self.step(stack.pop(), result)
            self._check_models(result)

    def step(self, item: Pending, result: ScanResult) -> None:
        """Visit one folder: claim it or list it, pushing the folders to search onto the stack."""
        prev, stack = self.previous, self._stack
        rel, listing, claimed = item
        path = self._abs(rel)
        mtime = _mtime(path)
        if mtime < 0:
            return
        if listing is None and prev is not None and prev.skeleton.get(rel) == mtime:
            result.skeleton[rel] = mtime
            self._visit_unchanged(rel, result, stack)
            return
        try:
            entries, names = listing or _list(path)
        except OSError as exc:
            result.skipped.append((path, exc.strerror or str(exc)))
            return
        if not claimed:  # a known plain folder that changed may have become a model
            place = Place(path, rel, names, self._names_of(os.path.dirname(rel)))
            reader = self._claim(place)
            if reader is not None:
                self._queue(reader, place, result, entries)
                return
        result.skeleton[rel] = mtime
        self._visit_listed(rel, entries, names, result, stack)

    @property
    def deferred(self) -> list[tuple[str, str]]:
        """(rel, format) of models claimed but not read, in the order they were found."""
        return self._deferred

    def run_task(self, task: Sequence[tuple[str, str | None]], result: ScanResult) -> None:
        """One share of a parallel scan: ``(rel, None)`` is a plain folder to search, ``(rel, format)`` a model
        to read. Folders are listed again here: a listing cannot travel between processes."""
        for rel, fmt in task:
            if fmt is None:
                self.run([(rel, None, True)], result)
                continue
            path = self._abs(rel)
            try:
                entries, names = _list(path)
            except OSError as exc:
                result.skipped.append((path, exc.strerror or str(exc)))
                continue
            place = Place(path, rel, names, self._names_of(os.path.dirname(rel)))
            found = scan_model(self._claim(place) or self.by_format[fmt], place, entries)
            self._found.append(found)
            self._hosted_stores(found.record.format, rel, names, result)
            if found.record.nested:
                self.run([(f"{rel}/{n}", None, False) for n in found.record.nested], result)

    def _queue(self, reader: Reader, place: Place, result: ScanResult,
               entries: list[os.DirEntry] | None = None) -> None:
        """Read and size a claimed folder here, or defer it (see ``run``). Threads only fought the walk for the
        GIL (measured); processes pay off only for shares of a large scan, hence the deferral."""
        if self._budget is not None:
            if self._budget <= 0:
                self._deferred.append((place.rel, reader.format))
                return
            self._budget -= 1
        found = scan_model(reader, place, entries)
        self._found.append(found)
        self._hosted_stores(found.record.format, place.rel, place.names, result)
        # sub-folders that are models of their own (the HF output dir's checkpoints) are searched as usual
        self._stack.extend((f"{place.rel}/{n}", None, False) for n in found.record.nested)

    def _visit_unchanged(self, rel: str, result: ScanResult, stack: list[Pending]) -> None:
        """A folder whose listing is as before: revisit its known children without listing it."""
        prev = self.previous
        assert prev is not None
        self._check_stores(rel, None, result)
        models = []
        for child in prev.children.get(rel, ()):
            if child in prev.skeleton:
                stack.append((child, None, False))
            elif child in prev.models:
                models.append(child)
        self._revalidate_models(rel, models, result)

    def _revalidate_models(self, rel: str, children: list[str], result: ScanResult) -> None:
        """Known models in folder ``rel``: checked (``_check_models``) once the folders on the stack are done,
        so that the stats of many folders can be spread over threads."""
        if children:
            self._checks.append((rel, children))

    def _stamps(self, check: tuple[str, list[str]]) -> list[int] | None:
        """The stamps the disk gives now for the known models of one folder; None when the folder went. Stats
        only, no shared state: this runs in the revalidation threads."""
        rel, children = check
        models = self.previous.models  # type: ignore[union-attr]
        try:
            fd = os.open(self._abs(rel), os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None  # the folder went between listing and now: its models went with it
        try:
            cut = len(rel) + 1 if rel else 0
            shared: dict[str, tuple[int, int]] = {}
            stamps = []
            for child in children:
                _fmt, dirs, meta_files, _stamp = models[child]
                stamps.append(stamp_of(child[cut:], dirs, meta_files, fd, shared))
            return stamps
        finally:
            os.close(fd)

    def _check_models(self, result: ScanResult) -> None:
        """The known models queued by ``_revalidate_models``: unchanged stamps are reused (their nested models
        queued in turn); the others are read again."""
        checks, self._checks = self._checks, []
        if not checks:
            return
        if sum(len(children) for _rel, children in checks) >= THREADED_CHECKS and len(checks) > 1:
            with ThreadPoolExecutor(max_workers=min(4, usable_cores())) as pool:
                stamps = list(pool.map(self._stamps, checks))
        else:
            stamps = [self._stamps(check) for check in checks]
        models = self.previous.models  # type: ignore[union-attr]
        for (_rel, children), now in zip(checks, stamps, strict=True):
            if now is None:
                continue
            changed = []
            for child, stamp in zip(children, now, strict=True):
                if stamp == models[child][3]:
                    result.reused.append(child)
                    if child in self.previous.store_names:  # type: ignore[union-attr]
                        self._check_stores(child, None, result)  # a DVC project's experiments
                    self._visit_nested(child, result)
                else:
                    changed.append(child)
            for child in changed:
                self._reread_model(child, result)

    def _visit_nested(self, rel: str, result: ScanResult) -> None:
        """An unchanged model's nested models (``ModelRecord.nested``), revalidated as its parent's would be."""
        prev = self.previous
        assert prev is not None
        inner = prev.children.get(rel)
        if not inner:
            return
        self._stack.extend((child, None, False) for child in inner if child in prev.skeleton)
        self._revalidate_models(rel, [child for child in inner if child in prev.models], result)

    def _reread_model(self, rel: str, result: ScanResult) -> None:
        path = self._abs(rel)
        try:
            entries, names = _list(path)
        except OSError:
            return  # gone
        # decided afresh: it may be another kind of model now, or one more reader may claim it (merged)
        reader = self._claim(Place(path, rel, names, self._names_of(os.path.dirname(rel))))
        if reader is None:
            self._stack.append((rel, (entries, names), True))  # now a plain folder: search inside it
            return
        self._queue(reader, Place(path, rel, names, frozenset()), result, entries)

    def _names_of(self, rel: str) -> frozenset[str]:
        try:
            return _list(self._abs(rel))[1]
        except OSError:
            return frozenset()

    def _visit_listed(self, rel: str, entries: list[os.DirEntry], names: frozenset[str],
                      result: ScanResult, stack: list[Pending]) -> None:
        self._check_stores(rel, names, result)
        known_models = []
        for entry in entries:
            if entry.name in SKIP_DIRS or entry.name.startswith(".Trash"):  # a volume's trash is no model
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            child = f"{rel}/{entry.name}" if rel else entry.name
            child_path = entry.path
            if child_path in self.skip_paths or child in result.skeleton:
                continue
            prev = self.previous
            if prev is not None and child in prev.models:
                known_models.append(child)
                continue
            if prev is not None and child in prev.skeleton:
                stack.append((child, None, False))
                continue
            try:
                child_entries, child_names = _list(child_path)
            except OSError as exc:
                result.skipped.append((child_path, exc.strerror or str(exc)))
                continue
            place = Place(child_path, child, child_names, names)
            reader = self._claim(place)
            if reader is not None:
                self._queue(reader, place, result, child_entries)
            else:
                stack.append((child, (child_entries, child_names), True))
        self._revalidate_models(rel, known_models, result)

    def _hosted_stores(self, fmt: str, rel: str, names: frozenset[str], result: ScanResult) -> None:
        """The store files in the folder of a row just read whose format hosts one (a ``dvc`` row's ``.git``)."""
        if fmt in self.store_hosts:
            self._check_stores(rel, names, result, fmt)

    def _check_stores(self, rel: str, names: frozenset[str] | None, result: ScanResult,
                      host: str | None = None) -> None:
        """Store files in this folder: re-read when their reader's stamp changed (``mlflow.db``: its mtime and
        WAL; a DVC project's ``.git``: its experiment refs). An unchanged folder (``names`` None) has the store
        files it had; a listed one is matched against the store readers of ``host`` (None: a plain folder; a
        format: the folder of a row of that format)."""
        if names is None:
            candidates = self.previous.store_names.get(rel, []) if self.previous else []
        else:
            candidates = [n for n in names if n in self.store_files and self.store_files[n].host == host]
        for name in candidates:
            reader = self.store_files.get(name)
            if reader is None:  # no reader for it any more (a scanner given other readers)
                continue
            file_rel = f"{rel}/{name}" if rel else name
            file_path = self._abs(file_rel)
            stamp = reader.stamp(file_path)
            prev = self.previous.stores.get(file_rel) if self.previous else None
            if prev is not None and prev[0] == stamp:
                result.stores[file_rel] = prev
                result.store_reused.extend(prev[1])
                continue
            found, failed = store_models(reader, file_path, self.root, stamp)
            self.skip_paths.update(os.path.abspath(f.record.path) for f in found if os.path.isdir(f.record.path))
            # a store that could not be read (locked, corrupt) is read again next time, changed or not
            result.stores[file_rel] = (-1 if failed else stamp, [f.rel for f in found])
            result.store_found.extend(found)

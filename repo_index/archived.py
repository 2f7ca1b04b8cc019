"""Models moved out of their folders by mlrepo (into an archive, or the trash) stay in the index.

When ``archive`` or ``prune`` moves a model, it writes one ledger entry, ``<root>/.mlrepo/ledger/<name>.json``,
holding the model's last index row (its raw metric keys included) and where the model went. ``open_index`` merges
these rows into the table with status ``archived`` or ``trashed``, so ``ls``, ``history`` and ``best --all-status``
still know the model. ``restore`` removes the entry once the folder is back.

An archived entry whose archive file is missing still shows, with the problem in ``error``. A trashed entry whose
trash item is gone (emptied, or restored by a file manager) is not shown: nothing is left to restore. When the
folder is in place again and scanned, the scanned row wins the model's id; a leftover entry gets an id of its own.
A merged row's hidden ``_store`` names its ledger entry (relative to the root), as a store row names its store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

import orjson
import polars as pl
from mlrepo.errors import MlrepoError
from mlrepo.repo_index.files import atomic_write, unlink_durably
from mlrepo.repo_index.readers.parsing import read_bytes
from mlrepo.repo_index.rows import MetricInfo, merge_info, model_id
from mlrepo.repo_index.state import checked_dir, real_state, state_dir
from mlrepo.repo_index.table import BASE_SCHEMA, HIDDEN_SCHEMA

LEDGER = "ledger"
VERSION = 1
MAX_ENTRY_BYTES = 16 * 1024 * 1024
KINDS = {"archive": "archived", "trash": "trashed"}
Kind = Literal["archive", "trash"]


def _text(value: object) -> str | None:
    """A field that must be text: None stays None, a number is kept as its text (so a check comparing it fails)."""
    return None if value is None else str(value)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Where a moved model went, and its last index row. ``to_json`` is the file's object (with ``version``
    added by ``write_entry``); ``from_json`` reads one back. Its paths are checked before anything acts on them
    (``commands.operations.trust.ledger_entry``, which returns this)."""

    kind: Kind
    id: str
    path: str
    row: dict[str, object]  # the model's index row when it was moved (raw metric keys included)
    rel: str | None = None
    moved_at: str | None = None
    metrics: dict[str, object] = field(default_factory=dict)
    # kind "archive"
    archive: str | None = None
    archive_sha256: str | None = None
    archive_bytes: int | None = None
    members: int | None = None
    content_bytes: int | None = None
    # kind "trash"
    trash_files: str | None = None
    trash_info: str | None = None
    trash_dir: str | None = None
    trash_topdir: str | None = None

    def to_json(self) -> dict[str, object]:
        base: dict[str, object] = {"kind": self.kind, "id": self.id, "rel": self.rel, "path": self.path,
                                   "moved_at": self.moved_at, "row": self.row, "metrics": self.metrics}
        if self.kind == "archive":
            return {**base, "archive": self.archive, "archive_sha256": self.archive_sha256,
                    "archive_bytes": self.archive_bytes, "members": self.members, "content_bytes": self.content_bytes}
        return {**base, "trash_files": self.trash_files, "trash_info": self.trash_info, "trash_dir": self.trash_dir,
                "trash_topdir": self.trash_topdir}

    @classmethod
    def from_json(cls, raw: dict) -> LedgerEntry:
        """An entry from its JSON object (ValueError: not a ledger entry). Paths are taken as they are: whoever
        acts on one checks it first."""
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        row, metrics = raw.get("row"), raw.get("metrics")
        return cls(kind=kind, id=str(raw.get("id")), path=str(raw.get("path")),
                   row=row if isinstance(row, dict) else {}, rel=_text(raw.get("rel")),
                   moved_at=_text(raw.get("moved_at")), metrics=metrics if isinstance(metrics, dict) else {},
                   archive=_text(raw.get("archive")), archive_sha256=_text(raw.get("archive_sha256") or None),
                   archive_bytes=_count(raw.get("archive_bytes")), members=_count(raw.get("members")),
                   content_bytes=_count(raw.get("content_bytes")), trash_files=_text(raw.get("trash_files")),
                   trash_info=_text(raw.get("trash_info")), trash_dir=_text(raw.get("trash_dir")),
                   trash_topdir=_text(raw.get("trash_topdir")))


def ledger_dir(root: str) -> str:
    """The ledger folder (for naming entries; ``write_entry`` creates it as a real folder)."""
    return os.path.join(state_dir(root), LEDGER)


def write_entry(root: str, name: str, entry: LedgerEntry) -> str:
    """Write ledger entry ``name`` atomically and durably (temp file, fsync, rename, fsync the folder)."""
    folder = checked_dir(root, LEDGER)
    path = os.path.join(folder, name + ".json")
    data = orjson.dumps({"version": VERSION, **entry.to_json()}, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    atomic_write(path, lambda fh: fh.write(data), durable=True)
    return path


def remove_entry(path: str) -> None:
    unlink_durably(path, missing_ok=True)


def read_entry(path: str) -> dict | None:
    """One ledger entry, or None when it cannot be read or is not one."""
    try:
        entry = orjson.loads(read_bytes(path, MAX_ENTRY_BYTES))  # a regular file, never a FIFO
    except (MlrepoError, orjson.JSONDecodeError):
        return None
    if isinstance(entry, dict) and entry.get("kind") in KINDS and isinstance(entry.get("row"), dict):
        return entry
    return None


def read_entries(root: str) -> Iterator[tuple[str, dict]]:
    """(path, entry) for every readable ledger entry under ``root``, in name order."""
    folder = real_state(root, LEDGER)  # a symlinked state folder is never read as mlrepo's
    if folder is None:
        return
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith("."))
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        entry = read_entry(path)
        if entry is not None:
            yield path, entry


def entry_present(entry: dict) -> tuple[bool, str | None]:
    """Whether the moved model still exists where the entry says; and what is wrong if it is not quite there."""
    if entry["kind"] == "trash":
        return os.path.lexists(str(entry.get("trash_files", ""))), None
    archive = str(entry.get("archive", ""))
    if os.path.isfile(archive):
        return True, None
    return True, f"archive file missing: {archive}"


def placed_entries(root: str, taken: set[str]) -> Iterator[tuple[str, str, dict, str | None]]:
    """(rel, entry path, entry, problem) for every entry whose model still exists where it went; ``rel`` is the
    model's, or one of its own when ``taken`` (the scanned models' rels, updated as entries are placed) has it."""
    for path, entry in read_entries(root):
        present, problem = entry_present(entry)
        if not present:
            continue
        rel = str(entry["row"].get("_rel") or entry.get("rel") or os.path.basename(path))
        if rel in taken:  # the folder is back (or another entry has it): this entry keeps an id of its own
            rel = f"{rel}#{os.path.basename(path)[:-5]}"
        taken.add(rel)
        yield rel, path, entry, problem


def _frame(root: str, rel: str, entry_path: str, entry: dict, problem: str | None
           ) -> tuple[pl.DataFrame, dict[str, MetricInfo]]:
    row = dict(entry["row"])
    row["_rel"] = rel
    # where the row comes from, as for a store's runs: never revalidated as a folder (the cache skips such rows)
    row["_store"] = os.path.relpath(entry_path, root)
    row["_dirs"], row["_meta"], row["_stamp"], row["_source_id"] = None, None, -1, None
    row["_nested"] = None
    row["id"] = model_id(rel)
    row["status"] = KINDS[entry["kind"]]
    if entry["kind"] == "archive" and entry.get("archive_bytes") is not None:
        row["size_bytes"] = int(entry["archive_bytes"])  # what it takes on disk now
    errors = [e for e in (row.get("error"), problem) if e]
    row["error"] = "; ".join(errors) if errors else None
    row["tags"] = [str(t) for t in row.get("tags") or []]
    columns: dict[str, pl.Series] = {}
    for name, dtype in {**BASE_SCHEMA, **HIDDEN_SCHEMA}.items():
        value = row.get(name)
        if isinstance(dtype, pl.Datetime) and isinstance(value, str):
            value = _parse_time(value)
        columns[name] = pl.Series(name, [value], dtype=dtype, strict=False)
    for name, value in row.items():
        if name.startswith("metrics."):
            columns[name] = pl.Series(name, [value], dtype=pl.Float64, strict=False)
        elif name.startswith("params."):
            columns[name] = pl.Series(name, [value])
    info = {k: MetricInfo(*v) for k, v in (entry.get("metrics") or {}).items()
            if isinstance(v, list) and len(v) == 4 and k in columns}
    return pl.DataFrame(columns), info


def _parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def with_archived(root: str, raw: pl.DataFrame, info: dict[str, MetricInfo]
                  ) -> tuple[pl.DataFrame, dict[str, MetricInfo]]:
    """``raw`` plus one row per archived or trashed model of ``root``; ``info`` plus their metrics."""
    taken = set(raw["_rel"].to_list()) if "_rel" in raw.columns else set()
    frames, infos = [], [info]
    for rel, path, entry, problem in placed_entries(root, taken):
        try:
            made = _frame(root, rel, path, entry, problem)
        except Exception:  # noqa: BLE001 - one odd entry never breaks the index
            continue
        frames.append(made[0])
        infos.append(made[1])
    if not frames:
        return raw, info
    merged = pl.concat([raw, *frames], how="diagonal_relaxed").sort("path", maintain_order=True)
    return merged, merge_info(infos)

"""Weights & Biases run folders: ``wandb/offline-run-<date>_<time>-<id>/`` and ``wandb/run-…/``.

An offline run keeps its config, history and summary only in ``run-<id>.wandb``: a 7-byte header (``:W&B``,
0xBEE1, version), then LevelDB-log chunks in 32 KiB blocks (``crc u32 | length u16 | type u8``, types FULL, FIRST,
MIDDLE, LAST), each record a protobuf ``Record``. This reader decodes them itself (``protowire``): no wandb import.
Read: the run record (17: id, project, display name, tags, config), config (5), history (2), summary (3) and exit
(18) records. A cut tail (a run still writing) ends the read quietly.

Params are the config (``_wandb`` is wandb's own); metrics the summary's numeric user keys (``_step``,
``_runtime``… are bookkeeping), else each key's last history value; curves the history. A run with an exit record
is finished (``failed`` with a non-zero exit code); without one it is ``running`` while its file was written
recently, else ``crashed`` (wandb's word for a run that stopped without saying so). Synced and older runs also
have ``files/wandb-summary.json`` and ``files/config.yaml`` (values under ``value``): they fill what the
``.wandb`` file lacks.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time

from mlrepo.repo_index.readers import Place
from mlrepo.repo_index.readers.binfile import read_log
from mlrepo.repo_index.readers.history import thin
from mlrepo.repo_index.readers.parsing import MetaError, flatten, load_file
from mlrepo.repo_index.readers.protowire import LEN, WireError, as_signed, fields, text
from mlrepo.repo_index.records import Metric, ModelRecord, to_number

BLOCK = 32768
CHUNK_HEADER = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
MAGIC = b":W&B" + (0xBEE1).to_bytes(2, "little")
# Record fields
HISTORY, SUMMARY, CONFIG, RUN, EXIT = 2, 3, 5, 17, 18
#: a run without an exit record whose file changed this recently may still be writing
RUNNING_WINDOW_S = 15 * 60
SUMMARY_FILE = "files/wandb-summary.json"
CONFIG_FILE = "files/config.yaml"


def wandb_file(names: frozenset[str]) -> str | None:
    return next((n for n in sorted(names) if n.startswith("run-") and n.endswith(".wandb")), None)


class WandbReader:
    format = "wandb"

    def claim(self, place: Place) -> bool:
        return wandb_file(place.names) is not None

    def read(self, place: Place) -> ModelRecord:
        path = place.path
        file = wandb_file(place.names)
        assert file is not None
        rec = ModelRecord.in_folder(path, self.format)
        wandb_dir = os.path.dirname(path)
        rec.repo = os.path.basename(os.path.dirname(wandb_dir)) or None  # the project folder holding wandb/
        rec.meta_files = [file, SUMMARY_FILE, CONFIG_FILE]
        run = RunLog()
        try:
            data, cut = read_log(os.path.join(path, file))
            if cut:
                rec.add_error(f"{file}: larger than can be read, only its start was read")
            problem = run.read(data)
            if problem:
                rec.add_error(f"{file}: {problem}")
        except MetaError as exc:
            rec.add_error(str(exc))
        rec.line = run.project or "wandb"
        rec.name = run.display_name or run.run_id or rec.name
        rec.source_id = run.run_id
        rec.tags = list(run.tags)
        rec.params = flatten({k: v for k, v in run.config.items() if k != "_wandb"})
        self._fill_from_files(rec, path, run)
        summary = {k: v for k, v in run.summary.items() if not k.startswith("_")}
        for key, series in run.history.items():
            if key.startswith("_"):
                continue
            value = to_number(summary.pop(key)) if key in summary else series[-1][1]
            rec.metrics.append(Metric(name=key, value=value, history=thin(series)))
        for key, raw in flatten(summary).items():
            value = to_number(raw)
            if value is not None and not key.startswith("_") and "._" not in key:
                rec.metrics.append(Metric(name=key, value=value))
        rec.status = self._status(run, os.path.join(path, file))
        return rec

    @staticmethod
    def _fill_from_files(rec: ModelRecord, path: str, run: RunLog) -> None:
        """``files/config.yaml`` and ``files/wandb-summary.json``, where present, fill what the log lacks."""
        for rel in (CONFIG_FILE, SUMMARY_FILE):
            full = os.path.join(path, rel)
            if not os.path.isfile(full):
                continue
            try:
                data = load_file(full)
            except MetaError as exc:
                rec.add_error(str(exc))
                continue
            if not isinstance(data, dict):
                rec.add_error(f"{rel}: expected a mapping")
                continue
            if rel == CONFIG_FILE:
                values = {k: v.get("value") if isinstance(v, dict) and "value" in v else v
                          for k, v in data.items() if k != "_wandb" and k != "wandb_version"}
                for key, value in flatten(values).items():
                    rec.params.setdefault(key, value)
            else:
                for key, value in data.items():
                    run.summary.setdefault(key, value)

    @staticmethod
    def _status(run: RunLog, file: str) -> str:
        if run.exit_code is not None:
            return "active" if run.exit_code == 0 else "failed"
        try:
            age = time.time() - os.stat(file).st_mtime
        except OSError:
            return "crashed"
        return "running" if age < RUNNING_WINDOW_S else "crashed"


class RunLog:
    """What a ``.wandb`` file says about its run, as its records are read in order."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.project: str | None = None
        self.display_name: str | None = None
        self.tags: list[str] = []
        self.config: dict[str, object] = {}
        self.summary: dict[str, object] = {}
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.exit_code: int | None = None

    def read(self, data: bytes) -> str | None:
        """Read every complete record; returns what was wrong, or None (a cut tail is not wrong)."""
        if len(data) < 7:
            return None if MAGIC.startswith(data[:6]) else "not a W&B run file"
        if data[:6] != MAGIC:
            return "not a W&B run file"
        try:
            for record in records(data):
                self._record(record)
        except (WireError, UnicodeDecodeError) as exc:
            return f"a record could not be read ({exc})"
        return None

    def _record(self, record: bytes) -> None:
        for number, wire, value in fields(record):
            if wire != LEN or not isinstance(value, memoryview):
                continue
            if number == HISTORY:
                self._history(value)
            elif number == SUMMARY:
                _apply_items(self.summary, value)
            elif number == CONFIG:
                _apply_items(self.config, value)
            elif number == RUN:
                self._run(value)
            elif number == EXIT:
                self.exit_code = 0
                for n, _w, v in fields(value):
                    if n == 1 and isinstance(v, int):
                        self.exit_code = as_signed(v)  # int32: negatives are 64-bit two's complement

    def _run(self, run: memoryview) -> None:
        for number, _wire, value in fields(run):
            if number == 1:
                self.run_id = text(value)
            elif number == 3:
                self.project = text(value)
            elif number == 8:
                self.display_name = text(value) or self.display_name
            elif number == 10:
                self.tags.append(text(value))
            elif number == 4 and isinstance(value, memoryview):
                _apply_items(self.config, value)
            elif number == 5 and isinstance(value, memoryview):
                _apply_items(self.summary, value)

    def _history(self, history: memoryview) -> None:
        row: dict[str, object] = {}
        step: int | None = None
        for number, _wire, value in fields(history):
            if number == 1 and isinstance(value, memoryview):
                key, item = _item(value)
                if key is not None:
                    row[key] = item
            elif number == 2 and isinstance(value, memoryview):
                for n, _w, v in fields(value):
                    if n == 1 and isinstance(v, int):
                        step = as_signed(v)
        if step is None:
            logged = to_number(row.get("_step"))
            step = int(logged) if logged is not None and math.isfinite(logged) else len(self.history.get("_step", ()))
        for key, raw in flatten(row).items():
            point = to_number(raw)
            if point is not None:
                self.history.setdefault(key, []).append((step, point))


def _item(item: memoryview) -> tuple[str | None, object]:
    """A Config/Summary/History item: its key (``nested_key`` parts joined by dots) and its decoded JSON value."""
    key: str | None = None
    nested: list[str] = []
    value: object = None
    for number, _wire, raw in fields(item):
        if number == 1:
            key = text(raw)
        elif number == 2:
            nested.append(text(raw))
        elif number == 16:
            try:
                value = json.loads(text(raw))
            except ValueError:
                value = text(raw)
    return (".".join(nested) if nested else key), value


def _apply_items(target: dict[str, object], record: memoryview) -> None:
    """A ConfigRecord/SummaryRecord: ``update`` items (1) set keys, ``remove`` items (2) drop them."""
    for number, _wire, value in fields(record):
        if not isinstance(value, memoryview):
            continue
        key, item = _item(value)
        if key is None:
            continue
        if number == 1:
            target[key] = item
        elif number == 2:
            target.pop(key, None)


def records(data: bytes) -> list[bytes]:
    """The complete records of a LevelDB-log stream that starts with the 7-byte W&B header."""
    out: list[bytes] = []
    pos, end = 7, len(data)
    pending: list[bytes] | None = None
    while True:
        space = BLOCK - pos % BLOCK
        if space < CHUNK_HEADER.size:  # a block's tail too small for a header is padding
            pos += space
        if pos + CHUNK_HEADER.size > end:
            return out
        _crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        start = pos + CHUNK_HEADER.size
        if start + length > end:
            return out  # the chunk being written
        chunk = data[start:start + length]
        pos = start + length
        if kind == FULL:
            out.append(chunk)
            pending = None
        elif kind == FIRST:
            pending = [chunk]
        elif kind == MIDDLE and pending is not None:
            pending.append(chunk)
        elif kind == LAST and pending is not None:
            pending.append(chunk)
            out.append(b"".join(pending))
            pending = None
        elif kind not in (FULL, FIRST, MIDDLE, LAST):
            raise WireError(f"unknown chunk type {kind} at byte {pos}")

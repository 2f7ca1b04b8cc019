"""The journal: every step that moves a model is written down (fsynced) *before* it is taken.

Each step's file under ``<state>/journal/`` is updated as it passes the points that decide how to recover, and removed
only once the step is complete. After a crash or ``kill -9`` the next prune, archive or restore finds the files left
behind and finishes or rolls back each step (``moves.recover``), so every model ends up whole in exactly one place.
"""

from __future__ import annotations

import os
import stat
import time

import orjson
from mlrepo.commands.operations.durable import fsync_dir, now_iso, write_json
from mlrepo.commands.operations.steps import JournalStep, to_fields
from mlrepo.errors import MlrepoError
from mlrepo.repo_index.readers.parsing import read_bytes
from mlrepo.repo_index.state import checked_dir, real_state, state_dir

JOURNAL = "journal"
LOG = "log.jsonl"
MAX_RECORD_BYTES = 16 * 1024 * 1024


def journal_dir(root: str) -> str:
    return os.path.join(state_dir(root), JOURNAL)


def pending(root: str) -> list[str]:
    """Journal files of steps that did not finish (oldest first); none when the journal is not a real folder."""
    folder = real_state(root, JOURNAL)
    if folder is None:
        return []
    try:
        return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                      if n.endswith(".json") and not n.startswith("."))
    except OSError:
        return []


def leftovers(root: str) -> list[str]:
    """Half-written journal or ledger files (``.tmp-*``) of a run killed while writing one."""
    from mlrepo.repo_index.archived import LEDGER

    out: list[str] = []
    for folder in (real_state(root, JOURNAL), real_state(root, LEDGER)):
        if folder is None:
            continue
        try:
            out.extend(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(".tmp-"))
        except OSError:
            pass
    return out


def needs_recovery(root: str) -> bool:
    return bool(pending(root) or leftovers(root))


class Step:
    """One journaled step: ``Step.begin`` writes it before anything happens; ``update`` records progress;
    ``done`` removes it (and appends one line to ``<root>/.mlrepo/log.jsonl``, a history of what was done)."""

    def __init__(self, root: str, path: str, record: dict) -> None:
        self.root = root
        self.path = path
        self.record = record

    @classmethod
    def begin(cls, root: str, op: str, **fields: object) -> "Step":
        folder = checked_dir(root, JOURNAL)
        name = f"{time.time_ns()}-{os.getpid()}-{op}.json"
        record = {"op": op, "pid": os.getpid(), "started": now_iso(), **fields}
        step = cls(root, os.path.join(folder, name), record)
        write_json(step.path, record)
        return step

    @classmethod
    def start(cls, root: str, data: JournalStep) -> "Step":
        """``begin`` for a typed step: its record holds the step's fields as ``to_fields`` writes them."""
        return cls.begin(root, data.op, **to_fields(data))

    @classmethod
    def load(cls, root: str, path: str) -> "Step":
        """A journal file as a step; ValueError when it is not a readable JSON object (a FIFO, a bomb...)."""
        try:
            record = orjson.loads(read_bytes(path, MAX_RECORD_BYTES))
        except MlrepoError as exc:
            raise ValueError(str(exc)) from None
        if not isinstance(record, dict):
            raise ValueError(f"{os.path.basename(path)}: not a journal record")
        return cls(root, path, record)

    def get(self, key: str, default: object = None) -> object:
        return self.record.get(key, default)

    def update(self, **fields: object) -> None:
        self.record.update(fields)
        write_json(self.path, self.record)

    def advance(self, data: JournalStep) -> None:
        """``update`` for a typed step: the record takes its new phase and fields."""
        self.update(**to_fields(data))

    def done(self, outcome: str, **extra: object) -> None:
        log_line = {"time": now_iso(), "op": self.record.get("op"), "outcome": outcome,
                    "id": self.record.get("id"), "path": self.record.get("path"), **extra}
        try:
            fd = os.open(os.path.join(checked_dir(self.root), LOG),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.write(fd, orjson.dumps(log_line) + b"\n")
            finally:
                os.close(fd)
        except (OSError, MlrepoError):
            pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        fsync_dir(os.path.dirname(self.path))

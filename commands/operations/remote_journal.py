"""The journal of a remote root, and its lock: both live in the bucket, under ``<root>/.mlrepo/``.

Why in the bucket and not on the machine that runs mlrepo: a model on object storage is shared by every machine
that can reach the bucket, and a removal killed halfway (its objects partly copied to the trash, partly deleted)
must be finished or rolled back by whichever machine comes next, not only by the one that died, which may never
come back (a spot instance, a CI runner). The state travels with the models, as DESIGN.md asks, in a prefix that no
format's reader reads. The price is a few requests per model (a PUT per journal write, a DELETE at the end), which
the plan counts.

A journal record is one object, ``.mlrepo/journal/<time>-<pid>-<op>.json``, written (one atomic PUT) before the
step's first change and rewritten at each phase that decides how to recover; deleted when the step is complete.
Its fields hold *root-relative* names only: the model's prefix, the step's id (``tid``, which names its trash
prefix, archive and ledger entry) and the objects' keys relative to the model. ``check_record`` refuses any record
whose names are not plain (``..``, empty segments, mlrepo's own state as a model); every key is then built by
joining the root prefix, so no record, however it was planted, can name a key outside the root. A refused record
is moved to ``.mlrepo/rejected/`` (kept as evidence) and reported.

The lock is ``.mlrepo/lock.json``, created with a conditional PUT (``If-None-Match: *``), so two machines cannot
both hold it. A lock left by a killed process of this machine (its pid is gone) is taken over; one held from
another machine is reported with its host and start time, and the user removes it if that run is gone.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import orjson
from mlrepo.commands.operations.durable import now_iso
from mlrepo.commands.operations.remote_keys import Bucket, Obj, OddKey, model_key, name, state_key
from mlrepo.errors import Busy

JOURNAL = "journal"
REJECTED = "rejected"
LOCK = "lock.json"
PHASES = {"trash": ("copying", "deleting"), "archive": ("writing", "archived"), "delete": ("deleting",),
          "restore-trash": ("copying",), "restore-archive": ("restoring", "restored")}


class Untrusted(ValueError):
    """A journal or ledger record that mlrepo would never have written."""


@dataclass(slots=True)
class RemoteStep:
    """One journaled step of one model: ``begin`` writes it before anything changes, ``update`` at each phase,
    ``done`` deletes it."""

    bucket: Bucket
    key: str  # root-relative: .mlrepo/journal/<name>.json
    record: dict

    @classmethod
    def begin(cls, bucket: Bucket, op: str, model: str, tid: str, objects: list[Obj], **fields: object
              ) -> "RemoteStep":
        record = {"op": op, "phase": PHASES[op][0], "model": model, "tid": tid,
                  "objects": [o.to_json() for o in objects], "host": socket.gethostname(), "pid": os.getpid(),
                  "started": now_iso(), **fields}
        step = cls(bucket, state_key(JOURNAL, f"{time.time_ns()}-{os.getpid()}-{op}.json"), record)
        bucket.put_json(step.key, record)
        return step

    @property
    def op(self) -> str:
        return str(self.record["op"])

    @property
    def model(self) -> str:
        return str(self.record["model"])

    @property
    def tid(self) -> str:
        return str(self.record["tid"])

    @property
    def objects(self) -> list[Obj]:
        return [Obj.from_json(o) for o in self.record["objects"]]

    def update(self, **fields: object) -> None:
        self.record.update(fields)
        self.bucket.put_json(self.key, self.record)

    def done(self) -> None:
        self.bucket.delete([self.key])


def check_record(record: object) -> dict:
    """The record when every name in it is one mlrepo writes; Untrusted otherwise (see the module's docstring)."""
    if not isinstance(record, dict):
        raise Untrusted("not a journal record")
    op = record.get("op")
    if op not in PHASES:
        raise Untrusted(f"unknown step {op!r}")
    if record.get("phase") not in PHASES[str(op)]:
        raise Untrusted(f"unknown phase {record.get('phase')!r} of a {op} step")
    try:
        model_key(record.get("model"))
        name(record.get("tid"), "tid")
        objects = record.get("objects")
        if not isinstance(objects, list) or not objects:
            raise Untrusted("field 'objects' is not a list of the model's objects")
        rels = [Obj.from_json(o).rel for o in objects]
    except OddKey as exc:
        raise Untrusted(str(exc)) from None
    if len(set(rels)) != len(rels):
        raise Untrusted("field 'objects' names one key twice")
    if op == "archive" and record.get("phase") == "archived" and not isinstance(record.get("sha256"), str):
        raise Untrusted("an archived step without the archive's sha256")
    return record


def pending(bucket: Bucket) -> list[str]:
    """Root-relative keys of the journal records left by steps that did not finish, oldest first."""
    return [f"{state_key(JOURNAL)}/{o.rel}" for o in bucket.listing(state_key(JOURNAL))]


def load(bucket: Bucket, key: str) -> RemoteStep:
    """A journal record as a step; Untrusted when it is unreadable or names what mlrepo would never write."""
    try:
        name(key.rsplit("/", 1)[-1], "journal record")
        data = bucket.get_bytes(key)
        if data is None:
            raise Untrusted("it vanished")
        record = check_record(orjson.loads(data))
    except (OddKey, orjson.JSONDecodeError) as exc:
        raise Untrusted(str(exc)) from None
    return RemoteStep(bucket, key, record)


def set_aside(bucket: Bucket, key: str) -> str:
    """Move a refused record to ``.mlrepo/rejected/`` (never deleted: it is evidence); returns its new key."""
    base = key.rsplit("/", 1)[-1]
    try:
        name(base, "record")
    except OddKey:
        base = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip("._")[:200] or "record"
    target = state_key(REJECTED, f"{time.time_ns()}-{base}")
    bucket.copy(key, target)
    bucket.delete([key])
    return bucket.url_of(target)


class RemoteLock:
    """``with RemoteLock(bucket):`` - one mover per remote root, across machines; Busy when another holds it."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.key = state_key(LOCK)
        self.held = False

    def __enter__(self) -> "RemoteLock":
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": now_iso()}
        for _attempt in range(2):
            try:
                self.bucket.put_json(self.key, me, create=True)
                self.held = True
                return self
            except FileExistsError:
                holder = self._holder()
                if holder is not None and holder.get("host") == me["host"] and not _alive(holder.get("pid")):
                    self.bucket.delete([self.key])  # left by a killed run of this machine
                    continue
                who = f" (host {holder.get('host')}, pid {holder.get('pid')}, since {holder.get('since')})" \
                    if holder else ""
                raise Busy(f"another mlrepo prune/archive/restore is working on {self.bucket.url}{who}; if it is "
                           f"gone, delete {self.bucket.url_of(self.key)}") from None
        raise Busy(f"could not take the lock {self.bucket.url_of(self.key)}")

    def _holder(self) -> dict | None:
        try:
            data = self.bucket.get_bytes(self.key, 4096)
            value = orjson.loads(data) if data else None
        except (OddKey, orjson.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.bucket.delete([self.key])
            self.held = False


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # unknown: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

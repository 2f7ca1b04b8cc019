"""Removal on object storage against a real S3 server (SeaweedFS on 127.0.0.1), with the real Cascade fixtures
uploaded: trash, archive, delete and restore (keys and contents equal after), the re-check that keeps a model a
writer changed after the plan, planted journal and ledger records refused, versioned buckets, and real SIGKILLs at
every fault point of every step followed by recovery, with 0 models lost."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from remote_run import Root, open_root
from treeutil import FIXTURES

pytest.importorskip("obstore")
import obstore as obs  # noqa: E402
from mlrepo.commands.operations import tarzst  # noqa: E402
from mlrepo.commands.operations.remote_execute import (  # noqa: E402
    execute_remote,
    plan_remote_restore,
    recover_remote,
    restore_remote,
)
from mlrepo.commands.operations.remote_plan import plan_remote_removal  # noqa: E402
from mlrepo.errors import Busy  # noqa: E402

CASCADE = FIXTURES / "cascade"
MODELS = ["cascade-0.18/tabular/rf_baseline/00000", "cascade-0.12/logreg/00001", "cascade-0.7/ridge/00002"]
KEPT = ["cascade-0.18/tabular/rf_baseline/00001", "cascade-0.12/logreg/00000", "cascade-0.12/logreg/meta.json"]
RUNNER = Path(__file__).with_name("remote_run.py")


class World:
    """The Cascade fixtures uploaded below ``<bucket>/<prefix>``, canaries beside the root, and the checks."""

    def __init__(self, s3, bucket: str, prefix: str, models: list[str] = MODELS) -> None:
        self.env, self.bucket, self.prefix = s3.env, bucket, prefix
        self.root: Root = open_root(s3.env, bucket, prefix)
        self.store = self.root.store
        self.models = models
        self.local: dict[str, str] = {}  # key -> sha256 of the fixture file
        for path in sorted(p for part in [*models, *KEPT] for p in [CASCADE / part, *(CASCADE / part).rglob("*")]):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(CASCADE).as_posix()}"
                obs.put(self.store, key, path.read_bytes())
                self.local[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        self.canaries = {f"{prefix}-old/{m}/meta.json": b"a sibling prefix" for m in MODELS[:1]}
        self.canaries["victim/precious.txt"] = b"outside the root"
        for key, data in self.canaries.items():
            obs.put(self.store, key, data)
        self.original = self.keys()

    def keys(self, prefix: str | None = None) -> dict[str, str | None]:
        """Every key below ``prefix`` (the whole bucket by default) with its ETag."""
        return {m["path"]: m["e_tag"] for batch in obs.list(self.store, prefix) for m in batch}

    def data(self, key: str) -> bytes:
        return bytes(obs.get(self.store, key).bytes())

    def models_here(self) -> dict[str, dict[str, str | None]]:
        return {m: {k: e for k, e in self.original.items() if k.startswith(f"{self.prefix}/{m}/")}
                for m in self.models}

    def state(self, part: str) -> dict[str, str | None]:
        return self.keys(f"{self.prefix}/.mlrepo/{part}")

    def ledger(self) -> list[dict]:
        return [orjson.loads(self.data(k)) for k in self.state("ledger")]

    def untouched_outside(self) -> None:
        outside = {k: e for k, e in self.keys().items() if not k.startswith(self.prefix + "/")}
        assert outside == {k: e for k, e in self.original.items() if not k.startswith(self.prefix + "/")}
        for key, data in self.canaries.items():
            assert self.data(key) == data

    def restored_exactly(self) -> None:
        """Keys, ETags and contents (sha256 against the fixture files) as before; nothing of mlrepo's left."""
        now = self.keys()
        assert {k: e for k, e in now.items() if not k.startswith(f"{self.prefix}/.mlrepo/")} == self.original
        for key, sha in self.local.items():
            assert hashlib.sha256(self.data(key)).hexdigest() == sha, key
        assert not [k for k in now if k.startswith(f"{self.prefix}/.mlrepo/")]

    def run(self, op: str, models: list[str] | None = None, fault: str | None = None, log: Path | None = None,
            marker: Path | None = None) -> str | None:
        """The operation in a process of its own; with ``fault``, SIGKILLed when it reaches that point. Returns
        the point it was killed at, or None when it ran to the end."""
        env = {**os.environ, **self.env}
        if fault is not None:
            assert marker is not None
            marker.unlink(missing_ok=True)
            env.update(MLREPO_FAULT_AT=fault, MLREPO_FAULT_FILE=str(marker))
        if log is not None:
            env["MLREPO_FAULT_LOG"] = str(log)
        spec = {"env": self.env, "bucket": self.bucket, "prefix": self.prefix, "op": op, "models": models or []}
        proc = subprocess.Popen([sys.executable, str(RUNNER), json.dumps(spec)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60  # a bound for a hung process, not a wait
        while proc.poll() is None:
            if marker is not None and marker.exists() and marker.read_text().endswith("\n"):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stderr.close()
                return marker.read_text().split(maxsplit=1)[1].strip()
            assert time.monotonic() < deadline, f"{op} hung"
            time.sleep(0.005)
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert proc.returncode == 0, err
        return None


@pytest.fixture(scope="module")
def shared_bucket(s3) -> str:
    """One bucket for the module (each test works in a prefix of its own): creating one takes a second."""
    name = f"removal-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(name)
    return name


@pytest.fixture
def world(s3, shared_bucket) -> World:
    return World(s3, shared_bucket, f"team/{uuid.uuid4().hex[:8]}")


def test_trash_then_restore_brings_back_every_key_and_byte(world):
    plan = plan_remote_removal(world.root, MODELS, "trash")
    assert [d.problem for d in plan.decisions] == [None, None, None] and plan.versioned is False
    report = execute_remote(world.root, plan)
    assert [o.action for o in report.outcomes] == ["trashed"] * 3, report.outcomes
    assert report.cost == plan.cost  # the plan said what it would cost, request by request
    now = world.keys()
    for model, keys in world.models_here().items():
        assert keys and not any(k in now for k in keys), model
    trashed = world.state("trash")
    assert sorted(trashed.values()) == sorted(e for keys in world.models_here().values() for e in keys.values())
    assert {e["model"] for e in world.ledger()} == set(MODELS) and not world.state("journal")
    world.untouched_outside()

    items, refused = plan_remote_restore(world.root, everything=True)
    assert not refused and len(items) == 3
    report = restore_remote(world.root, items)
    assert [o.action for o in report.outcomes] == ["restored"] * 3, report.outcomes
    world.restored_exactly()


def test_archive_then_restore_brings_back_every_key_and_byte(world, tmp_path):
    plan = plan_remote_removal(world.root, MODELS, "archive")
    report = execute_remote(world.root, plan)
    assert [o.action for o in report.outcomes] == ["archived"] * 3, report.outcomes
    assert report.cost == plan.cost
    archives = world.state("archive")
    assert len(archives) == 3 and all(k.endswith(".tar.zst") for k in archives)
    entry = next(e for e in world.ledger() if e["model"] == MODELS[0])
    spool = tmp_path / "a.tar.zst"
    spool.write_bytes(world.data(f"{world.prefix}/{entry['archive']}"))
    listing, sha, _size = tarzst.read_listing(str(spool))  # a standard .tar.zst, every member as uploaded
    assert sha == entry["archive_sha256"]
    for key, local_sha in world.local.items():
        if key.startswith(f"{world.prefix}/{MODELS[0]}/"):
            assert listing[key[len(world.prefix) + len(MODELS[0]) + 2:]][4] == local_sha
    assert not any(k.startswith(f"{world.prefix}/{m}/") for m in MODELS for k in world.keys())

    items, _ = plan_remote_restore(world.root, everything=True)
    report = restore_remote(world.root, items)
    assert [o.action for o in report.outcomes] == ["restored"] * 3, report.outcomes
    assert report.cost.put == sum(i.cost.put for i in items) + 1
    world.restored_exactly()


def test_delete_removes_exactly_the_models_objects(world):
    plan = plan_remote_removal(world.root, MODELS[:1], "delete")
    report = execute_remote(world.root, plan)
    assert [o.action for o in report.outcomes] == ["deleted"] and report.cost == plan.cost
    gone = set(world.models_here()[MODELS[0]])
    assert set(world.keys()) == set(world.original) - gone and gone
    world.untouched_outside()


def test_a_model_a_writer_changed_after_the_plan_is_kept(world):
    plan = plan_remote_removal(world.root, MODELS[:2], "trash")
    late = f"{world.prefix}/{MODELS[0]}/checkpoint-late.bin"
    obs.put(world.store, late, b"written after the plan")
    rewritten = f"{world.prefix}/{MODELS[1]}/meta.json"
    obs.put(world.store, rewritten, b"[]")
    report = execute_remote(world.root, plan)
    assert [o.action for o in report.outcomes] == ["skipped", "skipped"]
    assert "added ['checkpoint-late.bin']" in report.outcomes[0].message
    assert "rewritten ['meta.json']" in report.outcomes[1].message
    now = world.keys()
    assert late in now and all(k in now for k in world.models_here()[MODELS[0]])
    assert not world.state("trash") and not world.state("ledger") and not world.state("journal")


def test_odd_and_outside_models_are_refused_in_the_plan(world):
    plan = plan_remote_removal(world.root, ["../victim", "/abs", "a//b", ".mlrepo/trash", "no/such/model"], "trash")
    assert not plan.movable and all(d.problem for d in plan.decisions)
    assert execute_remote(world.root, plan).outcomes == []
    assert world.keys() == world.original


PLANTED = {  # every name a journal record holds, pointed out of the root or into mlrepo's state
    "model-dotdot": {"model": "../victim"}, "model-absolute": {"model": "/victim"},
    "model-state": {"model": ".mlrepo/ledger"}, "model-empty-segment": {"model": "a//b"},
    "tid-dotdot": {"tid": "../../victim"}, "tid-slash": {"tid": "x/../../victim"},
    "object-dotdot": {"objects": [{"rel": "../../../victim/precious.txt", "size": 16, "etag": None}]},
    "object-not-a-dict": {"objects": ["precious.txt"]}, "no-objects": {"objects": []},
    "unknown-op": {"op": "rm-rf"}, "unknown-phase": {"phase": "anything"},
}


@pytest.mark.parametrize("op", ["trash", "delete", "archive", "restore-trash", "restore-archive"])
def test_a_planted_journal_record_never_touches_a_key_outside_the_root(world, op):
    phase = {"trash": "deleting", "delete": "deleting", "archive": "archived", "restore-trash": "copying",
             "restore-archive": "restored"}[op]
    for case, fields in PLANTED.items():
        record = {"op": op, "phase": phase, "model": MODELS[0], "tid": "20260101T000000-1-x", "sha256": "0" * 64,
                  "copies": {}, "etags": {}, "objects": [{"rel": "meta.json", "size": 1, "etag": None}], **fields}
        obs.put(world.store, f"{world.prefix}/.mlrepo/journal/1-1-{op}.json", orjson.dumps(record))
        messages = recover_remote(world.root)
        assert len(messages) == 1 and messages[0].startswith("error: refused journal record"), (case, messages)
        world.untouched_outside()
        assert {k: e for k, e in world.keys().items() if not k.startswith(f"{world.prefix}/.mlrepo/")} == world.original, case
        rejected = world.state("rejected")
        assert orjson.loads(world.data(max(rejected))) == record, case
        assert not world.state("journal"), case
    assert len(world.state("rejected")) == len(PLANTED)


def test_a_planted_ledger_entry_is_refused_and_set_aside(world):
    entry = {"kind": "trash", "model": "../victim", "tid": "t1", "objects": [{"rel": "precious.txt", "size": 16,
                                                                          "etag": None}]}
    obs.put(world.store, f"{world.prefix}/.mlrepo/ledger/t1.json", orjson.dumps(entry))
    items, refused = plan_remote_restore(world.root, everything=True)
    assert items == [] and len(refused) == 1 and "refused ledger entry t1.json" in refused[0]
    world.untouched_outside()
    assert not world.state("ledger") and len(world.state("rejected")) == 1


def test_versioned_bucket_the_plan_says_no_space_is_freed_and_trash_restore_still_exact(s3):
    name = f"ver-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(name, versioned=True)
    world = World(s3, name, "models")
    plan = plan_remote_removal(world.root, MODELS[:1], "delete")
    assert plan.versioned is True and plan.bytes_freed == 0 and "noncurrent versions" in plan.space_note
    plan = plan_remote_removal(world.root, MODELS[:1], "trash")
    assert [o.action for o in execute_remote(world.root, plan).outcomes] == ["trashed"]
    items, _ = plan_remote_restore(world.root, everything=True)
    assert [o.action for o in restore_remote(world.root, items).outcomes] == ["restored"]
    world.restored_exactly()


# -- real kills ---------------------------------------------------------------------------------------------------
def whole_once(world: World, deleted_ok: bool = False) -> dict[str, str]:
    """Where each model is after recovery, checked whole (ETags, and for archives every member's sha256 against
    the fixture file); nothing left over in the journal, the trash, the archive folder or the lock."""
    now = world.keys()
    entries = {e["model"]: e for e in world.ledger()}
    places: dict[str, str] = {}
    referenced: set[str] = set()
    for model, keys in world.models_here().items():
        here = [k for k in keys if k in now]
        found = []
        if here:
            assert {k: now[k] for k in here} == keys, f"{model}: partly removed"
            found.append("objects")
        entry = entries.get(model)
        if entry and entry["kind"] == "trash":
            copies = {f"{world.prefix}/{entry['trash']}/{o['rel']}": o for o in entry["objects"]}
            referenced.update(copies)
            assert all(now.get(k) == entry["copies"][o["rel"]] and o["etag"] == world.original[
                f"{world.prefix}/{model}/{o['rel']}"] for k, o in copies.items()), f"{model}: trash copy damaged"
            found.append("trash")
        elif entry:
            key = f"{world.prefix}/{entry['archive']}"
            referenced.add(key)
            data = world.data(key)
            assert hashlib.sha256(data).hexdigest() == entry["archive_sha256"], f"{model}: archive damaged"
            for o in entry["objects"]:
                assert entry["sha256"][o["rel"]] == world.local[f"{world.prefix}/{model}/{o['rel']}"]
            found.append("archive")
        if not found and deleted_ok:
            found.append("deleted")
        assert len(found) == 1, f"{model}: in {found or 'no place'}"
        places[model] = found[0]
    leftovers = [k for k in now if k.startswith(f"{world.prefix}/.mlrepo/") and "/.mlrepo/ledger/" not in k
                 and k not in referenced]
    assert not leftovers, leftovers
    world.untouched_outside()
    return places


OPS = ["trash", "archive", "delete", "restore-trash", "restore-archive"]


@pytest.mark.parametrize("op", OPS)
def test_kill_at_every_fault_point_loses_no_model(s3, shared_bucket, tmp_path, op):
    """SIGKILL at each fault point the operation passes (counted by a first, unkilled run), then recovery: every
    model whole in exactly one place, and a restore of everything gives back every key and byte."""
    kill_everywhere(s3, shared_bucket, tmp_path, op, MODELS[:1], second_kill=False)


@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
def test_kill_twice_with_three_models_loses_no_model(s3, shared_bucket, tmp_path, op):
    """As above with three models, and the recovery itself killed at its first fault point (a crash while
    recovering from a crash) before a last recovery runs."""
    kill_everywhere(s3, shared_bucket, tmp_path, op, MODELS, second_kill=True)


def kill_everywhere(s3, bucket: str, tmp_path: Path, op: str, models: list[str], second_kill: bool) -> None:
    first = "trash" if op == "restore-trash" else "archive" if op == "restore-archive" else None
    run_op = "restore" if first else op
    tag = uuid.uuid4().hex[:6]

    def fresh(n: int) -> World:
        world = World(s3, bucket, f"kill-{op}-{tag}-{n}", models)
        if first:
            execute_remote(world.root, plan_remote_removal(world.root, models, first))
        return world

    log = tmp_path / "points.log"
    assert fresh(0).run(run_op, models, log=log) is None
    points = [line.split(maxsplit=1)[1] for line in log.read_text().splitlines()]
    assert len(points) >= (2 if op == "delete" else 4) * len(models), points
    killed, second = [], []
    for k in range(1, len(points) + 1):
        world = fresh(k)
        at = world.run(run_op, models, fault=str(k), marker=tmp_path / "marker")
        assert at == points[k - 1]
        killed.append(at)
        assert f"{world.prefix}/.mlrepo/lock.json" in world.keys()  # it died holding it: the next run takes over
        if second_kill:
            again = world.run("recover", fault="1", marker=tmp_path / "marker")
            if again is not None:
                second.append(f"{at} -> {again}")
        recover_remote(world.root)
        places = whole_once(world, deleted_ok=op == "delete")
        if op == "delete":
            assert set(places.values()) <= {"objects", "deleted"}
            continue
        items, _ = plan_remote_restore(world.root, everything=True)
        assert all(o.ok for o in restore_remote(world.root, items).outcomes)
        world.restored_exactly()
    assert len(killed) == len(points)
    print(f"{op}: killed at {len(killed)} points, {len(second)} recoveries killed again: {killed} {second}")


def test_a_lock_held_from_another_host_is_reported_not_broken(world):
    lock = f"{world.prefix}/.mlrepo/lock.json"
    obs.put(world.store, lock, orjson.dumps({"host": "gpu-box-7", "pid": 4242, "since": "2026-01-01T00:00:00"}))
    with pytest.raises(Busy, match="host gpu-box-7, pid 4242") as caught:
        execute_remote(world.root, plan_remote_removal(world.root, MODELS[:1], "trash"))
    assert "delete s3://" in str(caught.value) and lock in world.keys()
    assert {k: e for k, e in world.keys().items() if not k.startswith(f"{world.prefix}/.mlrepo/")} == world.original

"""mlrepo's own state is untrusted: journal and ledger records planted by anyone who can write into ROOT never make
mlrepo move, write or delete anything outside ROOT.

Every path field of every journal record kind (in each phase its recovery distinguishes) and of every ledger entry
kind is pointed outside ROOT four ways (an absolute path, a path through a symlink inside ROOT that leads out, a
``..`` path, a ``link/..`` path that stays in ROOT on paper only); state folders are replaced by symlinks that lead out. A canary tree outside ROOT (and the user's own
trash) must list and hash the same afterwards, and each planted record must be refused and set aside.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from mlrepo.commands.operations import moves
from mlrepo.commands.operations.trust import Untrusted, journal_record, ledger_entry
from mlrepo.repo_index.state import state_dir
from treeutil import age, mlrepo, snapshot, trash_env

#: the kind of thing each path field names, so that its outside twin exists and looks the part
FIELD_KIND = {
    "path": "folder", "tomb": "folder", "staging": "folder", "top": "folder", "tmp": "archive", "archive": "archive",
    "ledger": "json", "db": "db", "trash_files": "trashed", "files": "trashed", "trash_info": "info", "info": "info",
    "trash_dir": "trash", "trash_topdir": "folder",
}
OUTSIDE = {"folder": "victim", "archive": "victim.tar.zst", "json": "victim.json", "db": "mlflow.db",
           "trashed": "Trash/files/victim", "info": "Trash/info/victim.trashinfo", "trash": "Trash"}
VARIANTS = ("absolute", "through-symlink", "dotdot", "symlink-dotdot")


class World:
    """ROOT with models and mlrepo's state, a canary tree outside it, the user's trash, and a link that leads out."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.canary = base / "canary"
        self.env = trash_env(base / "user")
        self.trash = Path(self.env["XDG_DATA_HOME"]) / "Trash"
        for i in range(3):
            model = self.root / "line" / f"{i:05d}"
            model.mkdir(parents=True)
            (model / "meta.json").write_text(json.dumps(
                [{"type": "model", "metrics": [{"name": "f1", "value": 0.5 + i / 10}]}]))
            (model / "weights.bin").write_bytes(os.urandom(2048))
        (self.canary / "victim" / "sub").mkdir(parents=True)
        (self.canary / "victim" / "precious.txt").write_text("do not touch")
        (self.canary / "victim" / "sub" / "deep.bin").write_bytes(os.urandom(512))
        (self.canary / "victim.tar.zst").write_bytes(b"not ours")
        (self.canary / ".tmp-victim.tar.zst").write_bytes(b"not ours either")
        (self.canary / "victim.json").write_text("{}")
        (self.canary / "mlflow.db").write_bytes(b"SQLite format 3\x00")
        (self.canary / "Trash" / "files" / "victim").mkdir(parents=True)
        (self.canary / "Trash" / "files" / "victim" / "x").write_text("x")
        (self.canary / "Trash" / "info").mkdir()
        (self.canary / "Trash" / "info" / "victim.trashinfo").write_text(
            f"[Trash Info]\nPath={self.root / 'line' / '00000'}\nDeletionDate=2026-01-01T00:00:00\n")
        # an item of the user's own trash that came from elsewhere: never pulled into ROOT
        (self.trash / "files" / "secret").mkdir(parents=True)
        (self.trash / "files" / "secret" / "diary.txt").write_text("mine")
        (self.trash / "info").mkdir()
        (self.trash / "info" / "secret.trashinfo").write_text(
            "[Trash Info]\nPath=/home/someone/secret\nDeletionDate=2026-01-01T00:00:00\n")
        os.symlink(self.canary, self.root / "escape")
        age(self.root)
        self.state = Path(state_dir(str(self.root)))
        for sub in ("journal", "ledger", "archive", "tomb", "staging"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self.before = self.outside()

    def outside(self) -> tuple[dict, dict]:
        return snapshot(self.canary), snapshot(self.trash)

    def twin(self, field: str, variant: str) -> str:
        """Where a planted ``field`` points, outside ROOT, by ``variant``."""
        name = OUTSIDE[FIELD_KIND[field]]
        if field == "tmp":
            name = ".tmp-victim.tar.zst"
        if variant == "absolute":
            return str(self.canary / name)
        if variant == "through-symlink":
            return str(self.root / "escape" / name)
        if variant == "symlink-dotdot":  # lexically inside ROOT; the kernel resolves escape -> canary, then ..
            return str(self.root / "escape" / ".." / "line" / name)
        return str(self.root / ".." / "canary" / name)

    # what mlrepo itself would write: every path where its step puts it
    def journal_templates(self) -> dict[str, dict]:
        r, s, t = self.root, self.state, self.trash
        model = str(r / "line" / "00001")
        trash_entry = {"kind": "trash", "id": "m1", "path": model, "row": {"_rel": "line/00001"},
                       "trash_files": str(t / "files" / "00001"), "trash_info": str(t / "info" / "00001.trashinfo"),
                       "trash_dir": str(t), "trash_topdir": str(t.parent)}
        return {
            "archive": {"op": "archive", "id": "m1", "path": model, "tmp": str(s / "archive" / ".tmp-m1.tar.zst"),
                        "archive": str(s / "archive" / "m1.tar.zst"), "tomb": str(s / "tomb" / "t-m1"),
                        "ledger": str(s / "ledger" / "m1.json"), "sha256": "0" * 64, "digest": "x"},
            "trash": {"op": "trash", "phase": "trashing", "id": "m1", "path": model,
                      "ledger": str(s / "ledger" / "m1.json"), "entry": trash_entry},
            "delete": {"op": "delete", "phase": "deleting", "id": "m1", "path": model, "tomb": str(s / "tomb" / "t")},
            "restore-archive": {"op": "restore-archive", "id": "m1", "path": str(r / "line" / "gone"),
                                "archive": str(s / "archive" / "m1.tar.zst"), "staging": str(s / "staging" / "st"),
                                "top": str(s / "staging" / "st" / "gone"), "ledger": str(s / "ledger" / "m1.json"),
                                "digest": "x"},
            "restore-trash": {"op": "restore-trash", "phase": "moving", "id": "m1", "path": str(r / "line" / "gone"),
                              "files": str(t / "files" / "gone"), "info": str(t / "info" / "gone.trashinfo"),
                              "ledger": str(s / "ledger" / "m1.json")},
            "mlflow-stage": {"op": "mlflow-stage", "phase": "updating", "path": model, "db": str(r / "mlflow.db"),
                             "run": "abc", "stage": "deleted"},
        }

    def ledger_templates(self) -> dict[str, dict]:
        gone = str(self.root / "line" / "gone")
        return {
            "archive": {"version": 1, "kind": "archive", "id": "g", "rel": "line/gone", "path": gone,
                        "row": {"_rel": "line/gone", "name": "gone"},
                        "archive": str(self.state / "archive" / "g.tar.zst")},
            "trash": {"version": 1, "kind": "trash", "id": "g", "rel": "line/gone", "path": gone,
                      "row": {"_rel": "line/gone", "name": "gone"},
                      "trash_files": str(self.trash / "files" / "gone"),
                      "trash_info": str(self.trash / "info" / "gone.trashinfo"), "trash_dir": str(self.trash),
                      "trash_topdir": str(self.trash.parent)},
        }


PHASES = {"archive": ("writing", "archived"), "restore-archive": ("extracting", "extracted")}
JOURNAL_FIELDS = {
    "archive": ("path", "tmp", "archive", "tomb", "ledger"),
    "trash": ("path", "ledger", "entry.path", "entry.trash_files", "entry.trash_info", "entry.trash_dir"),
    "delete": ("path", "tomb"),
    "restore-archive": ("path", "archive", "staging", "top", "ledger"),
    "restore-trash": ("path", "files", "info", "ledger"),
    "mlflow-stage": ("db",),
}
LEDGER_FIELDS = {"archive": ("path", "archive"), "trash": ("path", "trash_files", "trash_info", "trash_dir")}


def journal_cases() -> list[tuple[str, str, str, str]]:
    return [(op, phase, field, variant) for op, fields in JOURNAL_FIELDS.items()
            for phase in PHASES.get(op, ("",)) for field in fields for variant in VARIANTS]


def ledger_cases() -> list[tuple[str, str, str]]:
    return [(kind, field, variant) for kind, fields in LEDGER_FIELDS.items() for field in fields
            for variant in VARIANTS]


def _set(record: dict, dotted: str, value: str) -> dict:
    record = json.loads(json.dumps(record))
    *outer, last = dotted.split(".")
    target = record
    for key in outer:
        target = target[key]
    target[last] = value
    return record


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    w = World(tmp_path)
    monkeypatch.setenv("HOME", w.env["HOME"])
    monkeypatch.setenv("XDG_DATA_HOME", w.env["XDG_DATA_HOME"])
    return w


def test_templates_are_what_mlrepo_accepts(world):
    """The planted records differ from acceptable ones only in the planted field (so each refusal is that field's)."""
    for op, record in world.journal_templates().items():
        for phase in PHASES.get(op, ("",)):
            if op == "mlflow-stage":
                (world.root / "mlflow.db").write_bytes(b"SQLite format 3\x00")
            journal_record({**record, **({"phase": phase} if phase else {})}, str(world.root))
    for entry in world.ledger_templates().values():
        ledger_entry(entry, str(world.root))


def test_every_planted_journal_field_is_refused_and_nothing_outside_is_touched(world):
    root = str(world.root)
    (world.root / "mlflow.db").write_bytes(b"SQLite format 3\x00")
    templates = world.journal_templates()
    cases = journal_cases()
    for n, (op, phase, field, variant) in enumerate(cases):
        record = _set(templates[op], field, world.twin(field.split(".")[-1], variant))
        if phase:
            record["phase"] = phase
        planted = world.state / "journal" / f"{n:04d}-planted-{op}.json"
        planted.write_text(json.dumps(record))
        messages = moves.recover(root)
        said = "\n".join(messages)
        named = f"'{field.split('.')[-1]}'" in said or f"'{field.split('.')[0]}'" in said
        assert "refused journal record" in said and named, (op, phase, field, variant, said)
        assert not planted.exists() and (world.state / "rejected" / planted.name).exists()
        assert world.outside() == world.before, (op, phase, field, variant)
    assert len(cases) >= 80


def test_every_planted_ledger_field_is_refused_and_nothing_outside_is_touched(world):
    root = str(world.root)
    templates = world.ledger_templates()
    for n, (kind, field, variant) in enumerate(ledger_cases()):
        entry = _set(templates[kind], field, world.twin(field, variant))
        with pytest.raises(moves.Refused, match="ledger entry is refused"):
            moves.restore_entry(root, str(world.state / "ledger" / "x.json"), entry)
        planted = world.state / "ledger" / f"{n:04d}-planted.json"
        planted.write_text(json.dumps(entry))
        said = "\n".join(moves.recover(root))
        assert "refused ledger entry" in said, (kind, field, variant, said)
        assert not planted.exists()
        assert world.outside() == world.before, (kind, field, variant)


def test_a_foreign_item_of_the_users_trash_is_never_pulled_into_root(world):
    """A ledger entry naming a real item of the user's trash, which its .trashinfo says came from elsewhere."""
    entry = _set(_set(world.ledger_templates()["trash"], "trash_files", str(world.trash / "files" / "secret")),
                 "trash_info", str(world.trash / "info" / "secret.trashinfo"))
    with pytest.raises(Untrusted, match="came from /home/someone/secret"):
        ledger_entry(entry, str(world.root))
    (world.state / "ledger" / "foreign.json").write_text(json.dumps(entry))
    r = mlrepo("restore", world.root, "--all", "--yes", env=world.env)
    assert "refused ledger entry foreign.json" in r.err, r.err
    assert not (world.root / "line" / "gone").exists()
    assert world.outside() == world.before


def test_the_issues_example_through_the_cli(world):
    """``{"op":"delete",...,"tomb":"/victim"}`` made the next ``mlrepo archive ... --yes`` delete /victim."""
    (world.state / "journal" / "1-1-delete.json").write_text(json.dumps(
        {"op": "delete", "phase": "deleting", "id": "x", "path": str(world.root / "x"),
         "tomb": str(world.canary / "victim")}))
    (world.state / "journal" / "2-1-archive.json").write_text(json.dumps(
        {**world.journal_templates()["archive"], "phase": "writing", "tmp": str(world.canary / "victim.tar.zst")}))
    r = mlrepo("archive", world.root, "--where", "name = '00002'", "--yes", env=world.env)
    assert r.code == 0, r.err
    assert r.err.count("refused journal record") == 2
    assert world.outside() == world.before
    assert sorted(os.listdir(world.state / "rejected")) == ["1-1-delete.json", "2-1-archive.json"]


STATE_LINKS = ("", "journal", "ledger", "archive", "tomb", "staging", "rejected")


@pytest.mark.parametrize("sub", STATE_LINKS)
def test_a_symlinked_state_folder_is_never_written_through(world, sub):
    """``.mlrepo`` (or one of its folders) replaced by a symlink that leads out: refused, nothing written there."""
    target = world.state / sub if sub else world.state
    shutil.rmtree(target, ignore_errors=True)
    elsewhere = world.canary / "state-elsewhere"
    elsewhere.mkdir(exist_ok=True)
    os.symlink(elsewhere, target)
    world.before = world.outside()
    if sub == "rejected":  # only written when a record is set aside
        (world.state / "journal" / "1-bad.json").write_text("{not json")
    args = ("archive", world.root, "--where", "name = '00000'", "--yes")
    r = mlrepo(*args, env=world.env)
    assert "Traceback" not in r.err
    assert world.outside() == world.before, (sub, r.err)
    if sub in ("", "journal", "ledger", "archive", "rejected"):
        assert r.code != 0 and "must be real folders" in r.err, (sub, r.err)
    assert (world.root / "line" / "00000" / "meta.json").exists() or sub in ("tomb", "staging")


def test_lock_and_log_symlinks_are_not_followed(world):
    for name in ("lock", "log.jsonl"):
        os.symlink(world.canary / "victim.json", world.state / name)
    r = mlrepo("archive", world.root, "--where", "name = '00000'", "--yes", env=world.env)
    assert "Traceback" not in r.err
    assert world.outside() == world.before
    assert r.code != 0 and "lock" in r.err

"""What keeps a model whatever the keep rules say: unfinished runs, pins, MLflow registered versions and logged
models, DVC experiments (git refs, no folder), a folder holding a git repository, the HF Trainer's best
checkpoint, a Lightning checkpoint another version names as its best or last, recent changes (within
``--recent``; a time in the future is said, never taken as recent), a path outside the root or behind a symlink.
Gathered once per plan (pins, registries), asked per model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mlrepo.commands.operations.ages import Age, human_age, when_text
from mlrepo.commands.operations.fingerprint import SKEW_NS, Footprint
from mlrepo.commands.operations.paths import model_path_problem
from mlrepo.repo_index.index import Index
from mlrepo.repo_index.pins import Pin, load_pins
from mlrepo.repo_index.readers.ckpt_state import UNREAD, outside_refs
from mlrepo.repo_index.readers.mlflow_registry import (
    RegistryError,
    file_store_registered,
    sqlite_registered,
)

UNFINISHED = ("running", "scheduled")
# MLflow 3 deletes a logged model by marking it in its store (meta.yaml, the logged_models table) and leaves the
# artifacts to `mlflow gc`; moving its folder away would break the registry versions and runs that point at it
LOGGED_MODEL = ("an MLflow logged model: delete it through MLflow (MlflowClient().delete_logged_model), then "
                "`mlflow gc` frees its artifacts")  # never removed, never ranked unless asked (--include-unfinished)
# a folder holding a .git (a DVC project, a cloned model): its history may hold commits that exist nowhere else
GIT_REPOSITORY = "holds a git repository (.git), whose commits may exist nowhere else: remove it by hand if you mean to"
# a DVC experiment is a commit behind a git ref, with no folder of its own: moving its "path" would move nothing
DVC_EXPERIMENT = "a DVC experiment (a git ref, no folder of its own): remove it with `dvc exp remove {name}`"


def as_utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def is_mlflow_run(row: dict) -> bool:
    """A run recorded in an MLflow SQLite store: removed and restored through the store, never by its folder."""
    return row.get("format") == "mlflow" and str(row.get("_store") or "").endswith("mlflow.db") and \
        bool(row.get("_source_id"))


@dataclass(slots=True)
class Guards:
    """What protects a model whatever the rules say, gathered once per plan."""

    root: str
    now: datetime
    recent: Age
    pins: dict[str, Pin]
    registered: dict[tuple[str, str], list[str]]  # (store path, run id) -> registered versions
    unreadable: dict[str, str]  # store path -> why its registry could not be read
    checkpoints: dict[str, str]  # a Lightning checkpoint another version names -> which version, as what

    @classmethod
    def gather(cls, index: Index, rows: Sequence[dict], now: datetime, recent: Age) -> Guards:
        guards = cls(index.root, now, recent, load_pins(index.root), {}, {}, {})
        # every version's, not only the plan's: a version may name a checkpoint inside another
        versions = index.df.filter(index.df["format"] == "lightning").select("path", "line", "name", "tags")
        for row in versions.iter_rows(named=True):
            for target, kind in outside_refs(row["path"], row["tags"] or []):
                guards.checkpoints[target] = f"{row['line']}/{row['name']}'s {kind} checkpoint"
        for store in sorted({s for s in (_mlflow_store(index.root, r) for r in rows) if s}):
            try:
                found = sqlite_registered(store) if store.endswith(".db") else file_store_registered(store)
            except RegistryError as exc:
                guards.unreadable[store] = str(exc)
                continue
            guards.registered.update(((store, run), v) for run, v in found.items())
        return guards

    def recent_cutoff(self) -> datetime | None:
        return None if self.recent.zero else self.recent.before(self.now)

    def is_recent(self, when: datetime | None) -> bool:
        cutoff = self.recent_cutoff()
        return cutoff is not None and when is not None and cutoff < when <= self.now + _SKEW

    def future(self, when: datetime | None) -> bool:
        return when is not None and when > self.now + _SKEW


_SKEW = timedelta(seconds=SKEW_NS / 1e9)


def _mlflow_store(root: str, row: dict) -> str | None:
    """The MLflow store (an mlflow.db, or an mlruns folder) that records this run; None for other formats."""
    if row.get("format") != "mlflow":
        return None
    if row.get("_store"):
        return os.path.join(root, str(row["_store"]))
    exp = os.path.dirname(str(row.get("path") or ""))
    store = os.path.dirname(exp)
    return os.path.dirname(store) if os.path.basename(store) == ".trash" else store


def _run_id(row: dict) -> str:
    return str(row.get("_source_id") or os.path.basename(str(row.get("path") or "")))


def protection(row: dict, guards: Guards, fp: Footprint | None = None) -> str | None:
    """Why this model must stay, whatever the rules say (None when it may go). ``fp``: its folder as just seen."""
    status = str(row.get("status") or "")
    if status in UNFINISHED:
        return f"{status}: not finished (always kept; never counted toward --keep-top)"
    pin = guards.pins.get(str(row["id"]))
    if pin is not None:
        return "pinned" + (f": {pin.note}" if pin.note else "") + " (mlrepo unpin releases it)"
    store = _mlflow_store(guards.root, row)
    if store:
        if store in guards.unreadable:
            return f"the MLflow registry could not be read ({guards.unreadable[store]})"
        versions = guards.registered.get((store, _run_id(row)))
        if versions:
            return f"registered in MLflow as {'; '.join(versions)}"
    if row.get("format") == "hf-trainer" and "best" in (row.get("tags") or []):
        return "the HF Trainer's best_model_checkpoint"
    folder = str(row.get("path") or "") + os.sep
    held = next((f"{who} ({os.path.relpath(target, folder)})" for target, who in guards.checkpoints.items()
                 if target.startswith(folder)), None)
    if held:
        return f"holds {held}, named by Lightning's ModelCheckpoint"
    if UNREAD in (row.get("tags") or []):
        return ("its checkpoints' ModelCheckpoint state was not read (their bytes were not fetched): a resumed run "
                "may name one of them as its best")
    if row.get("format") == "mlflow-model":
        return LOGGED_MODEL
    if row.get("format") == "dvc-exp":
        return DVC_EXPERIMENT.format(name=row.get("name") or "NAME")
    changed = as_utc(row.get("updated_at"))
    if row.get("_store") and not is_mlflow_run(row):
        return f"lives in the store {row['_store']}; remove it with the tool that wrote it"
    if not row.get("_store"):
        problem = model_path_problem(str(row.get("path") or ""), guards.root)
        if problem:
            return problem
        if os.path.lexists(os.path.join(str(row.get("path") or ""), ".git")):
            return GIT_REPOSITORY
    if guards.is_recent(changed):
        return f"changed {human_age(guards.now - changed)} ago (maybe still being written; --recent overrides)"  # type: ignore[operator]
    if fp is not None and fp.newest_ns:
        when = datetime.fromtimestamp(fp.newest_ns / 1e9, timezone.utc)
        if guards.is_recent(when):
            return f"files changed {human_age(guards.now - when)} ago (maybe still being written; --recent " \
                   "overrides)"
    return None


def future_note(row: dict, guards: Guards, fp: Footprint | None) -> str | None:
    """A time in the future is not "recent": it is said, never taken as a reason to keep."""
    updated = as_utc(row.get("updated_at"))
    times = [updated] if updated is not None and guards.future(updated) else []
    if fp is not None and fp.future_ns:
        times.append(datetime.fromtimestamp(fp.future_ns / 1e9, timezone.utc))
    return f"dated in the future ({when_text(max(times))}; not taken as recent)" if times else None

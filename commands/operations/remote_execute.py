"""Carrying out a remote plan: the functions the CLI and the TUI call for an ``s3://`` (``gs://``, ``az://``) root.

Each run takes the root's lock (``remote_journal.RemoteLock``, in the bucket), first finishes or rolls back what an
interrupted run left in the journal, then moves one model at a time. Right before a model moves its prefix is
listed again and must be exactly what the plan listed (keys, sizes, ETags); a model a writer changed since (a new
checkpoint) is skipped with the reason, and the others go on. Outcomes are the local ``execute.Outcome``s, so the
views print both alike; ``Report.cost`` says what the run cost in requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from mlrepo.commands.operations.execute import Outcome, Report
from mlrepo.commands.operations.remote_journal import RemoteLock
from mlrepo.commands.operations.remote_keys import Bucket, Obj, RemoteError, RemoteRootLike, RequestCost
from mlrepo.commands.operations.remote_moves import (
    Refused,
    archive_model,
    delete_model,
    read_ledger,
    recover,
    restore_entry,
    trash_model,
)
from mlrepo.commands.operations.remote_plan import RemoteDecision, RemotePlan, restore_cost
from mlrepo.repo_index.rows import model_id

ProgressFn = Callable[[int, int, str], None]  # (models done, models in all, the model's URL)


@dataclass(slots=True)
class RemoteReport(Report):
    cost: RequestCost = field(default_factory=RequestCost)


@dataclass(slots=True)
class RemoteRestoreItem:
    """A trashed or archived model of a remote root, from its ledger entry."""

    model: str
    url: str
    kind: str  # trash | archive
    entry: dict
    cost: RequestCost

    @property
    def id(self) -> str:
        return model_id(self.model)

    @property
    def size_bytes(self) -> int:
        return sum(int(o["size"]) for o in self.entry["objects"])


def recover_remote(root: RemoteRootLike) -> list[str]:
    """Finish or roll back what an interrupted run left in the root's journal (under the lock)."""
    b = Bucket(root)
    with RemoteLock(b):
        return recover(b)


def execute_remote(root: RemoteRootLike, plan: RemotePlan, progress: ProgressFn | None = None) -> RemoteReport:
    """Trash, archive or delete the plan's models, one journaled step each."""
    b = Bucket(root)
    return _run(b, [(d.id, d.url, d.model, partial(_move, b, plan, d)) for d in plan.movable], progress)


def _move(b: Bucket, plan: RemotePlan, d: RemoteDecision) -> Outcome:
    now = b.listing(d.model)
    if now != d.objects:  # as the plan saw it, right before it moves
        raise Refused(_changed(d.objects, now))
    freed, where = d.size_bytes, None
    if plan.how == "trash":
        where, freed = b.url_of(trash_model(b, d.model, d.objects)), 0
    elif plan.how == "archive":
        key, size = archive_model(b, d.model, d.objects)
        where, freed = b.url_of(key), d.size_bytes - size
    else:
        delete_model(b, d.model, d.objects)
    action = {"trash": "trashed", "archive": "archived", "delete": "deleted"}[plan.how]
    return Outcome(d.id, d.url, d.model, True, action, "", where, 0 if plan.versioned else freed)


Job = tuple[str, str, str, Callable[[], Outcome]]  # id, URL, label, the step


def _run(b: Bucket, jobs: Sequence[Job], progress: ProgressFn | None) -> RemoteReport:
    """Under the lock: recovery first, then each job; a model's trouble is its outcome, the others go on."""
    report = RemoteReport()
    with RemoteLock(b):
        report.recovered = recover(b)
        for n, (ident, url, label, step) in enumerate(jobs):
            if progress:
                progress(n, len(jobs), url)
            try:
                report.outcomes.append(step())
            except (Refused, RemoteError, ValueError) as exc:  # ValueError: OddKey, Untrusted
                report.outcomes.append(Outcome(ident, url, label, False, "skipped", str(exc)))
            except Exception as exc:  # noqa: BLE001 - a request failed: the journal has the rest
                report.outcomes.append(Outcome(ident, url, label, False, "failed", _said(exc)))
    if progress:
        progress(len(jobs), len(jobs), "")
    report.cost = b.cost
    return report


def _changed(before: Sequence[Obj], now: Sequence[Obj]) -> str:
    old, new = {o.rel: o for o in before}, {o.rel: o for o in now}
    added = sorted(set(new) - set(old))
    gone = sorted(set(old) - set(new))
    rewritten = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    said = "; ".join(f"{what} {names[:3]}" for what, names in
                     (("added", added), ("gone", gone), ("rewritten", rewritten)) if names)
    return f"changed since the plan ({said}); kept"


def _said(exc: BaseException) -> str:
    """A failed request in one line (obstore's messages carry a multi-line debug dump)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def plan_remote_restore(root: RemoteRootLike, models: Sequence[str] = (), everything: bool = False
                        ) -> tuple[list[RemoteRestoreItem], list[str]]:
    """Trashed and archived models to bring back (``models``: root-relative prefixes; or ``everything``), and one
    message per ledger entry refused (set aside in ``.mlrepo/rejected/``, never acted on). Call
    ``recover_remote`` first when a run may have been interrupted: its recovery may change the ledger."""
    b = Bucket(root)
    entries, refused = read_ledger(b)
    wanted = {m.strip("/") for m in models}
    items = []
    for _key, entry in entries:
        if everything or entry["model"] in wanted:
            sizes = [int(o["size"]) for o in entry["objects"]]
            items.append(RemoteRestoreItem(entry["model"], b.url_of(entry["model"]), entry["kind"], entry,
                                           restore_cost(len(sizes), sizes, entry["kind"])))
    return items, refused


def restore_remote(root: RemoteRootLike, items: Sequence[RemoteRestoreItem],
                   progress: ProgressFn | None = None) -> RemoteReport:
    """Bring trashed and archived models back to their prefixes, byte for byte."""
    b = Bucket(root)

    def restore(item: RemoteRestoreItem) -> Outcome:
        return Outcome(item.id, item.url, item.model, True, "restored", "", restore_entry(b, item.entry))

    return _run(b, [(i.id, i.url, i.model, partial(restore, i)) for i in items], progress)

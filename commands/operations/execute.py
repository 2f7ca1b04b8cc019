"""Carrying out a plan: the operations the CLI and the TUI share. No printing; progress goes to a callback.

Each operation takes the root's lock, first finishes or rolls back whatever an interrupted run left in the journal
(``recover``), then moves the models one journaled step at a time (``moves``). A model that may not be
moved (it changed, a folder is in the way...) is reported in the outcome and the others go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from mlrepo.commands.operations import mlflow_moves, moves
from mlrepo.commands.operations.faults import fault
from mlrepo.commands.operations.journal import needs_recovery
from mlrepo.commands.operations.lock import Lock
from mlrepo.commands.operations.moved import Moved, Refused
from mlrepo.commands.operations.paths import is_within
from mlrepo.commands.operations.plan import Decision, RestoreItem
from mlrepo.errors import Busy, UsageError

__all__ = ["Busy", "Outcome", "Progress", "Report", "recover_pending", "remove_models", "restore_models"]
How = Literal["trash", "archive", "delete"]


@dataclass(slots=True)
class Progress:
    done: int  # models finished
    total: int
    bytes_done: int
    bytes_total: int
    current: str | None = None  # the model being moved
    phase: str = ""  # trashing | archiving | deleting | restoring | done


ProgressFn = Callable[[Progress], None]


@dataclass(slots=True)
class Outcome:
    id: str
    path: str
    label: str
    ok: bool
    action: str  # trashed | archived | deleted | restored | skipped | failed
    message: str = ""
    where: str | None = None  # archive file / trash entry (moved), or where it came from (restored)
    bytes_freed: int = 0
    extra: dict = field(default_factory=dict)


@dataclass(slots=True)
class Report:
    recovered: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def succeeded(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def bytes_freed(self) -> int:
        return sum(o.bytes_freed for o in self.outcomes if o.ok)


def recover_pending(root: str) -> list[str]:
    """Finish or roll back what an interrupted run left (takes the lock only when there is something to do)."""
    messages: list[str] = []
    if needs_recovery(root):
        with Lock(root):
            messages = moves.recover(root)
    fault("recovered")
    return messages


class _Tracker:
    def __init__(self, total: int, bytes_total: int, callback: ProgressFn | None) -> None:
        self.state = Progress(0, total, 0, bytes_total)
        self.callback = callback

    def start(self, label: str, phase: str) -> None:
        self.state.current, self.state.phase = label, phase
        self._emit()

    def add_bytes(self, n: int) -> None:
        self.state.bytes_done += n
        self._emit()

    def finish_one(self, size: int, counted: int) -> None:
        self.state.done += 1
        self.state.bytes_done += max(0, size - counted)
        self._emit()

    def _emit(self) -> None:
        if self.callback:
            self.callback(self.state)


def remove_models(root: str, decisions: Sequence[Decision], how: How = "trash", archive_dir: str | None = None,
                  progress: ProgressFn | None = None) -> Report:
    """Move the models of ``decisions`` that are marked for removal to the trash, into archives, or delete them."""
    chosen = [d for d in decisions if d.remove]
    target = os.path.abspath(archive_dir) if archive_dir else moves.default_archive_dir(root)
    if how == "archive":
        inside = [d for d in chosen if is_within(target, d.path)]
        if inside:
            raise UsageError(f"the archive folder {target} is inside the model {inside[0].path}")
    report = Report()
    tracker = _Tracker(len(chosen), sum(d.size_bytes for d in chosen), progress)
    phase = {"trash": "trashing", "archive": "archiving", "delete": "deleting"}[how]
    with Lock(root):
        report.recovered = moves.recover(root)
        for d in chosen:
            tracker.start(d.label, phase)
            counted = [0]

            def on_bytes(n: int, counted: list[int] = counted) -> None:
                counted[0] += n
                tracker.add_bytes(n)

            try:
                if d.store and d.source_id and d.footprint is None and os.path.isdir(d.path):
                    raise Refused("its folder appeared since the plan was made; kept")
                moves.check_unchanged(d.path, d.footprint)  # as the plan saw it, right before it moves
                if d.store and d.source_id:  # a run of mlflow.db: soft-deleted in the store, as MLflow does
                    if how != "trash":
                        raise Refused(f"a run of {d.store} is soft-deleted in it (the default), not "
                                            f"{how}d: `mlflow gc` then removes its artifacts")
                    mlflow_moves.set_run_stage(root, d.store, d.source_id, d.path, "deleted")
                    moved = Moved(d.id, d.path, "soft-deleted in mlflow.db", d.store)
                elif how == "trash":
                    moved = moves.trash_model(root, d.ledger_model(), d.footprint)
                elif how == "archive":
                    moved = moves.archive_model(root, d.ledger_model(), target, on_bytes)
                else:
                    moved = moves.delete_model(root, d.ledger_model(), d.footprint)
            except Refused as exc:
                report.outcomes.append(Outcome(d.id, d.path, d.label, False, "skipped", str(exc)))
            except Exception as exc:  # noqa: BLE001 - one model's trouble is reported; the journal has the rest
                report.outcomes.append(Outcome(d.id, d.path, d.label, False, "failed",
                                               f"{type(exc).__name__}: {exc}"))
            else:
                freed = 0 if d.store else d.frees - moved.size_after if how == "archive" and \
                    _same_disk(target, d.path) else d.frees
                report.outcomes.append(Outcome(d.id, d.path, d.label, True, moved.action, "", moved.where,
                                               freed, moved.extra))
            tracker.finish_one(d.size_bytes, counted[0])
    tracker.start(None, "done")  # type: ignore[arg-type]
    return report


def _same_disk(archive_dir: str, path: str) -> bool:
    try:
        return os.stat(archive_dir).st_dev == os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return True


def restore_models(root: str, items: Sequence[RestoreItem], progress: ProgressFn | None = None) -> Report:
    """Bring archived and trashed models back to their folders."""
    report = Report()
    tracker = _Tracker(len(items), sum(i.size_bytes for i in items), progress)
    with Lock(root):
        report.recovered = moves.recover(root)
        for item in items:
            tracker.start(item.label, "restoring")
            counted = [0]

            def on_bytes(n: int, counted: list[int] = counted) -> None:
                counted[0] += n
                tracker.add_bytes(n)

            try:
                if item.kind == "mlflow":  # soft-deleted in mlflow.db: restored in it
                    mlflow_moves.set_run_stage(root, item.entry["store"], item.entry["run"], item.path, "active")
                    moved = Moved(item.id, item.path, "restored", item.source)
                else:
                    moved = moves.restore_entry(root, item.entry_path, item.entry, on_bytes)
            except Refused as exc:
                report.outcomes.append(Outcome(item.id, item.path, item.label, False, "skipped", str(exc)))
            except Exception as exc:  # noqa: BLE001
                report.outcomes.append(Outcome(item.id, item.path, item.label, False, "failed",
                                               f"{type(exc).__name__}: {exc}"))
            else:
                report.outcomes.append(Outcome(item.id, item.path, item.label, True, "restored", "", moved.where))
            tracker.finish_one(item.size_bytes, counted[0])
    tracker.start(None, "done")  # type: ignore[arg-type]
    return report

"""The journal's records, typed: one frozen dataclass per kind of step, with the fields that step writes.

On disk a step is the JSON object ``journal.Step`` writes (``{"op": ..., "pid": ..., "started": ..., fields}``);
``to_fields`` gives a step's fields in that shape, unchanged from the journals earlier versions wrote, so their
leftovers still recover. A record read back is untrusted: ``trust.journal_record`` checks its paths and only then makes
it one of these (``from_record``), the one place where a journal record becomes typed data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

from mlrepo.repo_index.archived import LedgerEntry

Op = Literal["archive", "trash", "delete", "restore-archive", "restore-trash", "mlflow-stage"]
Stage = Literal["deleted", "active"]


@dataclass(frozen=True, slots=True)
class ArchiveStep:
    """Archive a folder: the archive written (``tmp``, then ``archive``), then the folder through ``tomb``."""

    op: ClassVar[Op] = "archive"
    id: str
    path: str
    tmp: str
    archive: str
    tomb: str
    ledger: str
    phase: Literal["writing", "archived"] = "writing"
    sha256: str | None = None  # "archived": the verified archive's sha256
    digest: str | None = None  # "archived": the folder's stat digest when it was verified


@dataclass(frozen=True, slots=True)
class TrashStep:
    """Move a folder into the trash; ``entry`` is the ledger entry written once it is there."""

    op: ClassVar[Op] = "trash"
    id: str
    path: str
    ledger: str
    entry: LedgerEntry
    phase: Literal["trashing"] = "trashing"


@dataclass(frozen=True, slots=True)
class DeleteStep:
    """Delete a folder: renamed to ``tomb``, then removed."""

    op: ClassVar[Op] = "delete"
    id: str
    path: str
    tomb: str
    phase: Literal["deleting"] = "deleting"


@dataclass(frozen=True, slots=True)
class RestoreArchiveStep:
    """Restore from an archive: extracted into ``staging`` (its folder ``top``), then renamed to ``path``."""

    op: ClassVar[Op] = "restore-archive"
    id: str
    path: str
    archive: str
    staging: str
    ledger: str
    phase: Literal["extracting", "extracted"] = "extracting"
    top: str | None = None  # "extracted": the folder inside ``staging``
    digest: str | None = None  # "extracted": its stat digest


@dataclass(frozen=True, slots=True)
class RestoreTrashStep:
    """Restore from the trash: the trash item ``files`` renamed back, its ``.trashinfo`` removed."""

    op: ClassVar[Op] = "restore-trash"
    id: str
    path: str
    files: str
    info: str
    ledger: str
    phase: Literal["moving"] = "moving"


@dataclass(frozen=True, slots=True)
class MlflowStageStep:
    """Set a run of an ``mlflow.db`` to ``stage`` (one UPDATE; done again on recovery, at the same time)."""

    op: ClassVar[Op] = "mlflow-stage"
    path: str
    db: str
    run: str
    stage: Stage
    store: str | None = None  # the mlflow.db relative to the root (not in journals of older versions)
    deleted_time: int | None = None  # milliseconds (not in journals of older versions)
    phase: Literal["updating"] = "updating"


JournalStep = ArchiveStep | TrashStep | DeleteStep | RestoreArchiveStep | RestoreTrashStep | MlflowStageStep
KINDS: dict[str, type[JournalStep]] = {k.op: k for k in (ArchiveStep, TrashStep, DeleteStep, RestoreArchiveStep,
                                                         RestoreTrashStep, MlflowStageStep)}


def to_fields(step: JournalStep) -> dict[str, object]:
    """The step's fields as its journal record holds them (``op`` apart); unset optional fields are left out."""
    fields = {k: v for k, v in asdict(step).items() if v is not None}
    if isinstance(step, TrashStep):
        fields["entry"] = step.entry.to_json()
    return fields


def _text(record: dict, key: str) -> str | None:
    value = record.get(key)
    return None if value is None else str(value)


def from_record(record: dict) -> JournalStep:
    """The typed step of a journal record whose paths ``trust.journal_record`` has checked (KeyError: unknown op)."""
    op = record.get("op")
    get, need = record.get, record.__getitem__  # need: a field trust.journal_record has checked
    if op == "archive":
        return ArchiveStep(id=str(get("id")), path=need("path"), tmp=need("tmp"), archive=need("archive"),
                           tomb=need("tomb"), ledger=need("ledger"),
                           phase="archived" if get("phase") == "archived" else "writing",
                           sha256=_text(record, "sha256"), digest=_text(record, "digest"))
    if op == "trash":
        return TrashStep(id=str(get("id")), path=need("path"), ledger=need("ledger"),
                         entry=LedgerEntry.from_json(need("entry")))
    if op == "delete":
        return DeleteStep(id=str(get("id")), path=need("path"), tomb=need("tomb"))
    if op == "restore-archive":
        return RestoreArchiveStep(id=str(get("id")), path=need("path"), archive=need("archive"),
                                  staging=need("staging"), ledger=need("ledger"),
                                  phase="extracted" if get("phase") == "extracted" else "extracting",
                                  top=_text(record, "top"), digest=_text(record, "digest"))
    if op == "restore-trash":
        return RestoreTrashStep(id=str(get("id")), path=need("path"), files=need("files"), info=need("info"),
                                ledger=need("ledger"))
    if op == "mlflow-stage":
        when = get("deleted_time")
        return MlflowStageStep(path=str(get("path")), db=need("db"), run=need("run"), stage=need("stage"),
                               store=_text(record, "store") or None,
                               deleted_time=when if isinstance(when, int) else None)
    raise KeyError(op)

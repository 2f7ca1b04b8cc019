"""Deciding what to remove: keep rules (a union, as in restic ``forget`` and borg ``prune``) and protections.

A plan holds one ``Decision`` per live model (status not deleted/trashed/archived): remove it, or keep it and why.
Keep rules: ``keep_top`` (best K per group by a metric, among finished models unless asked; further metrics break
ties; a model lacking the metric is kept), ``keep_last`` (newest N per group), ``keep_tags``. Candidate filters:
``where`` and ``older_than`` (restic's units; the plan prints the cut-off date). Protections, whatever the rules
say (``Guards``): an unfinished run (running, scheduled), a pinned model, an MLflow registered version, the HF
Trainer's best checkpoint, a model that changed within ``--recent`` (a future time is said, not taken as recent),
one outside the root or behind a symlink, one that contains another model.

The folders the plan would remove are walked once (``fingerprint``): what they free (allocated blocks, each inode
once, hard links shared with what stays not counted) and the footprint that execution checks again just before
each one moves. Nothing here writes; executing a plan is ``execute``.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import polars as pl
from mlrepo.commands.operations.ages import RECENT, Age, human_age, parse_age, when_text
from mlrepo.commands.operations.archive_estimate import estimate_archive_bytes
from mlrepo.commands.operations.fingerprint import Footprint, footprint, freed_bytes
from mlrepo.commands.operations.guards import (
    UNFINISHED,
    Guards,
    as_utc,
    future_note,
    is_mlflow_run,
    protection,
)
from mlrepo.errors import UsageError
from mlrepo.repo_index.filtering import where as filter_where
from mlrepo.repo_index.index import Index, find_model
from mlrepo.repo_index.labels import join_label, model_label
from mlrepo.repo_index.ranking import GROUPS, RankKey, rank, rank_keys
from mlrepo.repo_index.rows import raw_metric_key
from mlrepo.repo_index.units import human_size

INACTIVE = ("deleted", "trashed", "archived")
FAILED = ("failed", "killed")  # finished without success: ranked only when asked (--include-failed)
__all__ = ["FAILED", "INACTIVE", "RECENT", "UNFINISHED", "Age", "Decision", "KeepRules", "Plan", "RestoreItem",
           "human_age", "is_mlflow_run", "parse_age", "plan_prune", "plan_restore", "plan_selection"]


@dataclass(frozen=True, slots=True)
class KeepRules:
    keep_top: int | None = None
    metrics: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    per: str = "line"
    keep_last: int | None = None
    keep_tags: tuple[str, ...] = ()
    older_than: Age | None = None
    where: str | None = None
    recent: Age = RECENT
    include_unfinished: bool = False  # rank running/scheduled runs too (they are kept all the same)
    include_failed: bool = False  # rank failed/killed runs too

    def check(self) -> None:
        if self.per not in GROUPS:
            raise UsageError(f"--per must be one of {', '.join(GROUPS)}")
        if self.keep_top is not None and not self.metrics:
            raise UsageError("--keep-top needs --metric (the metric to rank by)")
        if self.metrics and self.keep_top is None:
            raise UsageError("--metric ranks for --keep-top; give --keep-top K too")
        if self.keep_top is not None and self.keep_top < 0 or self.keep_last is not None and self.keep_last < 0:
            raise UsageError("--keep-top and --keep-last take a number >= 0")
        if (self.keep_top is None and self.keep_last is None and not self.keep_tags and self.where is None
                and self.older_than is None):
            raise UsageError("nothing to decide on: give a keep rule (--keep-top K --metric M, --keep-last N, "
                             "--keep-tag T) or choose candidates (--where EXPR, --older-than AGE)")


@dataclass(slots=True)
class Decision:
    id: str
    path: str
    repo: str | None
    line: str | None
    name: str | None
    format: str
    status: str
    size_bytes: int
    group: str
    remove: bool
    reasons: list[str] = field(default_factory=list)  # why it is kept (or, when removed, why it goes)
    protected: bool = False  # kept whatever the rules say (running, recent, pinned, refused...)
    value: float | None = None  # the ranking metric's value, when ranked
    row: dict = field(default_factory=dict, repr=False)  # the raw index row, for the ledger
    metrics: dict = field(default_factory=dict, repr=False)  # raw metric key -> [name, dataset, split, direction]
    store: str | None = None  # the store file (rel) that records this model, e.g. mlflow.db
    source_id: str | None = None  # the model's id in that store (the MLflow run id)
    footprint: str | None = None  # the folder as the plan saw it (``fingerprint``); re-checked before it moves
    frees: int = 0  # what removing it frees on the root's disk (allocated bytes, each inode once)

    @property
    def label(self) -> str:
        return join_label(self.repo, self.line, self.name)

    def ledger_model(self) -> dict:
        return {"id": self.id, "path": self.path, "row": self.row, "metrics": self.metrics}


@dataclass(slots=True)
class GroupTotal:
    group: str
    models: int = 0
    kept: int = 0
    removed: int = 0
    bytes_freed: int = 0


@dataclass(slots=True)
class Plan:
    root: str
    kind: str  # "prune" | "archive"
    decisions: list[Decision]
    keys: list[RankKey] = field(default_factory=list)
    per: str = "line"
    notes: list[str] = field(default_factory=list)
    archive_bytes: int | None = None  # archiving: the estimated size of the archives (on the root's disk)

    @property
    def removed(self) -> list[Decision]:
        return [d for d in self.decisions if d.remove]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.remove]

    @property
    def bytes_freed(self) -> int:
        """What leaves the root's disk: allocated bytes, each inode once, less the archives written on the same
        disk; a run soft-deleted in mlflow.db frees nothing until ``mlflow gc``."""
        return max(0, sum(d.frees for d in self.removed) - (self.archive_bytes or 0))

    def groups(self) -> list[GroupTotal]:
        totals: dict[str, GroupTotal] = {}
        for d in self.decisions:
            t = totals.setdefault(d.group, GroupTotal(d.group))
            t.models += 1
            if d.remove:
                t.removed += 1
                t.bytes_freed += d.frees
            else:
                t.kept += 1
        return sorted(totals.values(), key=lambda t: t.group)

    def to_dict(self) -> dict:
        return {
            "root": self.root, "kind": self.kind, "per": self.per,
            "ranked_by": [k.describe() for k in self.keys], "notes": self.notes,
            "remove": len(self.removed), "keep": len(self.kept), "bytes_freed": self.bytes_freed,
            "archive_bytes": self.archive_bytes,
            "models": [{"id": d.id, "path": d.path, "repo": d.repo, "line": d.line, "name": d.name,
                        "format": d.format, "status": d.status, "size_bytes": d.size_bytes, "group": d.group,
                        "action": "remove" if d.remove else "keep", "reasons": d.reasons,
                        "protected": d.protected, "value": d.value, "frees": d.frees} for d in self.decisions],
            "groups": [{"group": g.group, "models": g.models, "kept": g.kept, "removed": g.removed,
                        "bytes_freed": g.bytes_freed} for g in self.groups()],
        }


# -- the frame with what decisions need -------------------------------------------------------------------------
def _frame(index: Index) -> pl.DataFrame:
    """The public table plus the hidden ``_store``/``_rel`` (same row order: ``df`` is made from ``raw``)."""
    return index.df.with_columns(index.raw["_store"].alias("_store"), index.raw["_rel"].alias("_rel"),
                                 index.raw["_source_id"].alias("_source_id"),
                                 pl.int_range(0, pl.len()).alias("_row"))


def _group_label(row: dict, per: str) -> str:
    keys = GROUPS[per]
    return "/".join(str(row[k]) for k in keys if row.get(k)) or ("all" if not keys else "-")


def _metric_info(index: Index) -> dict[str, list]:
    return {raw_metric_key(m.name, m.dataset, m.split): [m.name, m.dataset, m.split, m.direction]
            for m in index.metrics.values()}


def _ledger_row(index: Index, i: int, infos: dict[str, list]) -> tuple[dict, dict]:
    row = {k: v for k, v in index.raw.row(i, named=True).items()
           if v is not None and k not in ("_dirs", "_meta", "_stamp", "_store", "_source_id")}
    return row, {k: v for k, v in infos.items() if k in row}


def _contains_others(paths_sorted: list[str], path: str) -> list[str]:
    prefix = path.rstrip(os.sep) + os.sep
    i = bisect.bisect_left(paths_sorted, prefix)
    out = []
    while i < len(paths_sorted) and paths_sorted[i].startswith(prefix):
        out.append(paths_sorted[i])
        i += 1
    return out


def _decision(index: Index, row: dict, per: str, infos: dict[str, list]) -> Decision:
    raw_row, metrics = _ledger_row(index, row["_row"], infos)
    return Decision(id=row["id"], path=row["path"], repo=row["repo"], line=row["line"], name=row["name"],
                    format=row["format"], status=row["status"], size_bytes=int(row["size_bytes"] or 0),
                    group=_group_label(row, per), remove=False, row=raw_row, metrics=metrics,
                    store=row.get("_store"), source_id=row.get("_source_id"))


def _finish(plan: Plan, index: Index, rows: dict[str, dict], guards: Guards, archive_dir: str | None) -> None:
    """Protections on what would be removed (its folder walked once: recent files, the footprint re-checked before
    it moves), folders that hold other models, and what removing (or archiving) really frees."""
    all_paths = sorted(p for p in index.df["path"].to_list() if p)
    now_ns = int(guards.now.timestamp() * 1e9)
    prints: list[tuple[Decision, Footprint]] = []
    for d in plan.decisions:
        if not d.remove:
            continue
        row = rows[d.id]
        fp = None
        if os.path.isdir(d.path) and not os.path.islink(d.path):
            try:
                fp = footprint(d.path, now_ns)
            except OSError as exc:
                d.remove, d.protected, d.reasons = False, True, [f"cannot be read: {exc.strerror or exc}"]
                continue
        why = protection(row, guards, fp)
        if why is None and not d.store:
            inner = _contains_others(all_paths, d.path)
            if inner:
                why = f"contains {len(inner)} other model(s), e.g. {os.path.relpath(inner[0], d.path)}"
        if why:
            d.remove, d.protected, d.reasons = False, True, [why]
            continue
        note = future_note(row, guards, fp)
        if note:
            d.reasons.append(note)
        if fp is not None:
            d.footprint = fp.digest
            if not d.store:  # a run of mlflow.db is soft-deleted: its folder stays until `mlflow gc`
                prints.append((d, fp))
    for (d, _fp), freed in zip(prints, freed_bytes(fp for _d, fp in prints), strict=True):
        d.frees = freed
    shared = sum(d.size_bytes for d, _fp in prints) - sum(d.frees for d, _fp in prints)
    if prints and shared > 0:
        plan.notes.append(f"{human_size(shared)} of the removed folders is shared (hard links) with what stays or "
                          "with each other: counted once, or not at all")
    runs = [d for d in plan.decisions if d.remove and d.store]
    if runs:
        plan.notes.append(f"{len(runs)} run(s) of mlflow.db are soft-deleted in it, as `mlflow runs delete` does "
                          f"(restorable); `mlflow gc` then frees their {human_size(sum(d.size_bytes for d in runs))}")
    if archive_dir is not None and prints:
        _estimate_archives(plan, [d for d, _fp in prints], archive_dir)


def _estimate_archives(plan: Plan, removed: list[Decision], archive_dir: str) -> None:
    """Archives written on the root's own disk take space: the plan counts their estimated size against what
    archiving frees (zstd on samples of each file; weights hardly compress)."""
    estimate = sum(estimate_archive_bytes(d.path) for d in removed)
    probe = archive_dir
    while not os.path.exists(probe) and probe != os.path.dirname(probe):
        probe = os.path.dirname(probe)
    same_disk = os.stat(probe).st_dev == os.stat(plan.root).st_dev
    if same_disk:
        plan.archive_bytes = estimate
        plan.notes.append(f"the archives take about {human_size(estimate)} on the same disk (estimated by "
                          f"compressing samples): archiving frees about {human_size(plan.bytes_freed)}")
    else:
        plan.notes.append(f"the archives (about {human_size(estimate)}) go to another disk ({archive_dir})")


def _older_than(rows: dict[str, dict], reasons: dict[str, list[str]], age: Age, guards: Guards,
                plan: Plan) -> None:
    cutoff = age.before(guards.now)
    plan.notes.append(f"--older-than {age.text}: only models last changed before {when_text(cutoff)} may go")
    for rid, row in rows.items():
        when = as_utc(row.get("updated_at")) or as_utc(row.get("created_at"))
        if when is None:
            reasons[rid].append("age unknown")
        elif guards.future(when):
            reasons[rid].append(f"age unknown: dated in the future ({when_text(when)})")
        elif when > cutoff:
            reasons[rid].append(f"changed after the cut-off {when_text(cutoff)}")


def _recent_note(plan: Plan, guards: Guards) -> None:
    cutoff = guards.recent_cutoff()
    if cutoff is None:
        plan.notes.append("--recent 0: models changed in the last minutes are not kept for that")
    else:
        plan.notes.append(f"models changed after {when_text(cutoff)} (the last {guards.recent.text}) are kept "
                          "(--recent DURATION changes the window)")


def _rankable(live: pl.DataFrame, rules: KeepRules) -> tuple[pl.DataFrame, list[str]]:
    """The models --keep-top ranks: finished ones; unfinished and failed only when asked."""
    left_out = [] if rules.include_unfinished else list(UNFINISHED)
    left_out += [] if rules.include_failed else list(FAILED)
    return live.filter(~pl.col("status").is_in(left_out)), left_out


def plan_prune(index: Index, rules: KeepRules, now: datetime | None = None, archive_dir: str | None = None) -> Plan:
    """Which live models to remove under ``rules``, and why each kept one is kept. ``archive_dir``: they are
    archived there (the plan then counts the archives' size against what is freed)."""
    rules.check()
    now = now or datetime.now(timezone.utc)
    frame = _frame(index)
    live = frame.filter(~pl.col("status").is_in(INACTIVE))
    inactive = frame.height - live.height
    keys = rank_keys(list(rules.metrics), list(rules.modes), index.df.columns, index.metrics) if rules.metrics else []
    plan = Plan(index.root, "prune", [], keys, rules.per)
    infos = _metric_info(index)
    rows = {r["id"]: r for r in live.iter_rows(named=True)}
    guards = Guards.gather(index, list(rows.values()), now, rules.recent)
    if keys:
        plan.notes.append("ranked by " + "; then ".join(k.describe() for k in keys) + f", per {rules.per}")
    if inactive:
        plan.notes.append(f"{inactive} model(s) already deleted, trashed or archived are not considered")
    _recent_note(plan, guards)
    reasons: dict[str, list[str]] = {i: [] for i in rows}
    values: dict[str, float | None] = {}

    if keys and rules.keep_top is not None:
        rankable, left_out = _rankable(live, rules)
        if left_out:
            plan.notes.append(f"--keep-top ranks finished models only: {'/'.join(left_out)} runs take no slot "
                              "(running/scheduled ones are kept all the same; --include-unfinished and "
                              "--include-failed rank them)")
        ranked = rank(rankable, keys, rules.per)
        for rid, r, value in zip(ranked["id"], ranked["rank"], ranked[keys[0].column], strict=True):
            values[rid] = value
            if r <= rules.keep_top:
                reasons[rid].append(f"top {rules.keep_top} by {keys[0].column.removeprefix('metrics.')} (#{r})")
        ranked_ids = set(rankable["id"].to_list())
        for rid, row in rows.items():
            if rid not in values and rid in ranked_ids:
                reasons[rid].append(f"has no {keys[0].column.removeprefix('metrics.')}")
            elif rid not in ranked_ids:  # shown, not ranked (unfinished, failed)
                values[rid] = row.get(keys[0].column)
    if rules.keep_last is not None:
        group = GROUPS[rules.per]
        order = live.with_columns(pl.coalesce("created_at", "updated_at").alias("_when")).sort(
            [*group, "_when"], descending=[*([False] * len(group)), True], nulls_last=True, maintain_order=True)
        n = pl.int_range(1, pl.len() + 1)
        order = order.with_columns((n.over(group) if group else n).alias("_n"))
        for rid, k in zip(order["id"], order["_n"], strict=True):
            if k <= rules.keep_last:
                reasons[rid].append(f"newest {rules.keep_last} (#{k})")
    for tag in rules.keep_tags:
        for rid, row in rows.items():
            if tag in (row.get("tags") or []):
                reasons[rid].append(f"tag {tag}")
    if rules.where is not None:
        matching = set(filter_where(index.df, rules.where, index.metrics)["id"].to_list())
        for rid in rows:
            if rid not in matching:
                reasons[rid].append("not matched by --where")
    if rules.older_than is not None:
        _older_than(rows, reasons, rules.older_than, guards, plan)

    for rid, row in rows.items():
        d = _decision(index, row, rules.per, infos)
        d.value = values.get(rid)
        d.reasons = reasons[rid]
        d.remove = not d.reasons
        if d.remove:
            d.reasons = ["no keep rule keeps it"]
            if row["status"] in FAILED and keys and rules.keep_top is not None and not rules.include_failed:
                d.reasons = [f"{row['status']}: not ranked (--include-failed ranks it); no other rule keeps it"]
        else:
            why = protection(row, guards)
            if why:
                d.reasons.append(why)
        plan.decisions.append(d)
    _finish(plan, index, rows, guards, archive_dir)
    plan.decisions.sort(key=lambda d: (d.group, d.path))
    return plan


def plan_selection(index: Index, refs: Sequence[str] = (), where: str | None = None,
                   now: datetime | None = None, recent: Age = RECENT, kind: str = "archive",
                   archive_dir: str | None = None) -> Plan:
    """Archive (or remove) the named models, or those matching ``where``, except the protected ones."""
    if not refs and where is None:
        raise UsageError("name the models (id, path or repo/line/name), or give --where EXPR")
    now = now or datetime.now(timezone.utc)
    frame = _frame(index)
    plan = Plan(index.root, kind, [], per="line")
    ids: list[str] = []
    for ref in refs:
        ids.append(str(find_model(index, ref)["id"]))
    if where is not None:
        ids.extend(filter_where(index.df, where, index.metrics)["id"].to_list())
    chosen = frame.filter(pl.col("id").is_in(list(dict.fromkeys(ids))))
    infos = _metric_info(index)
    rows = {}
    skipped = 0
    for row in chosen.iter_rows(named=True):
        d = _decision(index, row, "line", infos)
        if row["status"] in INACTIVE:
            if refs:
                d.reasons, d.protected = [f"already {row['status']}"], True
                plan.decisions.append(d)
            else:
                skipped += 1
            continue
        d.remove = True
        d.reasons = ["named" if refs and row["id"] in ids[:len(refs)] else "matched by --where"]
        rows[row["id"]] = row
        plan.decisions.append(d)
    if skipped:
        plan.notes.append(f"{skipped} matching model(s) already deleted, trashed or archived are left out")
    guards = Guards.gather(index, list(rows.values()), now, recent)
    _recent_note(plan, guards)
    _finish(plan, index, rows, guards, archive_dir if kind == "archive" else None)
    plan.decisions.sort(key=lambda d: (d.group, d.path))
    return plan


@dataclass(slots=True)
class RestoreItem:
    id: str
    path: str
    label: str
    kind: str  # archive | trash | mlflow (a run soft-deleted in mlflow.db)
    source: str  # the archive file, the trash entry or the mlflow.db
    entry_path: str  # the ledger entry ("" for a run of mlflow.db)
    entry: dict = field(repr=False)
    size_bytes: int = 0
    problem: str | None = None  # why it cannot be restored now


def plan_restore(index: Index, refs: Sequence[str] = (), everything: bool = False) -> list[RestoreItem]:
    """The archived or trashed models to bring back: those named, or all of them. Runs of an mlflow.db that
    mlrepo soft-deleted count as trashed (restoring one makes it active again); runs the user deleted in MLflow are
    never brought back."""
    from mlrepo.commands.operations import removed_runs
    from mlrepo.repo_index import archived as ledger

    if not refs and not everything:
        raise UsageError("name the models to restore (id, path or repo/line/name), or give --all")
    wanted_ids = {str(find_model(index, ref)["id"]) for ref in refs}
    frame = _frame(index)
    deleted_runs = [r for r in frame.filter(pl.col("status") == "deleted").iter_rows(named=True) if is_mlflow_run(r)]
    mine: set[tuple[str, str]] = set()  # (store, run) that mlrepo deleted: restore brings back those only
    for store in {str(r["_store"]) for r in deleted_runs}:
        mine.update((store, run) for run in removed_runs.ours(
            index.root, store, [str(r["_source_id"]) for r in deleted_runs if r["_store"] == store]))
    if wanted_ids:
        named_theirs = [r for r in deleted_runs if r["id"] in wanted_ids and (r["_store"], r["_source_id"]) not in mine]
        if named_theirs:
            r = named_theirs[0]
            raise UsageError(f"{r['repo']}/{r['line'] or ''}/{r['name']} ({r['id']}) was deleted in MLflow, not by "
                             "mlrepo; `mlflow runs restore` brings it back")
    deleted_runs = [r for r in deleted_runs if (str(r["_store"]), str(r["_source_id"])) in mine]
    by_id = {r["id"]: r for r in index.df.filter(pl.col("status").is_in(["archived", "trashed"])).iter_rows(
        named=True)}
    by_id.update((r["id"], r) for r in deleted_runs)
    for ref_id in wanted_ids:
        if ref_id not in by_id:
            row = index.df.filter(pl.col("id") == ref_id).row(0, named=True)
            raise UsageError(f"{row['repo']}/{row['line'] or ''}/{row['name']} ({ref_id}) is {row['status']}, "
                             "not archived or trashed")
    items = []
    moved = index.raw.filter(pl.col("status").is_in(["archived", "trashed"]) & pl.col("_store").is_not_null())
    for rid, store in zip(moved["id"].to_list(), moved["_store"].to_list(), strict=True):
        if not everything and rid not in wanted_ids:
            continue
        entry_path = os.path.join(index.root, store)
        entry = ledger.read_entry(entry_path)
        if entry is None:
            continue
        row = by_id[rid]
        kind = str(entry["kind"])
        source = str(entry.get("archive") if kind == "archive" else entry.get("trash_files"))
        problem = None
        if os.path.lexists(str(entry["path"])):
            problem = f"something is already at {entry['path']}"
        elif kind == "archive" and not os.path.isfile(source):
            problem = f"archive missing: {source}"
        label = model_label(row)
        items.append(RestoreItem(rid, str(entry["path"]), label, kind, source, entry_path, entry,
                                 int(entry["row"].get("size_bytes") or 0), problem))
    for row in deleted_runs:
        if everything or row["id"] in wanted_ids:
            label = model_label(row)
            items.append(RestoreItem(row["id"], str(row["path"]), label, "mlflow", row["_store"], "",
                                     {"store": row["_store"], "run": row["_source_id"]},
                                     int(row["size_bytes"] or 0)))
    items.sort(key=lambda i: i.path)
    return items

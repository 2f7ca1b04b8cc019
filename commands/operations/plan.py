"""Deciding what to remove: keep rules (a union, as in restic ``forget`` and borg ``prune``) and protections.

A plan holds one ``Decision`` per live model (status not deleted/trashed/archived): remove it, or keep it and why.
Keep rules: ``keep_top`` (best K per group by a metric; further metrics break ties; a model lacking the metric is
kept), ``keep_last`` (newest N per group), ``keep_tags``. Candidate filters: ``where`` (only matching models may go)
and ``older_than`` (only models older than that may go). Protections, whatever the rules say: a model that changed
in the last minutes (metadata time or any file's mtime), one its source marks running, one whose run lives in a
store such as ``mlflow.db``, one outside the root or behind a symlink, one that contains another model.

Nothing here touches the disk except ``os.lstat`` to look at mtimes; executing a plan is ``commands.operations``.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import polars as pl
from mlrepo.commands.operations.paths import model_path_problem
from mlrepo.errors import UsageError
from mlrepo.repo_index.filtering import where as filter_where
from mlrepo.repo_index.index import Index, find_model
from mlrepo.repo_index.ranking import GROUPS, RankKey, rank, rank_keys
from mlrepo.repo_index.rows import raw_metric_key
from mlrepo.repo_index.units import human_size

INACTIVE = ("deleted", "trashed", "archived")
RECENT = timedelta(minutes=10)
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(y|w|d|h|min|m|s)", re.IGNORECASE)
_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m`` (minutes), ``1y``, or combined: ``1d12h``."""
    compact = text.strip().replace(" ", "")
    parts = list(_AGE.finditer(compact))
    if not compact or not parts or "".join(p.group(0) for p in parts) != compact:
        raise UsageError(f"bad age {text!r}: give a number and a unit, e.g. 30d, 12h, 2w, 90m, 1y")
    return timedelta(seconds=sum(float(p.group(1)) * _UNITS[p.group(2).lower()] for p in parts))


def human_age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class KeepRules:
    keep_top: int | None = None
    metrics: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    per: str = "line"
    keep_last: int | None = None
    keep_tags: tuple[str, ...] = ()
    older_than: timedelta | None = None
    where: str | None = None
    recent: timedelta = RECENT

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
    protected: bool = False  # kept whatever the rules say (running, recent, refused...)
    value: float | None = None  # the ranking metric's value, when ranked
    row: dict = field(default_factory=dict, repr=False)  # the raw index row, for the ledger
    metrics: dict = field(default_factory=dict, repr=False)  # raw metric key -> [name, dataset, split, direction]
    store: str | None = None  # the store file (rel) that records this model, e.g. mlflow.db
    source_id: str | None = None  # the model's id in that store (the MLflow run id)

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.repo, self.line, self.name) if p)

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

    @property
    def removed(self) -> list[Decision]:
        return [d for d in self.decisions if d.remove]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.remove]

    @property
    def bytes_freed(self) -> int:
        """What leaves the root; a run soft-deleted in mlflow.db frees nothing until ``mlflow gc``."""
        return sum(d.size_bytes for d in self.removed if not d.store)

    def groups(self) -> list[GroupTotal]:
        totals: dict[str, GroupTotal] = {}
        for d in self.decisions:
            t = totals.setdefault(d.group, GroupTotal(d.group))
            t.models += 1
            if d.remove:
                t.removed += 1
                t.bytes_freed += 0 if d.store else d.size_bytes
            else:
                t.kept += 1
        return sorted(totals.values(), key=lambda t: t.group)

    def to_dict(self) -> dict:
        return {
            "root": self.root, "kind": self.kind, "per": self.per,
            "ranked_by": [k.describe() for k in self.keys], "notes": self.notes,
            "remove": len(self.removed), "keep": len(self.kept), "bytes_freed": self.bytes_freed,
            "models": [{"id": d.id, "path": d.path, "repo": d.repo, "line": d.line, "name": d.name,
                        "format": d.format, "status": d.status, "size_bytes": d.size_bytes, "group": d.group,
                        "action": "remove" if d.remove else "keep", "reasons": d.reasons,
                        "protected": d.protected, "value": d.value} for d in self.decisions],
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


def newest_mtime(path: str, limit: int = 200_000) -> float | None:
    """The newest mtime (seconds) of the folder and anything in it, not following links."""
    newest = None
    seen = 0
    try:
        newest = os.lstat(path).st_mtime
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for name in [*dirnames, *filenames]:
                seen += 1
                try:
                    m = os.lstat(os.path.join(dirpath, name)).st_mtime
                except OSError:
                    continue
                newest = m if newest is None or m > newest else newest
            if seen > limit:
                break
    except OSError:
        return newest
    return newest


def _as_utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def is_mlflow_run(row: dict) -> bool:
    """A run recorded in an MLflow SQLite store: removed and restored through the store, never by its folder."""
    return row.get("format") == "mlflow" and str(row.get("_store") or "").endswith("mlflow.db") and \
        bool(row.get("_source_id"))


def protection(row: dict, root: str, now: datetime, recent: timedelta, look_at_files: bool = True) -> str | None:
    """Why this model must stay, whatever the rules say (None when it may go)."""
    if row.get("status") == "running":
        return "running (its source says so)"
    changed = _as_utc(row.get("updated_at"))
    if row.get("_store"):
        if not is_mlflow_run(row):
            return f"lives in the store {row['_store']}; remove it with the tool that wrote it"
        if changed is not None and changed > now - recent:
            return f"changed {human_age(now - changed)} ago (maybe still being written)"
        return None  # soft-deleted in the store, as MLflow does: its folder is MLflow's to remove (mlflow gc)
    problem = model_path_problem(str(row.get("path") or ""), root)
    if problem:
        return problem
    if changed is not None and changed > now - recent:
        return f"changed {human_age(now - changed)} ago (maybe still being written)"
    if look_at_files:
        newest = newest_mtime(str(row["path"]))
        if newest is not None:
            when = datetime.fromtimestamp(newest, timezone.utc)
            if when > now - recent:
                return f"files changed {human_age(now - when)} ago (maybe still being written)"
    return None


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


def _finish(plan: Plan, index: Index, rows: dict[str, dict], now: datetime, recent: timedelta) -> None:
    """Protections on what would be removed, and folders that hold other models."""
    all_paths = sorted(p for p in index.df["path"].to_list() if p)
    for d in plan.decisions:
        if not d.remove:
            continue
        why = protection(rows[d.id], index.root, now, recent)
        if why is None:
            inner = _contains_others(all_paths, d.path)
            if inner:
                why = f"contains {len(inner)} other model(s), e.g. {os.path.relpath(inner[0], d.path)}"
        if why:
            d.remove, d.protected, d.reasons = False, True, [why]
    runs = [d for d in plan.decisions if d.remove and d.store]
    if runs:
        plan.notes.append(f"{len(runs)} run(s) of mlflow.db are soft-deleted in it, as `mlflow runs delete` does "
                          f"(restorable); `mlflow gc` then frees their {human_size(sum(d.size_bytes for d in runs))}")


def plan_prune(index: Index, rules: KeepRules, now: datetime | None = None) -> Plan:
    """Which live models to remove under ``rules``, and why each kept one is kept."""
    rules.check()
    now = now or datetime.now(timezone.utc)
    frame = _frame(index)
    live = frame.filter(~pl.col("status").is_in(INACTIVE))
    inactive = frame.height - live.height
    keys = rank_keys(list(rules.metrics), list(rules.modes), index.df.columns, index.metrics) if rules.metrics else []
    plan = Plan(index.root, "prune", [], keys, rules.per)
    if keys:
        plan.notes.append("ranked by " + "; then ".join(k.describe() for k in keys) + f", per {rules.per}")
    if inactive:
        plan.notes.append(f"{inactive} model(s) already deleted, trashed or archived are not considered")
    infos = _metric_info(index)
    rows = {r["id"]: r for r in live.iter_rows(named=True)}
    reasons: dict[str, list[str]] = {i: [] for i in rows}
    values: dict[str, float | None] = {}

    if keys and rules.keep_top is not None:
        ranked = rank(live, keys, rules.per)
        for rid, r, value in zip(ranked["id"], ranked["rank"], ranked[keys[0].column], strict=True):
            values[rid] = value
            if r <= rules.keep_top:
                reasons[rid].append(f"top {rules.keep_top} by {keys[0].column.removeprefix('metrics.')} (#{r})")
        for rid in rows:
            if rid not in values:
                reasons[rid].append(f"has no {keys[0].column.removeprefix('metrics.')}")
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
        cutoff = now - rules.older_than
        for rid, row in rows.items():
            when = _as_utc(row.get("updated_at")) or _as_utc(row.get("created_at"))
            if when is None:
                reasons[rid].append("age unknown")
            elif when > cutoff:
                reasons[rid].append(f"newer than {human_age(rules.older_than)}")

    for rid, row in rows.items():
        d = _decision(index, row, rules.per, infos)
        d.value = values.get(rid)
        d.reasons = reasons[rid]
        d.remove = not d.reasons
        if d.remove:
            d.reasons = ["no keep rule keeps it"]
        else:
            why = protection(row, index.root, now, rules.recent, look_at_files=False)
            if why:
                d.reasons.append(why)
        plan.decisions.append(d)
    _finish(plan, index, rows, now, rules.recent)
    plan.decisions.sort(key=lambda d: (d.group, d.path))
    return plan


def plan_selection(index: Index, refs: Sequence[str] = (), where: str | None = None,
                   now: datetime | None = None, recent: timedelta = RECENT, kind: str = "archive") -> Plan:
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
    _finish(plan, index, rows, now, recent)
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
    """The archived or trashed models to bring back: those named, or all of them. Runs deleted in an mlflow.db
    (soft-deleted, by prune or by MLflow) count as trashed: restoring one makes it active again."""
    from mlrepo.repo_index import archived as ledger

    if not refs and not everything:
        raise UsageError("name the models to restore (id, path or repo/line/name), or give --all")
    wanted_ids = {str(find_model(index, ref)["id"]) for ref in refs}
    frame = _frame(index)
    deleted_runs = [r for r in frame.filter(pl.col("status") == "deleted").iter_rows(named=True) if is_mlflow_run(r)]
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
        label = "/".join(p for p in (row["repo"], row["line"], row["name"]) if p)
        items.append(RestoreItem(rid, str(entry["path"]), label, kind, source, entry_path, entry,
                                 int(entry["row"].get("size_bytes") or 0), problem))
    for row in deleted_runs:
        if everything or row["id"] in wanted_ids:
            label = "/".join(p for p in (row["repo"], row["line"], row["name"]) if p)
            items.append(RestoreItem(row["id"], str(row["path"]), label, "mlflow", row["_store"], "",
                                     {"store": row["_store"], "run": row["_source_id"]},
                                     int(row["size_bytes"] or 0)))
    items.sort(key=lambda i: i.path)
    return items

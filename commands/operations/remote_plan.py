"""The plan of a removal on object storage, and what it will cost in requests.

``plan_remote_removal(root, models, how)`` lists each chosen model's prefix once (its keys, sizes and ETags: what
execution compares again right before the model moves), refuses what it will not touch (a key that is not plain,
an empty prefix, mlrepo's own state; for ``--archive`` keys that cannot be one folder tree), and says per model and
in total how many LIST, HEAD, GET, PUT, COPY and DELETE requests the removal will make (``RequestCost``; the
journal's and the lock's included). The counts are exact for objects that keep their ETag when copied (every
object on SeaweedFS and MinIO; single-part objects on AWS); a copy that gets a new ETag costs 2 more GETs (both
sides read and compared).

Versioned buckets: a DELETE there only adds a delete marker; the old versions stay, and are billed, until a
lifecycle rule expires noncurrent versions (mlrepo's object-store library cannot delete a version, and deleting
history is the bucket owner's decision). The plan finds out with one HEAD (a versioned object has a version id)
and then says that no space is freed now (``space_note``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from mlrepo.commands.operations import remote_archive
from mlrepo.commands.operations.remote_keys import (
    Bucket,
    Obj,
    OddKey,
    RemoteRootLike,
    RequestCost,
    model_key,
    pages,
    put_requests,
)
from mlrepo.repo_index.rows import model_id

RemoteHow = Literal["trash", "archive", "delete"]


@dataclass(slots=True)
class RemoteDecision:
    """One chosen model: its objects as listed for the plan, what moving it costs, or why it is refused."""

    model: str  # root-relative prefix
    url: str
    objects: list[Obj]
    cost: RequestCost
    problem: str | None = None

    @property
    def id(self) -> str:
        return model_id(self.model)

    @property
    def size_bytes(self) -> int:
        return sum(o.size for o in self.objects)


@dataclass(slots=True)
class RemotePlan:
    url: str
    how: RemoteHow
    decisions: list[RemoteDecision]
    versioned: bool | None  # None: not known (nothing listed)
    planning: RequestCost  # what making the plan cost
    overhead: RequestCost = field(default_factory=RequestCost)  # the lock and the journal check of one run

    @property
    def movable(self) -> list[RemoteDecision]:
        return [d for d in self.decisions if d.problem is None]

    @property
    def cost(self) -> RequestCost:
        """What executing the plan will cost, in requests."""
        total = RequestCost()
        total.add(self.overhead)
        for d in self.movable:
            total.add(d.cost)
        return total

    @property
    def bytes_freed(self) -> int:
        """Bytes the root's prefix frees now (0 in a versioned bucket: see ``space_note``)."""
        if self.versioned or self.how == "trash":
            return 0
        return sum(d.size_bytes for d in self.movable)

    @property
    def space_note(self) -> str:
        n = sum(d.size_bytes for d in self.movable)
        if self.versioned:
            return (f"versioned bucket: the {n} bytes stay stored as noncurrent versions (DELETE adds delete "
                    "markers) until a lifecycle rule expires them")
        if self.how == "trash":
            return f"trash: the {n} bytes are moved under .mlrepo/trash/ (restorable), not freed"
        return f"{n} bytes freed" + (" (less the archives' size)" if self.how == "archive" else "")


def removal_cost(n: int, size: int, how: RemoteHow) -> RequestCost:
    """The requests one model of ``n`` objects (``size`` bytes) costs, as ``remote_moves`` makes them."""
    p = pages(n)
    if how == "trash":  # re-check LIST, journal PUT, COPY+HEAD each, ledger PUT, LIST, journal PUT, DELETEs
        return RequestCost(list=2 * p, head=n, put=3, copy=n, delete=p + 1)
    if how == "archive":  # + GET each object and the archive back; one upload of at most ``size`` bytes
        return RequestCost(list=2 * p, get=n + 1, put=3 + put_requests(size), delete=p + 1)
    return RequestCost(list=p, put=1, delete=p + 1)


def restore_cost(n: int, sizes: Sequence[int], kind: str) -> RequestCost:
    """The requests restoring one trashed or archived model costs."""
    p = pages(n)
    if kind == "trash":  # empty-prefix LIST, journal PUT, LIST, COPY+HEAD each, ledger, copies, journal DELETE
        return RequestCost(list=2 * p, head=n, put=1, copy=n, delete=2 + p)
    # LIST x3 (empty check, in-place check, before dropping the archive), GET the archive, PUT + HEAD each object
    return RequestCost(list=3 * p, head=n, get=1, put=2 + sum(put_requests(s) for s in sizes), delete=3)


def run_overhead() -> RequestCost:
    """The lock (a conditional PUT, then a DELETE) and the journal's LIST at the start of every run (a record
    left by an interrupted run costs more: its GET and its recovery)."""
    return RequestCost(list=1, put=1, delete=1)


def plan_remote_removal(root: RemoteRootLike, models: Sequence[str], how: RemoteHow = "trash") -> RemotePlan:
    """Plan the removal of ``models`` (root-relative prefixes, as the index's rows name them below the root)."""
    b = Bucket(root)
    decisions: list[RemoteDecision] = []
    versioned: bool | None = None
    for model in dict.fromkeys(models):
        try:
            rel = model_key(model.strip("/"))
            objects = b.listing(rel)
        except OddKey as exc:
            decisions.append(RemoteDecision(str(model), b.url_of(str(model)), [], RequestCost(), f"refused: {exc}"))
            continue
        size = sum(o.size for o in objects)
        problem = None if objects else "no objects under this prefix"
        if how == "archive" and objects:
            problem = remote_archive.tree_problem(objects)
        cost = removal_cost(len(objects), size, how) if problem is None else RequestCost()
        decisions.append(RemoteDecision(rel, b.url_of(rel), objects, cost, problem))
        if versioned is None and objects:
            meta = b.head(f"{rel}/{objects[0].rel}")
            versioned = bool(meta and meta.get("version"))
    return RemotePlan(b.url, how, decisions, versioned, b.cost, run_overhead())

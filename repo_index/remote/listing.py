"""Listing a remote root: paginated, parallel across prefixes, and never wider than the root prefix.

The first levels are listed with a delimiter (one request per 1,000 entries, like ``ls``) until there are enough
sub-prefixes to share between workers; each of those is then listed whole (all levels, page after page) in a thread
pool. A key the client cannot represent (object_store refuses control characters in keys) stops only the listing of
its own prefix: that prefix is split again by delimiter, and only the smallest part that still fails is reported as
skipped, with the reason.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlrepo.repo_index.remote.store import RemoteError, RemoteRoot

#: enough prefixes to keep the workers busy; delimiter levels stop there
FANOUT = 32
MAX_LEVELS = 3
WORKERS = 8


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One object under the root: its path relative to the root prefix, size, ETag and modification time."""

    rel: str
    size: int
    etag: str
    mtime_ns: int


@dataclass
class Listing:
    objects: list[RemoteObject] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, why) of prefixes that could not be listed


def _objects(root: RemoteRoot, metas: list[dict]) -> list[RemoteObject]:
    cut = len(root.prefix) + 1 if root.prefix else 0
    out = []
    for meta in metas:
        key = str(meta["path"])
        if root.prefix and not key.startswith(root.prefix + "/"):
            continue  # the root's own marker object, or nothing of ours
        modified = meta.get("last_modified")
        mtime = int(modified.timestamp()) * 10**9 + modified.microsecond * 1000 if modified else 0
        out.append(RemoteObject(key[cut:], int(meta.get("size") or 0), str(meta.get("e_tag") or ""), mtime))
    return out


def _whole(root: RemoteRoot, prefix: str, listing: Listing) -> list[RemoteObject]:
    """Every object under ``prefix``; on a key the client refuses, the prefix is split by delimiter instead."""
    try:
        return _objects(root, root.list_all(prefix))
    except RemoteError as exc:
        if not exc.invalid_path:
            raise
    try:
        subs, metas = root.list_dir(prefix)
    except RemoteError as exc:
        if not exc.invalid_path:
            raise
        listing.skipped.append((root.location.url_of_key(prefix), _reason(exc)))
        return []
    found = _objects(root, metas)
    for sub in subs:
        found.extend(_whole(root, sub, listing))
    return found


def _reason(exc: RemoteError) -> str:
    return str(exc).split(": ", 1)[-1]


def _level(root: RemoteRoot, prefix: str, listing: Listing) -> tuple[list[str], list[dict]]:
    try:
        return root.list_dir(prefix)
    except RemoteError as exc:
        if not exc.invalid_path:
            raise
        listing.skipped.append((root.location.url_of_key(prefix), _reason(exc)))
        return [], []


def list_root(root: RemoteRoot, workers: int = WORKERS) -> Listing:
    """Every object under the root prefix, as a Listing; request counts go to ``root.requests``."""
    listing = Listing()
    frontier = [root.prefix]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlrepo-list") as pool:
        for _depth in range(MAX_LEVELS):
            if len(frontier) >= FANOUT:
                break
            levels = list(pool.map(lambda p: _level(root, p, listing), frontier))
            frontier = [sub for subs, _ in levels for sub in subs]
            for _, metas in levels:
                listing.objects.extend(_objects(root, metas))
            if not frontier:
                break
        for part in pool.map(lambda p: _whole(root, p, listing), frontier):
            listing.objects.extend(part)
    listing.objects.sort(key=lambda o: o.rel)
    return listing

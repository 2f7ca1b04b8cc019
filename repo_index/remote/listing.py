"""Listing a remote root: paginated, parallel across prefixes, and never wider than the root prefix.

The first levels are listed with a delimiter (one request per 1,000 entries, like ``ls``) until there are enough
sub-prefixes to share between workers; each of those is then listed whole (all levels, page after page) in a thread
pool. A key the client cannot represent (object_store refuses control characters, empty, ``.`` and ``..``
segments) makes the folder that holds it unlistable: that folder is reported as skipped, and everything around it is
listed (see ``_whole``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlrepo.repo_index.remote.store import RemoteError, RemoteRoot

#: enough prefixes to keep the workers busy; delimiter levels stop there
FANOUT = 16
MAX_PREFIXES = 256
MAX_LEVELS = 4
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
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, why) of keys that could not be listed


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


def refused_folder(key: str) -> str:
    """The folder (key prefix) holding ``key``'s first name that object_store refuses: ASCII control characters,
    empty, ``.`` and ``..`` segments."""
    parts = key.split("/")
    for i, part in enumerate(parts):
        if part in ("", ".", "..") or any(ord(c) < 0x20 or c == "\x7f" for c in part):
            return "/".join(parts[:i])
    return "/".join(parts[:-1])


def _whole(root: RemoteRoot, prefix: str, listing: Listing) -> list[RemoteObject]:
    """Every object under ``prefix``. When the client refuses a key, the listing goes around the folder that holds
    the refused name: down to it by delimiter listings, every other branch listed whole; that one folder is
    reported as skipped (its page of the listing cannot be read, so none of its entries can be trusted)."""
    metas, failed = root.list_from(prefix)
    if failed is None:
        return _objects(root, metas)
    if failed.bad_key is None:
        raise failed
    folder = refused_folder(failed.bad_key)
    if folder != prefix and not folder.startswith(prefix + "/" if prefix else ""):
        raise failed
    found: list[RemoteObject] = []
    level = prefix
    while level != folder:
        subs, metas, refused = _level(root, level)
        if refused:  # another refused name higher up: this level is the one skipped
            folder = level
            break
        found.extend(_objects(root, metas))
        down = next((s for s in subs if folder == s or folder.startswith(s + "/")), None)
        for sub in subs:
            if sub != down:
                found.extend(_whole(root, sub, listing))
        if down is None:
            return found
        level = down
    shown = failed.bad_key[len(folder):].lstrip("/").split("/", 1)[0]
    listing.skipped.append((root.location.url_of_key(folder) if folder else root.location.url,
                            f"holds a name object_store refuses ({shown!r}: control characters, empty, '.' or '..'"
                            " segments); nothing in this folder is indexed"))
    return found


def _level(root: RemoteRoot, prefix: str) -> tuple[list[str], list[dict], bool]:
    """One delimiter level; on a refused name, the prefix is to be listed whole instead (third item True)."""
    try:
        subs, metas = root.list_dir(prefix)
    except RemoteError as exc:
        if not exc.invalid_path:
            raise
        return [], [], True
    return subs, metas, False


def list_root(root: RemoteRoot, workers: int = WORKERS) -> Listing:
    """Every object under the root prefix, as a Listing; request counts go to ``root.requests``.

    A level is descended only while there are fewer prefixes than ``FANOUT``, and its sub-prefixes are taken only
    when there are at most ``MAX_PREFIXES`` of them: listing 2,000 model folders one by one costs 2,000 requests,
    listing their 10 parents whole costs 10 (a page holds 1,000 keys)."""
    listing = Listing()
    frontier = [root.prefix]
    whole: list[str] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlrepo-list") as pool:
        for _depth in range(MAX_LEVELS):
            if len(frontier) >= FANOUT:
                break
            levels = list(pool.map(lambda p: _level(root, p), frontier))
            subs = [sub for found, _, _ in levels for sub in found]
            if len(subs) > MAX_PREFIXES:  # too many small prefixes: list this level's prefixes whole instead
                break
            for prefix, (_, metas, refused) in zip(frontier, levels, strict=True):
                if refused:
                    whole.append(prefix)
                listing.objects.extend(_objects(root, metas))
            frontier = subs
            if not frontier:
                break
        for part in pool.map(lambda p: _whole(root, p, listing), [*frontier, *whole]):
            listing.objects.extend(part)
    listing.objects.sort(key=lambda o: o.rel)
    return listing

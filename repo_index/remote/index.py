"""The index of a remote root: list it, bring the mirror up to date, scan the mirror with the ordinary readers,
then give every row its URL and its size from the listing.

Sizes on object storage are the objects' bytes (there are no blocks); ``n_files`` counts objects; a model's objects
exclude those of the models nested in it, as on disk. ``stats.remote`` says what the run cost in requests.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import polars as pl
from mlrepo.repo_index.index import Index, open_index
from mlrepo.repo_index.remote.listing import list_root
from mlrepo.repo_index.remote.mirror import Mirror
from mlrepo.repo_index.remote.store import RemoteRoot, open_remote


@dataclass(frozen=True, slots=True)
class RemoteStats:
    """What indexing a remote root cost: requests made and what the mirror did with the listing."""

    url: str
    objects: int
    lists: int
    gets: int
    bytes_read: int
    fetched: int
    placeholders: int
    unchanged: int
    removed: int
    seconds: float

    def describe(self) -> str:
        return (f"{self.lists} LIST and {self.gets} GET request{'s' * (self.gets != 1)} ({self.bytes_read:,} "
                f"bytes) for {self.objects} objects: {self.fetched} fetched, {self.placeholders} large ones sized "
                f"without a download, {self.unchanged} unchanged, {self.removed} gone")


def _sizes(rels: list[str], sizes: dict[str, int]) -> tuple[list[int], list[int]]:
    """Bytes and objects under each model rel, each object counted in the deepest model that holds it."""
    models = set(rels)
    total: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for rel, size in sizes.items():
        folder = rel
        while "/" in folder:
            folder = folder.rsplit("/", 1)[0]
            if folder in models:
                total[folder] += size
                count[folder] += 1
                break
        else:
            if "" in models:
                total[""] += size
                count[""] += 1
    return [total[r] for r in rels], [count[r] for r in rels]


def as_remote(idx: Index, tree: str, remote: RemoteRoot, sizes: dict[str, int]) -> pl.DataFrame:
    """The mirror's rows with URLs for paths (in messages too) and sizes from the listing."""
    raw = idx.raw
    url = remote.url
    local = pl.col("path")
    rels = raw["_rel"].to_list()
    size, n = _sizes(rels, sizes)
    return raw.with_columns(
        pl.when(local == tree).then(pl.lit(url))
        .when(local.str.starts_with(tree + "/")).then(pl.lit(url + "/") + local.str.slice(len(tree) + 1))
        .otherwise(local).alias("path"),
        pl.col("error").str.replace_all(tree, url, literal=True),
        pl.Series("size_bytes", size, dtype=raw.schema["size_bytes"]),
        pl.Series("n_files", n, dtype=raw.schema["n_files"]),
    )


def open_remote_index(url: str, *, rebuild: bool = False) -> Index:
    """The index of the remote root at ``url``; a warm run GETs only objects whose ETag or size changed."""
    start = time.perf_counter()
    remote = open_remote(url)
    listing = list_root(remote)
    mirror = Mirror(remote.url)
    with mirror.locked():
        synced = mirror.sync(remote, listing, rebuild)
        local = open_index(mirror.tree, rebuild=rebuild)
    raw = as_remote(local, mirror.tree, remote, synced.sizes)
    stats = local.stats
    stats.skipped = [*listing.skipped, *synced.skipped,
                     *((p.replace(mirror.tree, remote.url, 1), why) for p, why in stats.skipped)]
    stats.seconds = time.perf_counter() - start
    stats.remote = RemoteStats(remote.url, len(listing.objects), remote.requests.lists, remote.requests.gets,
                               remote.requests.bytes_read, synced.fetched, synced.placeholders, synced.unchanged,
                               synced.removed, stats.seconds)
    return Index(remote.url, raw, local.info, stats)

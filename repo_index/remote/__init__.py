"""Remote roots: model stores in object storage (``s3://``, ``gs://``, ``az://``) read through obstore.

``open_remote(url)`` is the seam the other parts use (the store, the root prefix, request counters);
``open_remote_index(url)`` indexes a remote root through a local metadata mirror (``mirror.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlrepo.repo_index.remote.location import Location, is_url, parse_url
from mlrepo.repo_index.remote.store import RemoteRoot, Requests, open_remote

if TYPE_CHECKING:
    from mlrepo.repo_index.index import Index

__all__ = ["Location", "RemoteRoot", "Requests", "is_url", "open_remote", "open_remote_index", "parse_url"]


def open_remote_index(url: str, *, rebuild: bool = False) -> Index:
    """See ``remote.index.open_remote_index`` (imported on use: polars and the readers load only then)."""
    from mlrepo.repo_index.remote.index import open_remote_index as opened

    return opened(url, rebuild=rebuild)

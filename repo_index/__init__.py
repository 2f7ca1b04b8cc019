"""The model index: format readers, the scanner, the polars table and its cache, filters, ranking, lineage, disk
usage. Pure data: never imports textual."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlrepo.repo_index.index import Index, RootError, open_index

__all__ = ["Index", "RootError", "open_index"]


def __getattr__(name: str) -> object:
    """Loaded on first use (PEP 562): a scan worker imports the scanner and readers without polars."""
    if name in __all__:
        from mlrepo.repo_index import index

        return getattr(index, name)
    raise AttributeError(f"module 'mlrepo.repo_index' has no attribute {name!r}")

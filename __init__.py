"""mlrepo: one index over every model folder under a root.

For notebooks::

    import mlrepo
    idx = mlrepo.open_index("~/experiments")
    idx.df                # polars DataFrame, one row per model
    idx.df.to_pandas()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlrepo.repo_index import Index, open_index

__all__ = ["Index", "open_index"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Loaded on first use (PEP 562): a scan worker imports ``mlrepo.repo_index.scanner`` without polars."""
    if name in __all__:
        from mlrepo import repo_index

        return getattr(repo_index, name)
    raise AttributeError(f"module 'mlrepo' has no attribute {name!r}")

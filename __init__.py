"""mlrepo: one index over every model folder under a root.

For notebooks::

    import mlrepo
    idx = mlrepo.open_index("~/experiments")
    idx.df                # polars DataFrame, one row per model
    idx.df.to_pandas()
"""

from mlrepo.repo_index import Index, open_index

__all__ = ["Index", "open_index"]
__version__ = "0.1.0"

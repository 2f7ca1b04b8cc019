"""The model index: format readers, the scanner, the polars table and its cache, filters, ranking, lineage, disk
usage. Pure data: never imports textual."""

from mlrepo.repo_index.index import Index, IndexError_, open_index

__all__ = ["Index", "IndexError_", "open_index"]

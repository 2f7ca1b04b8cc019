"""Shell completion of metric names, columns and model ids from what the last index of a root saw.

Every command that indexes a root leaves a small JSON of names beside the index cache, in the user cache directory
(``MLREPO_CACHE_DIR`` overrides it). A TAB reads that file and nothing else: no polars, no scan, no walk, so a
completion costs the interpreter's start and one small read. A root never indexed completes nothing.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import click
import orjson

VERSION = 1


def _names_path(root: str) -> str:
    base = os.environ.get("MLREPO_CACHE_DIR")
    if not base:
        import platformdirs

        base = platformdirs.user_cache_dir("mlrepo")
    digest = hashlib.sha1(root.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(base, "names", f"{digest}.json")


def save_names(root: str, columns: list[str], metrics: list[str], ids: list[str]) -> None:
    """Write the names a TAB offers for ``root``; a disk that refuses costs only the completion."""
    path = _names_path(root)
    data = orjson.dumps({"version": VERSION, "root": _key(root), "columns": columns, "metrics": metrics, "ids": ids})
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return
    except OSError:
        pass
    from mlrepo.repo_index.files import atomic_write  # tempfile and shutil: only when there is something to write

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, lambda fh: fh.write(data))
    except OSError:
        pass


def load_names(root: str) -> dict[str, Any]:
    try:
        with open(_names_path(root), "rb") as fh:
            data = orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == VERSION and data.get("root") == _key(root) else {}


def _key(root: str) -> str:
    """The root as the file records it: its bytes in hex, since a name that is not UTF-8 is no JSON string."""
    return root.encode("utf-8", "surrogateescape").hex()


def _root_of(ctx: click.Context) -> str:
    given = ctx.params.get("root") or os.environ.get("MLREPO_ROOT") or "."
    if not isinstance(given, str):
        given = "."
    return os.path.abspath(os.path.expanduser(given))


def _matching(options: list[str], incomplete: str) -> list[str]:
    return [o for o in options if isinstance(o, str) and o.startswith(incomplete)][:500]


def metric_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return _matching(load_names(_root_of(ctx)).get("metrics", []), incomplete)


def column_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    head, sep, last = incomplete.rpartition(",")  # --columns id,metr<TAB>
    prefix = head + sep
    return [prefix + c for c in _matching(load_names(_root_of(ctx)).get("columns", []), last)]


def model_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return _matching(load_names(_root_of(ctx)).get("ids", []), incomplete)

"""The options and arguments the reading commands share, and what they mean: ``--where``, ``--index URL`` (the
published team index instead of ROOT), ``--format``, and ``[ROOT] MODEL…`` with ``--root`` (``show``, ``diff``).
Imports no polars: ``--help`` and a TAB run through here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from mlrepo.commands.cli import complete
from mlrepo.commands.cli.common import LIST_FORMATS, get_root, load
from mlrepo.commands.cli.roots import check_refs_inside
from mlrepo.errors import UsageError

if TYPE_CHECKING:
    from mlrepo.repo_index import Index

DEFAULT_LS = ("id", "repo", "line", "name", "format", "status", "size_bytes", "updated_at")


def split_commas(values: tuple[str, ...]) -> list[str]:
    """``--columns a,b --columns c`` (and ``--metric``) as one list."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def where_opt(f: Callable) -> Callable:
    return click.option("--where", "where_expr", metavar="EXPR", shell_complete=complete.column_names,
                        help="Only models matching EXPR, e.g. \"metrics.f1 > 0.8 and params.model = 'rf'\".")(f)


def index_opt(f: Callable) -> Callable:
    return click.option("--index", "index_url", metavar="URL",
                        help="Query a published team index (a Delta table: folder, s3://...) instead of ROOT.")(f)


def index_source(root: str | None, yes: bool, index_url: str | None, where_expr: str | None = None,
                 limit: int | None = None) -> Index:
    """The index of ROOT, or with ``--index URL`` the published team index: the rows ``where_expr`` selects (the
    first ``limit`` of them when given), read with both pushed into the scan."""
    if index_url is None:
        return load(get_root(root, yes, remote=True))
    if root is not None:
        raise UsageError("give ROOT or --index URL, not both")
    from mlrepo.repo_index.team import open_team

    return open_team(index_url, where_expr, limit)  # type: ignore[return-value]  # shaped like Index for listings


def format_opt(default: str = "table", choices: tuple[str, ...] = LIST_FORMATS) -> Callable:
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format (json: README, 'Machine-readable output').")


def named_models(args: tuple[str, ...], root_opt: str | None, n_models: int, yes: bool) -> tuple[object, list[dict]]:
    """``[ROOT] MODEL…`` with exactly ``n_models`` models (``show``, ``diff``): one argument more is ROOT; ROOT
    otherwise comes from ``--root``, MLREPO_ROOT, the config or the current folder, as for every command."""
    from mlrepo.repo_index.index import find_model

    given: str | None
    if len(args) == n_models + 1 and root_opt is None:
        given, refs, source = args[0], list(args[1:]), "the ROOT argument"
    elif len(args) == n_models:
        given, refs, source = root_opt, list(args), "--root"
    else:
        what = "MODEL" if n_models == 1 else "MODEL_A MODEL_B"
        raise UsageError(f"give [ROOT] {what}" + (" (ROOT once: as an argument or --root)" if root_opt else ""))
    root = get_root(given, yes, source, remote=True)
    check_refs_inside(root, refs)
    idx = load(root)
    return idx, [find_model(idx, ref) for ref in refs]


root_opt = click.option("--root", "root_opt", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
                        help="ROOT, when not given as the first argument.")
yes_opt = click.option("-y", "--yes", is_flag=True,
                       help="Index ROOT even when it is clearly no model store (/, a home or system folder).")

"""``mlrepo tui`` (the terminal app, or a listing when there is no terminal) and ``mlrepo demo`` (the repository it
opens with ``--demo``). Textual loads only when the app starts."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from mlrepo.commands.cli.common import get_root, load, note, root_argument, visible
from mlrepo.commands.cli.options import DEFAULT_LS, index_opt, index_source
from mlrepo.errors import UsageError
from mlrepo.repo_index.remote.location import is_url

if TYPE_CHECKING:
    from mlrepo.repo_index import Index


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
def demo(directory: str) -> None:
    """Write a realistic demo repository into DIRECTORY."""
    from mlrepo.commands.operations.demo import write_demo

    if not directory.strip():
        raise UsageError("DIRECTORY is empty: give a new or empty folder")
    if os.path.isdir(directory) and os.listdir(directory):
        raise UsageError(f"{directory} is not empty; give a new or empty folder")
    n = write_demo(directory)
    click.echo(f"wrote {n} models to {os.path.abspath(directory)}; try: mlrepo ls {directory}")


@click.command()
@root_argument()
@index_opt
@click.option("--demo", is_flag=True, help="Open a generated demo repository instead of ROOT.")
def tui(root: str | None, yes: bool, index_url: str | None, demo: bool) -> None:
    """The terminal app: browse, sort, filter and pick models; `p` prints the selected model's path.

    A remote ROOT (s3://…) or a team index (--index URL) opens read-only: no live updates, no prune or archive."""
    if demo:
        import platformdirs
        from mlrepo.commands.operations.demo import cached_demo

        path = cached_demo(platformdirs.user_cache_dir("mlrepo"))
    elif index_url is not None:
        path = index_url
    else:
        path = get_root(root, yes, remote=True).path
    source: Callable[[], Index] | None = None
    if index_url is not None or is_url(path):
        source = functools.partial(index_source, root, yes, index_url)
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # Textual draws on stderr and reads stdin
        from mlrepo.commands.cli import output
        from mlrepo.commands.cli.roots import Root

        note("mlrepo tui needs a terminal; listing the models instead")
        idx = source() if source is not None else load(Root(path, "tui"))
        output.write(idx.df.select(*DEFAULT_LS, *idx.source_columns), "table")
        return
    from mlrepo.tui.app import MlrepoApp  # textual only loads for this command

    app = MlrepoApp(path, label="demo" if demo else (root or path), source=source)
    if sys.stdout.isatty():
        picked = app.run()
    else:  # `cd "$(mlrepo tui)"`: Textual sizes the screen from stdout, so it sees the terminal until the pick
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            picked = app.run()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    if picked:
        click.echo(visible(picked))

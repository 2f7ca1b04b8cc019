"""What every command shares: the run's settings, ROOT as an argument, and loading the index of a ROOT (with
progress on a terminal and the names shell completion offers). Imports no polars until an index is loaded."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click
from mlrepo.commands.cli import complete
from mlrepo.commands.cli.config import Value
from mlrepo.commands.cli.roots import Root, check_whole, resolve_root
from mlrepo.errors import UsageError
from mlrepo.repo_index.remote.location import is_url

if TYPE_CHECKING:
    from mlrepo.repo_index import Index

LIST_FORMATS = ("table", "csv", "json", "jsonl", "md")
EXPORT_FORMATS = ("csv", "json", "jsonl", "parquet", "md")


@dataclass
class State:
    """One run of ``mlrepo``: its arguments and the settings in force (``ctx.obj``)."""

    argv: list[str] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    looked: list[str] = field(default_factory=list)
    quiet: bool = False


def state() -> State:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(State) if ctx else None
    return obj if obj is not None else State()


def root_argument(with_yes: bool = True) -> Callable:
    """``[ROOT]`` (and ``--yes`` to index a folder that is clearly no model store)."""
    def decorate(f: Callable) -> Callable:
        if with_yes:
            f = click.option("-y", "--yes", "yes", is_flag=True,
                             help="Index ROOT even when it is clearly no model store (/, a home or system folder)."
                             )(f)
        return click.argument("root", required=False, type=click.Path(file_okay=False, path_type=str))(f)
    return decorate


def get_root(given: str | None, yes: bool, source: str = "the ROOT argument", remote: bool = False) -> Root:
    """ROOT resolved (argument, MLREPO_ROOT, config, current folder) and checked, before anything is read.
    A URL (``s3://…``) is a remote root: accepted only by the commands that read (``remote=True``)."""
    configured = state().values.get("root")
    config_root = (Root(str(configured.value), f"root in {configured.source}")
                   if configured is not None and configured.source != "MLREPO_ROOT" else None)
    root = resolve_root(given, source, config_root)
    if is_url(root.path):
        if not remote:
            ctx = click.get_current_context(silent=True)
            raise UsageError(f"{root.path}: `mlrepo {ctx.info_name if ctx else 'this command'}` does not work on "
                             "remote roots yet (index, ls, best, show, diff, history, du, export and tui do)")
        return root
    check_whole(root, yes)
    return root


@contextmanager
def _progress(root: Root, cold: bool) -> Iterator[None]:
    """On a terminal, a line on stderr saying which root is being read and for how long, erased when done: at once
    when the index is cold (never built, or ``--rebuild``: the user is about to wait), else after half a second.
    Nothing when stderr is not a terminal or with ``-q``."""
    if state().quiet or not sys.stderr.isatty():
        yield
        return
    # one line of stderr's terminal at most (a wrapped line would survive the erase), the root's name as text,
    # cut at its start when too long (its end says more, and the seconds are the progress)
    width = max(20, os.get_terminal_size(sys.stderr.fileno()).columns - 1)
    path = visible(os.path.abspath(os.path.expanduser(root.path)))
    done = threading.Event()
    start = time.monotonic()
    shown_once = threading.Event()

    def show() -> None:
        seconds = f" … {time.monotonic() - start:.0f} s (-q hides this)"
        room = width - len("indexing ") - len(seconds)
        line = f"indexing {path if len(path) <= room else '…' + path[len(path) - room + 1:]}{seconds}"
        sys.stderr.write("\r\x1b[K" + line[:width])
        sys.stderr.flush()
        shown_once.set()

    def tick() -> None:
        if not cold and done.wait(0.5):
            return
        while not done.wait(0.25):
            show()

    if cold:
        show()
    thread = threading.Thread(target=tick, name="mlrepo-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if shown_once.is_set():
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def load(root: Root, rebuild: bool = False, write: bool = True) -> Index:
    """The index of ROOT; ``write=False`` (dry runs) leaves nothing behind, not even a cache."""
    from mlrepo.repo_index import open_index
    from mlrepo.repo_index.remote import open_remote_index

    known = root.path if is_url(root.path) else os.path.abspath(os.path.expanduser(root.path))
    with _progress(root, cold=rebuild or not complete.load_names(known)):
        if is_url(root.path):
            idx = open_remote_index(root.path, rebuild=rebuild)
        else:
            idx = open_index(root.path, rebuild=rebuild, write_cache=write)
    if write:
        complete.save_names(idx.root, idx.df.columns, [c.removeprefix("metrics.") for c in idx.metric_columns],
                            idx.df["id"].to_list())
    if idx.df.is_empty() and not is_url(root.path):
        from mlrepo.repo_index.readers import folder_format

        fmt = folder_format(known)  # ROOT holds models; a model folder given as ROOT holds none of its own
        if fmt is not None:
            note(f"{known} is itself a model folder ({fmt}), not a root of models: its parent folder lists it")
    return idx


def print_json(obj: object) -> None:
    """One JSON document on stdout (orjson: numpy values and dates as JSON, the rest as text)."""
    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj, default=str, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    sys.stdout.flush()


def visible(text: str) -> str:
    """Names from disk as text (``views.text.visible``), loaded on first use: ``--help`` loads no polars."""
    from mlrepo.commands.views.text import visible as shown

    return shown(text)


def note(message: str) -> None:
    """A dim hint on stderr (the row count under a table...), silenced by ``-q``; names in it shown as text."""
    if not state().quiet:
        from mlrepo.commands.cli.console import err

        err.print(visible(message), style="dim", markup=False)

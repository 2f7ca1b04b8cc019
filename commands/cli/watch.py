"""``mlrepo watch``: the live index as JSON lines on stdout, one object per change, until interrupted; meanwhile it
answers the ``ls`` and ``best`` of other mlrepo processes for the same root (``watch_socket``)."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click
import orjson
from mlrepo.commands.cli.common import get_root, root_argument, visible

if TYPE_CHECKING:
    from mlrepo.commands.cli.watch_socket import Answer, Command
    from mlrepo.repo_index.live import LiveIndex


@click.command()
@root_argument()
@click.option("--polling", is_flag=True, help="Poll the disk instead of using inotify (network file systems).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between polls when polling.")
@click.option("--debounce", type=click.FloatRange(min=0.0), default=0.2, show_default=True,
              help="Seconds of quiet in a model folder before it is read again.")
def watch(root: str | None, yes: bool, polling: bool, interval: float, debounce: float) -> None:
    """Stream index changes as JSON lines: {"schema_version", "event": "added"|"updated"|"removed", "id", "path",
    "format", "repo", "line", "name", "status", "error", "metrics"}, one line per change, flushed at once. Ctrl-C (or SIGTERM) stops cleanly.
    The cache is kept up to date, so the next `mlrepo ls` starts warm; while it runs, `mlrepo ls` and `mlrepo best`
    of this root in scripts are answered by it, after a sync (MLREPO_WATCH=off reads the disk instead)."""
    from mlrepo.commands.cli.watch_socket import Answering
    from mlrepo.repo_index.live import LiveIndex

    def warn(message: str) -> None:
        click.echo(f"mlrepo: warning: {message}", err=True)

    live = LiveIndex(get_root(root, yes).path, on_warning=warn, observer="polling" if polling else "auto",
                     poll_interval=interval, debounce=debounce)
    cookies = _cookie_folder(live.root)  # before the watch starts, so that inotify follows it
    stop = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    out = sys.stdout.buffer
    answering: Answering | None = None
    try:
        index = live.start()
        why = cookies or ("it does not use inotify" if live.mode != "inotify" else None)
        if why is None:
            why = "its first sync did not finish" if live.sync(timeout=600) is None else None
        if why is None:
            answering = Answering(live.root, _root_id(live.root), lambda cmd, params: _answer(live, cmd, params))
            why = answering.start()
        serving = "; not answering other commands: " + why if why else "; answering ls and best of other commands"
        click.echo(f"watching {len(index)} models under {visible(live.root)} ({live.mode}){serving}; "
                   "Ctrl-C to stop", err=True)
        while not stop.is_set():
            batch = live.get(timeout=0.2)
            if batch is None:
                continue
            out.write(b"".join(orjson.dumps(e.to_dict()) + b"\n" for e in batch.events))
            out.flush()
            if batch.final:
                raise click.ClickException(live.error or "stopped watching")
    finally:
        if answering is not None:
            answering.stop()
        live.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stop.is_set():
            click.echo("stopped", err=True)


def _cookie_folder(root: str) -> str | None:
    """Make ``<root>/.mlrepo/``, where ``LiveIndex.sync`` writes its cookies; why it cannot be, or None. A root whose
    state lives outside it (an MLflow file store) gets nothing written: its watch does not answer."""
    from mlrepo.repo_index.state import STATE_DIR, StateError, checked_dir, state_dir

    if not os.path.isdir(root):
        return None  # said by the live index itself
    if state_dir(root) != os.path.join(root, STATE_DIR):
        return "an MLflow file store keeps mlrepo's state outside it"
    try:
        checked_dir(root)
    except (StateError, OSError) as exc:
        return str(exc)
    return None


def _root_id(root: str) -> tuple[int, int]:
    st = os.stat(root)
    return st.st_dev, st.st_ino


def _answer(live: LiveIndex, command: Command, params: dict[str, Any]) -> Answer | None:
    """A fresh answer from the live index, or None (the asking command then reads the disk)."""
    from mlrepo.commands.cli.read import answer

    index = live.sync()
    if index is None or index.df.is_empty():  # an empty root's notes are the disk reader's to give
        return None
    return answer(index, command, params)

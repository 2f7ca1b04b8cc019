"""``mlrepo watch``: the live index as JSON lines on stdout, one object per change, until interrupted."""

from __future__ import annotations

import signal
import sys
import threading

import click
import orjson
from mlrepo.commands.cli.common import get_root, root_argument


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
    The cache is kept up to date, so the next `mlrepo ls` starts warm."""
    from mlrepo.repo_index.live import LiveIndex

    def warn(message: str) -> None:
        click.echo(f"mlrepo: warning: {message}", err=True)

    live = LiveIndex(get_root(root, yes).path, on_warning=warn, observer="polling" if polling else "auto", poll_interval=interval,
                     debounce=debounce)
    stop = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    out = sys.stdout.buffer
    try:
        index = live.start()
        click.echo(f"watching {len(index)} models under {live.root} ({live.mode}); Ctrl-C to stop", err=True)
        while not stop.is_set():
            batch = live.get(timeout=0.2)
            if batch is None:
                continue
            out.write(b"".join(orjson.dumps(e.to_dict()) + b"\n" for e in batch.events))
            out.flush()
            if batch.final:
                raise click.ClickException(live.error or "stopped watching")
    finally:
        live.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if stop.is_set():
            click.echo("stopped", err=True)

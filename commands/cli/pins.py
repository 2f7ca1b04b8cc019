"""``mlrepo pin`` and ``mlrepo unpin``: protect models from prune and archive (mlrepo's own state, never the
tracker's files)."""

from __future__ import annotations

import click
from mlrepo.commands.cli.common import get_root, load, visible
from mlrepo.commands.cli.console import err
from mlrepo.commands.cli.roots import check_refs_inside, split_root
from mlrepo.errors import UsageError
from mlrepo.repo_index import pins as pinning
from mlrepo.repo_index.index import find_model
from mlrepo.repo_index.labels import model_label


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] [MODEL]...")
@click.option("--note", default="", metavar="TEXT", help="Why it is pinned (deployed, resumed from...).")
@click.option("--format", "fmt", type=click.Choice(["tsv", "json"]), default="tsv", show_default=True,
              help="The list of pins: id, path and note a line (control characters escaped), or JSON.")
def pin(args: tuple[str, ...], note: str, fmt: str) -> None:
    """Pin models: prune and archive never remove them. Without MODEL, list the pins.

    MODEL: id, path or repo/line/name. Pins live in ROOT's .mlrepo/pins.json and survive a rebuilt index."""
    given, refs = split_root(args, False)
    root = get_root(given, False)
    check_refs_inside(root, refs)
    idx = load(root)
    if not refs:
        pins = sorted(pinning.load_pins(idx.root).values(), key=lambda p: p.path)
        if fmt == "json":
            import orjson
            from mlrepo.repo_index.schema import stamped

            click.echo(orjson.dumps([stamped({"id": p.id, "path": p.path, "note": p.note, "pinned_at": p.pinned_at})
                                     for p in pins]).decode())
            return
        for p in pins:
            click.echo("\t".join(visible(field) for field in (p.id, p.path, p.note)))
        return
    rows = [find_model(idx, ref) for ref in refs]
    made = pinning.pin(idx.root, [(str(r["id"]), str(r["path"])) for r in rows], note)
    for row, p in zip(rows, made, strict=True):
        err.print(visible(f"pinned {model_label(row)} ({p.id})" + (f": {p.note}" if p.note else "")), markup=False)


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] MODEL...")
def unpin(args: tuple[str, ...]) -> None:
    """Release pinned models (prune and archive may remove them again)."""
    given, refs = split_root(args, False)
    if not refs:
        raise UsageError("name the models to unpin (id, path or repo/line/name)")
    root = get_root(given, False)
    check_refs_inside(root, refs)
    idx = load(root)
    pins = pinning.load_pins(idx.root)
    ids = []
    for ref in refs:
        if ref in pins:  # a pin whose model is gone from the index can still be released by its id
            ids.append(ref)
        else:
            ids.append(str(find_model(idx, ref)["id"]))
    gone = set(pinning.unpin(idx.root, ids))
    for mid in ids:
        err.print(f"unpinned {mid}" if mid in gone else f"{mid} was not pinned", markup=False)

"""``mlrepo pin`` and ``mlrepo unpin``: protect models from prune and archive (mlrepo's own state, never the
tracker's files)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click
from mlrepo.commands.cli.common import get_root, load, visible
from mlrepo.commands.cli.common import note as hint  # pin has a --note
from mlrepo.commands.cli.console import err
from mlrepo.commands.cli.roots import Root, check_refs_inside, split_root
from mlrepo.errors import UsageError
from mlrepo.repo_index import pins as pinning
from mlrepo.repo_index.files import is_within
from mlrepo.repo_index.index import find_model
from mlrepo.repo_index.labels import model_label
from mlrepo.repo_index.readers import folder_format
from mlrepo.repo_index.remote.location import is_url

if TYPE_CHECKING:
    from mlrepo.repo_index import Index


def _root_and_models(args: tuple[str, ...]) -> tuple[Root, list[str], Index]:
    """``[ROOT] [MODEL]…``. One folder alone is the ROOT whose pins to list (``mlrepo pin ROOT``), unless a model of
    the root in force (MLREPO_ROOT, the config, the current folder) lives in exactly that folder: then it is that
    model, pinned. A folder outside the root in force, or the root itself, is never one of its models; a lone folder
    that is itself a model is refused, never listed as an empty root."""
    given, refs = split_root(args, False)
    if given is None and len(refs) == 1 and not is_url(refs[0]) and os.path.isdir(refs[0]):
        folder = os.path.abspath(os.path.expanduser(refs[0]))
        try:
            in_force: Root | None = get_root(None, False)
        except UsageError:  # no store (home, /tmp) or a missing MLREPO_ROOT: the folder given is the ROOT meant
            in_force = None
        if in_force is not None:
            real, top = os.path.realpath(folder), os.path.realpath(in_force.path)
            if real != top and is_within(real, top):
                idx = load(in_force)
                if idx.df["path"].is_in([folder, os.path.join(idx.root, os.path.relpath(real, top))]).any():
                    return in_force, refs, idx
        fmt = folder_format(folder)
        if fmt is not None:  # `pin` meant to protect it: an empty listing of pins would look like success
            raise UsageError(f"{visible(folder)} is a model folder ({fmt}), not a root: to pin it, name its root "
                             f"too (mlrepo pin ROOT {visible(refs[0])}) or run mlrepo inside the root")
        given, refs = refs[0], []
    root = get_root(given, False)
    check_refs_inside(root, refs)
    return root, refs, load(root)


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] [MODEL]...")
@click.option("--note", default="", metavar="TEXT", help="Why it is pinned (deployed, resumed from...).")
@click.option("--format", "fmt", type=click.Choice(["tsv", "json"]), default="tsv", show_default=True,
              help="The list of pins: id, path and note a line (control characters escaped), or JSON.")
def pin(args: tuple[str, ...], note: str, fmt: str) -> None:
    """Pin models: prune and archive never remove them. Without MODEL, list the pins.

    MODEL: id, path or repo/line/name. Pins live in ROOT's .mlrepo/pins.json and survive a rebuilt index."""
    _, refs, idx = _root_and_models(args)
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
        hint(f"{len(pins)} pinned under {idx.root}")
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

"""``prune``, ``archive`` and ``restore`` on a remote root (``s3://…``): the same plan as on disk, then the
operations of ``commands/operations/remote_*`` (copy, verify, then delete; journaled in the bucket).

The keep rules decide on the index's rows exactly as they do for a folder. The models to go are then listed once
more (``plan_remote_removal``), which is what execution compares right before each one moves and what says the
cost in requests. Archives go under the root's ``.mlrepo/archive/`` prefix: ``--archive DIR`` and ``--to DIR``
name local folders and are refused here.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click
from mlrepo.commands.cli.common import visible
from mlrepo.commands.cli.console import err
from mlrepo.commands.cli.outcomes import report_outcomes
from mlrepo.errors import FailedError, RefusedError

if TYPE_CHECKING:
    from mlrepo.commands.operations.execute import Report
    from mlrepo.commands.operations.plan import Decision
    from mlrepo.commands.operations.remote_plan import RemoteHow, RemotePlan
    from mlrepo.repo_index.remote import RemoteRoot

VERB = {"trash": "trashed", "archive": "archived", "delete": "deleted"}


def _open(url: str) -> RemoteRoot:
    from mlrepo.repo_index.remote import open_remote

    return open_remote(url)


def recover(url: str) -> None:
    """Finish or roll back what an interrupted run left in the bucket's journal."""
    from mlrepo.commands.operations.remote_execute import recover_remote

    for line in recover_remote(_open(url)):
        err.print(visible(f"recovered: {line}"), markup=False)


def _below(root: RemoteRoot, path: str) -> str:
    """A row's URL as the prefix below the root (what the operations take); anything else is refused there."""
    base = root.url.rstrip("/") + "/"
    return path.removeprefix(base)


def plan_on_bucket(url: str, removed: Sequence[Decision], how: RemoteHow) -> tuple[RemoteRoot, RemotePlan]:
    from mlrepo.commands.operations.remote_plan import plan_remote_removal

    root = _open(url)
    return root, plan_remote_removal(root, [_below(root, d.path) for d in removed], how)


def plan_fields(rplan: RemotePlan) -> dict[str, Any]:
    """What the JSON plan adds for a bucket: the requests it will make, what it frees, what it refuses."""
    return {"requests": dataclasses.asdict(rplan.cost), "space_note": rplan.space_note,
            "versioned": rplan.versioned,
            "refused": [{"url": d.url, "problem": d.problem} for d in rplan.decisions if d.problem]}


def show_bucket_plan(rplan: RemotePlan) -> None:
    for d in rplan.decisions:
        if d.problem:
            err.print(visible(f"not {VERB[rplan.how]}: {d.url}: {d.problem}"), markup=False, style="yellow")
    err.print(visible(f"{rplan.space_note}; about {rplan.cost.total} requests "
                      f"({rplan.cost.text() or 'none'})"), markup=False)


def _progress(label: str) -> Callable[[Callable[[Callable | None], Report]], Report]:
    """Run ``work`` with a per-model progress bar on a terminal (stderr), without one elsewhere."""
    def run(work: Callable[[Callable | None], Report]) -> Report:
        if not err.is_terminal:
            return work(None)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), console=err, transient=True) as bar:
            task = bar.add_task(label, total=None)
            return work(lambda done, total, _url: bar.update(task, completed=done, total=total))
    return run


def execute_on_bucket(root: RemoteRoot, rplan: RemotePlan, yes: bool) -> None:
    from mlrepo.commands.operations.remote_execute import execute_remote

    n = len(rplan.movable)
    if not n:
        err.print("nothing to do", markup=False)
        return
    if rplan.how == "delete" and not yes:
        raise RefusedError("--delete is permanent: nothing was deleted; add --yes to delete")
    if not yes:
        if not sys.stdin.isatty():
            raise RefusedError(f"nothing {VERB[rplan.how]}: no terminal to ask on; add --yes to go ahead")
        click.confirm(f"{rplan.how.capitalize()} {n} models on {root.url} ({rplan.cost.total} requests)?",
                      default=False, abort=True, err=True)
    result = _progress(VERB[rplan.how].removesuffix("ed") + "ing")(lambda cb: execute_remote(root, rplan, cb))
    report_outcomes(result, VERB[rplan.how])


def restore_on_bucket(url: str, refs: Sequence[str], everything: bool, dry_run: bool, yes: bool, fmt: str) -> None:
    """Bring trashed or archived models of a bucket back (refs: id, URL or the prefix below the root)."""
    import orjson
    from mlrepo.commands.operations.remote_execute import (
        plan_remote_restore,
        restore_remote,
    )

    root = _open(url)
    if not dry_run:
        recover(url)
    items, refused = plan_remote_restore(root, everything=True)
    wanted = {r.rstrip("/") for r in refs}
    chosen = items if everything else [i for i in items if wanted & {i.id, i.url, i.model}]
    missing = sorted(wanted - {n for i in chosen for n in (i.id, i.url, i.model)})
    for line in refused:
        err.print(visible(f"refused: {line}"), markup=False, style="yellow")
    if fmt == "json":
        sys.stdout.buffer.write(orjson.dumps([{"id": i.id, "path": i.url, "kind": i.kind, "size_bytes": i.size_bytes,
                                               "requests": dataclasses.asdict(i.cost)} for i in chosen]) + b"\n")
    else:
        for i in chosen:
            click.echo(visible(f"{i.kind:8} {i.url}  ({i.size_bytes} bytes, {i.cost.total} requests)"))
    if missing:
        raise FailedError(visible("not trashed or archived by mlrepo here: " + ", ".join(missing[:5])))
    if dry_run:
        return
    if not chosen:
        err.print("nothing to restore", markup=False)
        return
    if not yes and sys.stdin.isatty():  # restoring destroys nothing: without a terminal it just goes ahead
        click.confirm(f"Restore {len(chosen)} models?", default=False, abort=True, err=True)
    report_outcomes(_progress("restoring")(lambda cb: restore_remote(root, chosen, cb)), "restored")

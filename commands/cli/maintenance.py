"""``mlrepo prune``, ``mlrepo archive`` and ``mlrepo restore``: show the plan, ask, then run the shared operations.

The plan goes to stdout (a table, or JSON with ``--format json``); questions, progress and per-model results go to
stderr. ``--dry-run`` stops after the plan. Without ``--yes`` a terminal is asked; with no terminal nothing happens
and the exit code is 3.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from mlrepo.commands.cli import bucket_moves
from mlrepo.commands.cli.common import get_root, load, visible
from mlrepo.commands.cli.console import err
from mlrepo.commands.cli.outcomes import report_outcomes
from mlrepo.commands.cli.roots import Root, check_refs_inside, split_root
from mlrepo.errors import FailedError, RefusedError, UsageError
from mlrepo.repo_index.remote.location import is_url

if TYPE_CHECKING:  # loaded when a command runs: `prune --help` and a TAB load neither polars nor rich
    from mlrepo.commands import operations
    from mlrepo.commands.operations.plan import Plan
    from mlrepo.commands.operations.remote_plan import RemotePlan
    from mlrepo.repo_index import Index
    from rich.progress import Progress


def _recover(root: str) -> None:
    from mlrepo.commands import operations

    if is_url(root):
        bucket_moves.recover(root)
        return

    messages = operations.recover_pending(root)
    for line in messages:
        err.print(visible(f"recovered: {line}"), markup=False)


def _named(args: tuple[str, ...], root_opt: str | None, selecting: bool, yes: bool, missing: str
           ) -> tuple[Root, list[str]]:
    """ROOT and the models named by archive's and restore's ``[ROOT] MODEL…`` (or ``--root DIR MODEL…``): a usage
    error saying ``missing`` when none is named and no selector is given."""
    given, refs = (root_opt, list(args)) if root_opt is not None else split_root(args, selecting)
    if not refs and not selecting:
        raise UsageError(missing)
    root = get_root(given, yes, "--root" if root_opt is not None else "the ROOT argument", remote=True)
    check_refs_inside(root, refs)
    return root, refs


def _loaded(root: Root, dry_run: bool) -> Index:
    """ROOT's journal recovered first (not for a dry run), then its index."""
    if not dry_run:
        _recover(root.path)
    return load(root, write=not dry_run)


def _archive_target(root: str, archive_to: str | None) -> str:
    import os

    from mlrepo.commands.operations.moves import default_archive_dir

    return os.path.abspath(archive_to) if archive_to else default_archive_dir(root)


def _local_only(root: str, folder: str | None, option: str) -> bool:
    """Whether ROOT is a remote root; there a local archive folder makes no sense (archives go into the bucket)."""
    if is_url(root) and folder:
        raise UsageError(f"{option} names a local folder; on a remote root the archives go under "
                         f"{root.rstrip('/')}/.mlrepo/archive/")
    return is_url(root)


def _confirm(question: str, yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError(f"nothing {what}: no terminal to ask on; add --yes to go ahead")
    click.confirm(question, default=False, abort=True, err=True)


def _progress_bar(total_bytes: int, label: str) -> tuple[Progress | None, Callable | None]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if not err.is_terminal:
        return None, None
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=err, transient=True)
    task = bar.add_task(label, total=max(total_bytes, 1))

    def update(state: operations.Progress) -> None:
        what = f"{label} {state.done}/{state.total}" + (f" {state.current}" if state.current else "")
        bar.update(task, completed=state.bytes_done, description=what)

    return bar, update


def _run_with_progress(total_bytes: int, label: str, work: Callable[[Callable | None], operations.Report]
                       ) -> operations.Report:
    bar, update = _progress_bar(total_bytes, label)
    if bar is None:
        return work(None)
    with bar:
        return work(update)


def _show_plan(plan: Plan, fmt: str, where_to: operations.How, on_bucket: RemotePlan | None = None) -> None:
    """The plan on stdout; for a remote root (``on_bucket``) also its requests and what it frees."""
    import orjson
    from mlrepo.commands.cli.output import stdout_console
    from mlrepo.commands.views.plan import groups_table, plan_table

    if fmt == "json":
        from mlrepo.repo_index.schema import stamped

        said = stamped(plan.to_dict()) | (bucket_moves.plan_fields(on_bucket) if on_bucket is not None else {})
        sys.stdout.buffer.write(orjson.dumps(said, default=str) + b"\n")
        sys.stdout.flush()
        return
    console = stdout_console()
    for note in plan.notes:
        err.print(visible(note), style="dim", markup=False)
    console.print(plan_table(plan))
    if plan.kind == "prune":
        console.print()
        console.print(groups_table(plan))
    n, total = len(plan.removed), len(plan.decisions)
    verb = "archive" if plan.kind == "archive" else "remove"
    if on_bucket is not None:
        console.print(f"\n{verb} {n} of {total} models ({_destination(where_to)})", markup=False)
        bucket_moves.show_bucket_plan(on_bucket)
        return
    console.print(f"\n{verb} {n} of {total} models, {_freeing(plan, where_to)} ({_destination(where_to)})",
                  markup=False)


def _freeing(plan: Plan, how: str) -> str:
    from mlrepo.repo_index.units import human_size

    freed = human_size(plan.bytes_freed)
    if how == "archive":
        return f"freeing about {freed}" + (f" (archives ~{human_size(plan.archive_bytes)})"
                                           if plan.archive_bytes else "")
    if how == "trash":
        return f"freeing {freed} once the trash is emptied"
    return f"freeing {freed}"


def _destination(how: operations.How) -> str:
    return {"trash": "to the trash; `mlrepo restore` brings them back",
            "archive": "into compressed archives; `mlrepo restore` brings them back",
            "delete": "deleted permanently"}[how]


def _execute(root: str, plan: Plan, how: operations.How, archive_dir: str | None, yes: bool) -> None:
    from mlrepo.commands import operations

    n = len(plan.removed)
    if not n:
        err.print("nothing to do", markup=False)
        return
    if how == "delete" and not yes:
        raise RefusedError("--delete is permanent: nothing was deleted; add --yes to delete")
    verb = {"trash": "Remove", "archive": "Archive", "delete": "Delete permanently"}[how]
    _confirm(f"{verb} {n} models, {_freeing(plan, how)}?",
             yes, {"trash": "removed", "archive": "archived", "delete": "deleted"}[how])
    report = _run_with_progress(plan.bytes_freed, {"trash": "trashing", "archive": "archiving",
                                                   "delete": "deleting"}[how],
                                lambda cb: operations.remove_models(root, plan.decisions, how, archive_dir, cb))
    report_outcomes(report, {"trash": "trashed", "archive": "archived", "delete": "deleted"}[how])


# -- commands ---------------------------------------------------------------------------------------------------
dry_run_opt = click.option("--dry-run", is_flag=True, help="Show the plan and stop; nothing is changed.")
yes_opt = click.option("--yes", "-y", is_flag=True, help="Do it without asking.")
recent_opt = click.option("--recent", "recent", metavar="DURATION", default="10min", show_default=True,
                          help="Keep models changed within DURATION (maybe still being written); 0 turns it off.")
plan_format_opt = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                               show_default=True, help="How to show the plan.")


@click.command()
@click.argument("root", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option("--keep-top", type=click.IntRange(min=0), metavar="K", help="Keep the best K per group by --metric.")
@click.option("--metric", "metrics", multiple=True, metavar="M",
              help="Metric to rank by for --keep-top; repeat to break ties.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["max", "min"]),
              help="Override the metric's direction (once, or once per --metric).")
@click.option("--per", type=click.Choice(["line", "repo", "all"]), default="line", show_default=True,
              help="The group --keep-top and --keep-last count in.")
@click.option("--keep-last", type=click.IntRange(min=0), metavar="N", help="Keep the newest N per group.")
@click.option("--keep-tag", "keep_tags", multiple=True, metavar="T", help="Keep models tagged T (repeatable).")
@click.option("--older-than", metavar="AGE",
              help="Only models last changed before now - AGE may go; restic's units: 1y, 6m (months), 2w, 30d, 12h, "
                   "90min. The plan prints the cut-off date.")
@click.option("--where", "where_expr", metavar="EXPR", help="Only models matching EXPR may go.")
@click.option("--archive", "archive_to", is_flag=False, flag_value="", default=None, metavar="[DIR]",
              help="Archive instead of trashing (into DIR; default: archive/ in mlrepo's state folder, see the "
                   "README).")
@click.option("--delete", is_flag=True, help="Delete permanently instead of trashing (needs --yes).")
@recent_opt
@click.option("--include-unfinished", is_flag=True,
              help="Let running/scheduled runs take --keep-top slots (they are kept all the same).")
@click.option("--include-failed", is_flag=True, help="Rank failed/killed runs for --keep-top too.")
@dry_run_opt
@yes_opt
@plan_format_opt
def prune(root: str | None, keep_top: int | None, metrics: tuple[str, ...], modes: tuple[str, ...], per: str,
          keep_last: int | None, keep_tags: tuple[str, ...], older_than: str | None, where_expr: str | None,
          archive_to: str | None, delete: bool, recent: str, include_unfinished: bool, include_failed: bool,
          dry_run: bool, yes: bool, fmt: str) -> None:
    """Remove the models that no keep rule keeps (to the trash by default).

    Keep rules are a union: a model goes only when none keeps it. --keep-top ranks finished models only. Always
    kept: running and scheduled runs, pinned models (mlrepo pin), MLflow registered versions, the HF Trainer's best
    checkpoint, models changed within --recent, folders outside ROOT or behind symlinks. Each model is checked
    again right before it moves; one that changed since the plan is kept.
    """
    from mlrepo.commands.operations.plan import KeepRules, parse_age, plan_prune

    if archive_to is not None and delete:
        raise UsageError("--archive and --delete exclude each other")
    how: operations.How = "delete" if delete else "archive" if archive_to is not None else "trash"
    rules = KeepRules(keep_top=keep_top, metrics=tuple(m for ms in metrics for m in ms.split(",") if m.strip()),
                      modes=modes, per=per, keep_last=keep_last, keep_tags=keep_tags,
                      older_than=parse_age(older_than) if older_than else None, where=where_expr,
                      recent=parse_age(recent), include_unfinished=include_unfinished,
                      include_failed=include_failed)
    where_root = get_root(root, yes, remote=True)
    rules.check()
    remote = _local_only(where_root.path, archive_to, "--archive DIR")
    if not dry_run:
        _recover(where_root.path)
    idx = load(where_root, write=not dry_run)
    plan = plan_prune(idx, rules, archive_dir=_archive_target(idx.root, archive_to)
                      if how == "archive" and not remote else None)
    if remote:
        bucket, on_bucket = bucket_moves.plan_on_bucket(idx.root, plan.removed, how)
        _show_plan(plan, fmt, how, on_bucket)
        if not dry_run:
            bucket_moves.execute_on_bucket(bucket, on_bucket, yes)
        return
    _show_plan(plan, fmt, how)
    if dry_run:
        return
    _execute(idx.root, plan, how, archive_to or None, yes)


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] [MODEL]...")
@click.option("--root", "root_opt", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="ROOT, when not given as the first argument.")
@click.option("--where", "where_expr", metavar="EXPR", help="Archive the models matching EXPR.")
@click.option("--to", "archive_to", type=click.Path(file_okay=False), metavar="DIR",
              help="Where the archives go (default: archive/ in mlrepo's state folder, see the README), e.g. "
                   "another disk.")
@recent_opt
@dry_run_opt
@yes_opt
@plan_format_opt
def archive(args: tuple[str, ...], root_opt: str | None, where_expr: str | None, archive_to: str | None,
            recent: str, dry_run: bool, yes: bool, fmt: str) -> None:
    """Move models into compressed archives (.tar.zst); they stay in the index with status archived.

    Each folder is removed only after its archive is written, flushed and verified, and only if it has not
    changed since the plan. Never archived: pinned models, unfinished runs, MLflow registered versions, the HF
    Trainer's best checkpoint, models changed within --recent. MODEL: id, path or repo/line/name.
    """
    from mlrepo.commands.operations.plan import parse_age, plan_selection

    root, refs = _named(args, root_opt, where_expr is not None, yes,
                        "name the models to archive (id, path or repo/line/name), or give --where EXPR")
    remote = _local_only(root.path, archive_to, "--to DIR")
    idx = _loaded(root, dry_run)
    plan = plan_selection(idx, refs, where_expr, recent=parse_age(recent),
                          archive_dir=None if remote else _archive_target(idx.root, archive_to))
    if remote:
        bucket, on_bucket = bucket_moves.plan_on_bucket(idx.root, plan.removed, "archive")
        _show_plan(plan, fmt, "archive", on_bucket)
        if not dry_run:
            bucket_moves.execute_on_bucket(bucket, on_bucket, yes)
    else:
        _show_plan(plan, fmt, "archive")
        if not dry_run:
            _execute(idx.root, plan, "archive", archive_to, yes)
    if dry_run:
        return
    refused = [d for d in plan.kept if refs]
    if refused:
        raise FailedError(f"{len(refused)} named model(s) were not archived: " + "; ".join(
            f"{d.label}: {d.reasons[0]}" for d in refused[:5]))


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] [MODEL]...")
@click.option("--root", "root_opt", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="ROOT, when not given as the first argument.")
@click.option("--all", "everything", is_flag=True, help="Restore every archived and trashed model.")
@dry_run_opt
@yes_opt
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def restore(args: tuple[str, ...], root_opt: str | None, everything: bool, dry_run: bool, yes: bool, fmt: str) -> None:
    """Bring archived or trashed models back to their folders, byte for byte."""
    import orjson
    from mlrepo.commands import operations
    from mlrepo.commands.cli.output import stdout_console
    from mlrepo.commands.operations.plan import plan_restore
    from mlrepo.commands.views.plan import restore_table
    from mlrepo.repo_index.units import human_size

    root, refs = _named(args, root_opt, everything, yes,
                        "name the models to restore (id, path or repo/line/name), or give --all")
    if is_url(root.path):
        bucket_moves.restore_on_bucket(root.path, refs, everything, dry_run, yes, fmt)
        return
    idx = _loaded(root, dry_run)
    items = plan_restore(idx, refs, everything)
    if fmt == "json":
        from mlrepo.repo_index.schema import stamped

        sys.stdout.buffer.write(orjson.dumps([stamped({"id": i.id, "path": i.path, "kind": i.kind, "source": i.source,
                                                       "size_bytes": i.size_bytes, "problem": i.problem})
                                              for i in items]) + b"\n")
    else:
        stdout_console().print(restore_table(items))
    ready = [i for i in items if i.problem is None]
    if dry_run:
        return
    if not ready:
        err.print("nothing to restore", markup=False)
        if items:
            raise FailedError(f"{len(items)} model(s) cannot be restored; see the table")
        return
    if not yes and sys.stdin.isatty():  # restoring destroys nothing: without a terminal it just goes ahead
        click.confirm(f"Restore {len(ready)} models ({human_size(sum(i.size_bytes for i in ready))})?",
                      default=False, abort=True, err=True)
    report = _run_with_progress(sum(i.size_bytes for i in ready), "restoring",
                                lambda cb: operations.restore_models(idx.root, ready, cb))
    report_outcomes(report, "restored")
    if len(ready) < len(items):
        raise FailedError(f"{len(items) - len(ready)} model(s) could not be restored; see the table")

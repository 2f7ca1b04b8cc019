"""The commands that read an index and print it: ``index``, ``ls``, ``best``, ``show``, ``diff``, ``history``, ``du``
and ``export``. Loaded only when one of them is named; each imports polars and rich only in its body."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import click
from mlrepo.commands.cli import complete
from mlrepo.commands.cli.common import EXPORT_FORMATS, get_root, load, note, print_json, root_argument, visible
from mlrepo.commands.cli.console import err
from mlrepo.commands.cli.options import (
    DEFAULT_LS,
    format_opt,
    index_opt,
    index_source,
    named_models,
    root_opt,
    split_commas,
    where_opt,
    yes_opt,
)
from mlrepo.errors import FailedError, UsageError

if TYPE_CHECKING:
    from mlrepo.commands.cli.watch_socket import Answer, Command
    from mlrepo.repo_index import Index

INACTIVE = ("deleted", "trashed", "archived")


@click.command()
@root_argument()
@click.option("--rebuild", is_flag=True, help="Ignore the cache and read every model again.")
@click.option("--publish", "publish_url", metavar="URL",
              help="Also replace this root's rows in the team index at URL (a Delta table: folder, s3://...).")
@format_opt(choices=("table", "json"))
def index(root: str | None, yes: bool, rebuild: bool, publish_url: str | None, fmt: str) -> None:
    """Build or refresh the index cache; print the models found, by format."""
    idx = load(get_root(root, yes, remote=True), rebuild)
    bad = idx.unreadable()
    if fmt == "json":
        from mlrepo.repo_index.schema import stamped

        print_json(stamped({
            "root": idx.root, "models": len(idx), "by_format": dict(sorted(idx.counts_by_format().items())),
            "unreadable": bad.to_dicts(), "skipped": [{"path": p, "reason": why} for p, why in idx.stats.skipped],
            "read": idx.stats.read, "unchanged": idx.stats.reused, "seconds": round(idx.stats.seconds, 3),
            **({"requests": {"list": idx.stats.remote.lists, "get": idx.stats.remote.gets,
                             "bytes_read": idx.stats.remote.bytes_read, "objects": idx.stats.remote.objects}}
               if idx.stats.remote else {})}))
        return
    by_format = ", ".join(f"{fmt} {n}" for fmt, n in sorted(idx.counts_by_format().items()))
    click.echo(f"{len(idx)} models ({by_format or 'none'}) under {visible(idx.root)}")
    click.echo(f"{bad.height} could not be read fully" + (":" if bad.height else ""))
    for row in bad.head(50).iter_rows(named=True):
        err.print(visible(f"  {row['path']}: {row['error']}"), markup=False)
    for path, why in idx.stats.skipped:
        err.print(visible(f"  skipped {path}: {why}"), markup=False)
    click.echo(f"read {idx.stats.read}, unchanged {idx.stats.reused}, {idx.stats.seconds:.2f} s")
    if idx.stats.remote:
        click.echo(idx.stats.remote.describe())
    if publish_url:
        from mlrepo.repo_index.team import publish

        done = publish(idx.df, idx.metrics, idx.root, publish_url)
        click.echo(visible(f"published {done.rows} models as {done.host}:{done.root} to {publish_url} "
                           f"(table now at version {done.version}, "
                           f"{done.attempts} attempt{'s' if done.attempts > 1 else ''})"))


def _write_rows(frame: object, fmt: str, out: BinaryIO | None = None) -> None:
    """A listing in ``fmt`` (to stdout, or ``out``); JSON rows start with the schema version."""
    from mlrepo.commands.cli import output
    from mlrepo.repo_index.schema import with_version_column

    output.write(with_version_column(frame) if fmt in ("json", "jsonl") else frame, fmt, out)  # type: ignore[arg-type]


def _answered(command: Command, given: str | None, yes: bool, params: dict[str, Any]) -> bool:
    """Whether a running ``mlrepo watch`` of ROOT answered (``watch_socket``): its output is then written here."""
    from mlrepo.commands.cli.watch_socket import ask
    from mlrepo.repo_index.remote.location import is_url

    root = get_root(given, yes, remote=True)
    if is_url(root.path):
        return False
    answer = ask(os.path.abspath(os.path.expanduser(root.path)), command, params)
    if answer is None:
        return False
    sys.stdout.buffer.write(answer.stdout)
    sys.stdout.flush()
    for line in answer.notes:
        note(line)
    return True


def answer(idx: Index, command: Command, params: dict[str, Any]) -> Answer:
    """What ``command`` with ``params`` prints for ``idx``: a watch's answer to another mlrepo process."""
    from mlrepo.commands.cli.watch_socket import Answer

    out, notes = io.BytesIO(), list[str]()
    render: Callable[..., None] = list_models if command == "ls" else best_models
    render(idx, **params, out=out, said=notes.append)
    return Answer(out.getvalue(), tuple(notes))


@click.command(name="ls")
@root_argument()
@index_opt
@where_opt
@click.option("--sort", "sort_col", metavar="COL", shell_complete=complete.column_names,
              help="Sort by this column (a metric name works too).")
@click.option("--asc/--desc", default=None, help="Sort direction (default: best first for metrics, else asc).")
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N models.")
@click.option("--columns", multiple=True, metavar="COLS", shell_complete=complete.column_names,
              help="Columns to show, comma-separated; 'all' for all.")
@format_opt()
def ls(root: str | None, yes: bool, index_url: str | None, where_expr: str | None, sort_col: str | None,
       asc: bool | None, limit: int | None, columns: tuple[str, ...], fmt: str) -> None:
    """List models."""
    params: dict[str, Any] = {"where_expr": where_expr, "sort_col": sort_col, "asc": asc, "limit": limit,
                              "columns": list(columns), "fmt": fmt}
    if index_url is None and _answered("ls", root, yes, params):
        return
    list_models(index_source(root, yes, index_url, where_expr, None if sort_col else limit), **params)


def list_models(idx: Index, where_expr: str | None, sort_col: str | None, asc: bool | None, limit: int | None,
                columns: list[str], fmt: str, out: BinaryIO | None = None, said: Callable[[str], None] = note
                ) -> None:
    """``ls``'s listing of ``idx``, to stdout or ``out``, its notes to ``said``."""
    from mlrepo.repo_index.columns import resolve_column
    from mlrepo.repo_index.filtering import where

    frame = where(idx.df, where_expr, idx.metrics)
    if sort_col:
        col = resolve_column(sort_col, frame.columns, idx.metrics)
        if asc is None and col.startswith("metrics."):  # best first, saying which way is best
            from mlrepo.repo_index.ranking import rank_keys

            key = rank_keys([col], [], frame.columns, idx.metrics)[0]
            asc = key.mode == "min"
            said(f"sorted best first: {key.describe()}")
        frame = frame.sort(col, descending=not (asc is None or asc), nulls_last=True, maintain_order=True)
    if limit is not None:
        frame = frame.head(limit)
    wanted = split_commas(tuple(columns))
    if wanted == ["all"]:
        cols = frame.columns
    elif wanted:
        cols = [resolve_column(c, frame.columns, idx.metrics) for c in wanted]
    else:
        cols = frame.columns if fmt != "table" else [*DEFAULT_LS, *idx.source_columns, *idx.metric_columns]
    _write_rows(frame.select(cols), fmt, out)
    if fmt == "table":
        said(f"{frame.height} of {len(idx)} models" if frame.height != len(idx) else f"{len(idx)} models")


@click.command()
@root_argument()
@index_opt
@click.option("--metric", "metrics", multiple=True, required=True, metavar="M", shell_complete=complete.metric_names,
              help="Metric to rank by; repeat to break ties (--metric f1 --metric loss). Default: MLREPO_METRIC.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["max", "min"]),
              help="Override the direction (once for the first metric, or once per --metric).")
@click.option("--per", type=click.Choice(["line", "repo"]), help="One best model per line or per repo.")
@click.option("--all-status", is_flag=True, help="Also consider archived, trashed and deleted models.")
@click.option("--include-unfinished", is_flag=True, help="Also rank running and scheduled runs.")
@click.option("--include-failed", is_flag=True, help="Also rank failed and killed runs.")
@where_opt
@click.option("--format", "fmt", type=click.Choice(["path", "json", "jsonl", "csv", "table", "md"]),
              default="path", show_default=True)
def best(root: str | None, yes: bool, index_url: str | None, metrics: tuple[str, ...], modes: tuple[str, ...],
         per: str | None, all_status: bool, include_unfinished: bool, include_failed: bool, where_expr: str | None,
         fmt: str) -> None:
    """Print the best finished model's path (one per group with --per): cp -r "$(mlrepo best --metric f1)" deploy/

    Only an existing folder is printed; otherwise the command says why and exits 1."""
    params: dict[str, Any] = {"metrics": list(metrics), "modes": list(modes), "per": per, "all_status": all_status,
                              "include_unfinished": include_unfinished, "include_failed": include_failed,
                              "where_expr": where_expr, "fmt": fmt}
    if index_url is None and _answered("best", root, yes, params):
        return
    best_models(index_source(root, yes, index_url, where_expr), **params)


def best_models(idx: Index, metrics: list[str], modes: list[str], per: str | None, all_status: bool,
                include_unfinished: bool, include_failed: bool, where_expr: str | None, fmt: str,
                out: BinaryIO | None = None, said: Callable[[str], None] = note) -> None:
    """``best``'s answer for ``idx``, to stdout or ``out``, its notes to ``said``."""
    import polars as pl
    from mlrepo.commands.operations.best import missing_folder, rankable
    from mlrepo.repo_index.filtering import where
    from mlrepo.repo_index.ranking import best as best_of
    from mlrepo.repo_index.ranking import rank_keys

    keys = rank_keys(split_commas(tuple(metrics)), list(modes), idx.df.columns, idx.metrics)
    frame = where(idx.df, where_expr, idx.metrics)
    if not all_status:
        frame = frame.filter(~pl.col("status").is_in(INACTIVE))
    frame, left_out = rankable(frame, include_unfinished, include_failed)
    winners = best_of(frame, keys, per or "all")
    said("ranked by " + "; then ".join(k.describe() for k in keys)
         + (f"; {'/'.join(left_out)} runs not ranked (--include-unfinished/--include-failed)" if left_out else ""))
    if winners.is_empty():
        raise FailedError(f"no model has {keys[0].column}")
    if fmt == "path":
        problems = [why for row in winners.iter_rows(named=True) if (why := missing_folder(row))]
        for path, row in zip(winners["path"], winners.iter_rows(named=True), strict=True):
            if missing_folder(row) is None:
                if out is None:
                    click.echo(visible(path))
                else:
                    out.write(visible(path).encode() + b"\n")
        if problems:
            raise FailedError("; ".join(problems))
        return
    shown = [*DEFAULT_LS[:4], "path", *dict.fromkeys(k.column for k in keys)]
    _write_rows(winners.select(shown) if fmt in ("table", "md") else winners.drop("rank"), fmt, out)


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] MODEL", shell_complete=complete.model_ids)
@root_opt
@yes_opt
@format_opt(choices=("table", "json"))
def show(args: tuple[str, ...], root_opt: str | None, yes: bool, fmt: str) -> None:
    """Everything known about one model (MODEL: id or id prefix, path, or repo/line/name)."""
    idx, (row,) = named_models(args, root_opt, 1, yes)
    if fmt == "json":
        from mlrepo.repo_index.schema import stamped

        print_json(stamped(row))
        return
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import model_panel

    output.stdout_console().print(model_panel(row, idx))  # type: ignore[arg-type]


@click.command()
@click.argument("args", nargs=-1, metavar="[ROOT] MODEL_A MODEL_B", shell_complete=complete.model_ids)
@root_opt
@yes_opt
@click.option("--changed", "changed_only", is_flag=True, help="Only the params and metrics that differ.")
@format_opt(choices=("table", "json"))
def diff(args: tuple[str, ...], root_opt: str | None, yes: bool, changed_only: bool, fmt: str) -> None:
    """Params and metrics of two models side by side, differences marked."""
    idx, (a, b) = named_models(args, root_opt, 2, yes)
    if fmt == "json":
        from mlrepo.repo_index.schema import diff_document

        doc = diff_document(a, b, [*idx.metric_columns, *idx.param_columns])  # type: ignore[attr-defined]
        if changed_only:
            doc["keys"] = [k for k in doc["keys"] if k["differs"]]
        print_json(doc)
        return
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import diff_table

    output.stdout_console().print(diff_table(a, b, idx, changed_only))  # type: ignore[arg-type]


@click.command()
@root_argument()
@click.option("--line", "line_ref", metavar="L", help="Only this line (name or repo/line).")
@click.option("--metric", metavar="M", shell_complete=complete.metric_names, help="Show this metric at each node.")
@where_opt
@format_opt(choices=("table", "json"))
def history(root: str | None, yes: bool, line_ref: str | None, metric: str | None, where_expr: str | None,
            fmt: str) -> None:
    """The parameter-history tree of each line: every model under the earlier one it differs least from."""
    import polars as pl
    from mlrepo.repo_index.columns import resolve_metric
    from mlrepo.repo_index.filtering import where

    idx = load(get_root(root, yes, remote=True))
    frame = where(idx.df, where_expr, idx.metrics)
    if line_ref:
        repo, _, line = line_ref.rpartition("/")
        frame = frame.filter((pl.col("line") == line) & (pl.lit(not repo) | (pl.col("repo") == repo)))
        if frame.is_empty():
            raise UsageError(f"no line {line_ref!r}; lines are: " + ", ".join(
                sorted({f"{r}/{ln}" for r, ln in idx.df.select("repo", "line").iter_rows() if ln})[:20]))
    col = resolve_metric(metric, idx.df.columns, idx.metrics) if metric else None
    if fmt == "json":
        from mlrepo.repo_index.lineage import build_history
        from mlrepo.repo_index.schema import history_document

        print_json(history_document(build_history(frame, col), col))
        return
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import history_trees

    console = output.stdout_console()
    for tree in history_trees(frame, col):
        console.print(tree)


@click.command()
@root_argument()
@index_opt
@click.option("--by", type=click.Choice(["repo", "line", "model"]), default="repo", show_default=True)
@click.option("--top", type=click.IntRange(min=1), help="Only the N largest.")
@where_opt
@format_opt()
def du(root: str | None, yes: bool, index_url: str | None, by: str, top: int | None, where_expr: str | None,
       fmt: str) -> None:
    """Disk usage by repo, line or model, largest first."""
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import usage_table
    from mlrepo.repo_index.disk import usage
    from mlrepo.repo_index.filtering import where

    idx = index_source(root, yes, index_url, where_expr)
    frame = usage(where(idx.df, where_expr, idx.metrics), by, top)
    if fmt == "table":
        output.stdout_console().print(usage_table(frame, by))
    else:
        _write_rows(frame, fmt)


@click.command()
@root_argument()
@index_opt
@where_opt
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
def export(root: str | None, yes: bool, index_url: str | None, where_expr: str | None, fmt: str,
           out: str | None) -> None:
    """The whole index, for scripts and notebooks (JSON rows and Parquet metadata carry the schema version)."""
    from mlrepo.commands.cli import output
    from mlrepo.repo_index.filtering import where
    from mlrepo.repo_index.schema import with_version_column

    idx = index_source(root, yes, index_url, where_expr)
    frame = where(idx.df, where_expr, idx.metrics)
    if fmt in ("json", "jsonl"):
        frame = with_version_column(frame)
    if out:
        with open(out, "wb") as fh:
            output.write(frame, fmt, fh)
        note(f"{frame.height} models written to {out}")
    else:
        if fmt == "parquet" and sys.stdout.isatty():
            raise UsageError("parquet is binary: give -o FILE or redirect stdout")
        output.write(frame, fmt)

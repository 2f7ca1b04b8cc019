"""The ``mlrepo`` command line. Every command is a thin shell over ``repo_index`` and the operations here."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import click
import polars as pl
from mlrepo.commands.cli import output
from mlrepo.errors import ExitStatus, FailedError, MlrepoError, UsageError
from mlrepo.repo_index import Index, open_index
from mlrepo.repo_index.columns import resolve_column
from mlrepo.repo_index.filtering import where
from mlrepo.repo_index.index import find_model
from rich.console import Console

INACTIVE = ("deleted", "trashed", "archived")
DEFAULT_LS = ("id", "repo", "line", "name", "format", "status", "size_bytes", "updated_at")

err = Console(stderr=True, highlight=False, soft_wrap=True)


def _load(root: str, rebuild: bool = False, index_url: str | None = None, where_expr: str | None = None,
          limit: int | None = None) -> Index:
    """The index of ROOT, or with ``--index URL`` the published team index: the rows ``where_expr`` selects (the
    first ``limit`` of them when given), read with both pushed into the scan."""
    if index_url is None:
        return open_index(root, rebuild=rebuild)
    if root not in (None, "."):
        raise UsageError("give ROOT or --index URL, not both")
    from mlrepo.repo_index.team import open_team

    return open_team(index_url, where_expr, limit)  # type: ignore[return-value]  # shaped like Index for listings


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


root_arg = click.argument("root", default=".", type=click.Path(file_okay=False, path_type=str))


def where_opt(f: Callable) -> Callable:
    return click.option("--where", "where_expr", metavar="EXPR",
                        help="Only models matching EXPR, e.g. \"metrics.f1 > 0.8 and params.model = 'rf'\".")(f)


def index_opt(f: Callable) -> Callable:
    return click.option("--index", "index_url", metavar="URL",
                        help="Query a published team index (a Delta table: folder, s3://...) instead of ROOT.")(f)


def format_opt(default: str = "table", choices: tuple[str, ...] = output.LIST_FORMATS) -> Callable:
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format.")


class LazyGroup(click.Group):
    """Subcommands whose modules load only when named (click's documented pattern): every command starts without
    the journal, the trash and watchdog unless it needs them."""

    LAZY = {
        "prune": "mlrepo.commands.cli.maintenance:prune",
        "archive": "mlrepo.commands.cli.maintenance:archive",
        "restore": "mlrepo.commands.cli.maintenance:restore",
        "watch": "mlrepo.commands.cli.watch:watch",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            import importlib

            module, _, attr = self.LAZY[cmd_name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="mlrepo")
def cli() -> None:
    """One index over every model folder under a root (Cascade, MLflow, Lightning, HF Trainer, metrics.json):
    browse, rank, compare, prune and archive."""


@cli.command()
@root_arg
@click.option("--rebuild", is_flag=True, help="Ignore the cache and read every model again.")
@click.option("--publish", "publish_url", metavar="URL",
              help="Also replace this root's rows in the team index at URL (a Delta table: folder, s3://...).")
def index(root: str, rebuild: bool, publish_url: str | None) -> None:
    """Build or refresh the index cache; print the models found, by format."""
    idx = _load(root, rebuild)
    by_format = ", ".join(f"{fmt} {n}" for fmt, n in sorted(idx.counts_by_format().items()))
    bad = idx.unreadable()
    click.echo(f"{len(idx)} models ({by_format or 'none'}) under {idx.root}")
    click.echo(f"{bad.height} could not be read fully" + (":" if bad.height else ""))
    for row in bad.head(50).iter_rows(named=True):
        err.print(f"  {row['path']}: {row['error']}", markup=False)
    for path, why in idx.stats.skipped:
        err.print(f"  skipped {path}: {why}", markup=False)
    click.echo(f"read {idx.stats.read}, unchanged {idx.stats.reused}, {idx.stats.seconds:.2f} s")
    if publish_url:
        from mlrepo.repo_index.team import publish

        done = publish(idx.df, idx.metrics, idx.root, publish_url)
        click.echo(f"published {done.rows} models as {done.host}:{done.root} to {publish_url} "
                   f"(table now at version {done.version}, {done.attempts} attempt{'s' if done.attempts > 1 else ''})")


@cli.command(name="ls")
@root_arg
@index_opt
@where_opt
@click.option("--sort", "sort_col", metavar="COL", help="Sort by this column (a metric name works too).")
@click.option("--asc/--desc", default=None, help="Sort direction (default: best first for metrics, else asc).")
@click.option("--limit", type=click.IntRange(min=0), help="Show at most N models.")
@click.option("--columns", multiple=True, metavar="COLS", help="Columns to show, comma-separated; 'all' for all.")
@format_opt()
def ls(root: str, index_url: str | None, where_expr: str | None, sort_col: str | None, asc: bool | None,
       limit: int | None, columns: tuple[str, ...], fmt: str) -> None:
    """List models."""
    idx = _load(root, index_url=index_url, where_expr=where_expr, limit=None if sort_col else limit)
    frame = where(idx.df, where_expr, idx.metrics)
    if sort_col:
        col = resolve_column(sort_col, frame.columns, idx.metrics)
        if asc is None and col.startswith("metrics."):  # best first, saying which way is best
            from mlrepo.repo_index.ranking import rank_keys

            key = rank_keys([col], [], frame.columns, idx.metrics)[0]
            asc = key.mode == "min"
            err.print(f"sorted best first: {key.describe()}", style="dim")
        frame = frame.sort(col, descending=not (asc is None or asc), nulls_last=True, maintain_order=True)
    if limit is not None:
        frame = frame.head(limit)
    wanted = _split(columns)
    if wanted == ["all"]:
        cols = frame.columns
    elif wanted:
        cols = [resolve_column(c, frame.columns, idx.metrics) for c in wanted]
    else:
        cols = frame.columns if fmt != "table" else [*DEFAULT_LS, *idx.source_columns, *idx.metric_columns]
    output.write(frame.select(cols), fmt)
    if fmt == "table":
        shown = f"{frame.height} of {len(idx)} models" if frame.height != len(idx) else f"{len(idx)} models"
        err.print(shown, style="dim")


@cli.command()
@root_arg
@index_opt
@click.option("--metric", "metrics", multiple=True, required=True, metavar="M",
              help="Metric to rank by; repeat to break ties (--metric f1 --metric loss).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["max", "min"]),
              help="Override the direction (once for the first metric, or once per --metric).")
@click.option("--per", type=click.Choice(["line", "repo"]), help="One best model per line or per repo.")
@click.option("--all-status", is_flag=True, help="Also consider archived, trashed and deleted models.")
@where_opt
@click.option("--format", "fmt", type=click.Choice(["path", "json", "jsonl", "csv", "table", "md"]),
              default="path", show_default=True)
def best(root: str, index_url: str | None, metrics: tuple[str, ...], modes: tuple[str, ...], per: str | None,
         all_status: bool, where_expr: str | None, fmt: str) -> None:
    """Print the best model's path (one per group with --per): cp -r "$(mlrepo best --metric f1)" deploy/"""
    from mlrepo.repo_index.ranking import best as best_of
    from mlrepo.repo_index.ranking import rank_keys

    idx = _load(root, index_url=index_url, where_expr=where_expr)
    keys = rank_keys(_split(metrics), list(modes), idx.df.columns, idx.metrics)
    frame = where(idx.df, where_expr, idx.metrics)
    if not all_status:
        frame = frame.filter(~pl.col("status").is_in(INACTIVE))
    winners = best_of(frame, keys, per or "all")
    err.print("ranked by " + "; then ".join(k.describe() for k in keys), style="dim")
    if winners.is_empty():
        raise FailedError(f"no model has {keys[0].column}")
    if fmt == "path":
        for path in winners["path"]:
            click.echo(path)
        return
    shown = [*DEFAULT_LS[:4], "path", *dict.fromkeys(k.column for k in keys)]
    output.write(winners.select(shown) if fmt in ("table", "md") else winners.drop("rank"), fmt)


def _indexed_root_of(path: str, stop: str | None = None) -> str | None:
    """The nearest folder above ``path`` that mlrepo has indexed (it holds ``.mlrepo/index.json``), looking no
    higher than ``stop``."""
    parent = os.path.dirname(path)
    while parent != path:
        if os.path.isfile(os.path.join(parent, ".mlrepo", "index.json")):
            return parent
        if parent == stop:
            return None
        path, parent = parent, os.path.dirname(parent)
    return None


def _model_and_index(ref: str, root: str | None) -> tuple[Index, dict]:
    """The index to look MODEL up in: ``--root``; for a folder given by path, the root already indexed above it
    (no higher than the current folder when that holds the model), else the current folder when it holds the
    model, else the folder three levels up (repo/line/name)."""
    if root is None:
        path = os.path.abspath(ref)
        if not os.path.isdir(path):
            root = "."
        else:
            cwd = os.getcwd()
            inside_cwd = os.path.commonpath([path, cwd]) == cwd
            root = _indexed_root_of(path, cwd if inside_cwd else None) or (
                "." if inside_cwd else os.path.dirname(os.path.dirname(os.path.dirname(path))))
    idx = _load(root)
    return idx, find_model(idx, ref)


@cli.command()
@click.argument("model")
@click.option("--root", type=click.Path(file_okay=False), help="Root to look in (default: current folder).")
@format_opt(choices=("table", "json"))
def show(model: str, root: str | None, fmt: str) -> None:
    """Everything known about one model (MODEL: id, path, or repo/line/name)."""
    from mlrepo.commands.views.tables import model_panel

    idx, row = _model_and_index(model, root)
    if fmt == "json":
        output.write(pl.DataFrame([row]), "json")
        return
    output.stdout_console().print(model_panel(row, idx))


@cli.command()
@click.argument("model_a")
@click.argument("model_b")
@click.option("--root", type=click.Path(file_okay=False), help="Root to look in (default: current folder).")
@click.option("--changed", "changed_only", is_flag=True, help="Only the params and metrics that differ.")
def diff(model_a: str, model_b: str, root: str | None, changed_only: bool) -> None:
    """Params and metrics of two models side by side, differences marked."""
    from mlrepo.commands.views.tables import diff_table

    idx, a = _model_and_index(model_a, root)
    b = find_model(idx, model_b)
    output.stdout_console().print(diff_table(a, b, idx, changed_only))


@cli.command()
@root_arg
@click.option("--line", "line_ref", metavar="L", help="Only this line (name or repo/line).")
@click.option("--metric", metavar="M", help="Show this metric at each node.")
@where_opt
def history(root: str, line_ref: str | None, metric: str | None, where_expr: str | None) -> None:
    """The parameter-history tree of each line: every model under the earlier one it differs least from."""
    from mlrepo.commands.views.tables import history_trees
    from mlrepo.repo_index.columns import resolve_metric

    idx = _load(root)
    frame = where(idx.df, where_expr, idx.metrics)
    if line_ref:
        repo, _, line = line_ref.rpartition("/")
        frame = frame.filter((pl.col("line") == line) & (pl.lit(not repo) | (pl.col("repo") == repo)))
        if frame.is_empty():
            raise UsageError(f"no line {line_ref!r}; lines are: " + ", ".join(
                sorted({f"{r}/{ln}" for r, ln in idx.df.select("repo", "line").iter_rows() if ln})[:20]))
    col = resolve_metric(metric, idx.df.columns, idx.metrics) if metric else None
    console = output.stdout_console()
    for tree in history_trees(frame, col):
        console.print(tree)


@cli.command()
@root_arg
@index_opt
@click.option("--by", type=click.Choice(["repo", "line", "model"]), default="repo", show_default=True)
@click.option("--top", type=click.IntRange(min=1), help="Only the N largest.")
@where_opt
@format_opt()
def du(root: str, index_url: str | None, by: str, top: int | None, where_expr: str | None, fmt: str) -> None:
    """Disk usage by repo, line or model, largest first."""
    from mlrepo.commands.views.tables import usage_table
    from mlrepo.repo_index.disk import usage

    idx = _load(root, index_url=index_url, where_expr=where_expr)
    frame = usage(where(idx.df, where_expr, idx.metrics), by, top)
    if fmt == "table":
        output.stdout_console().print(usage_table(frame, by))
    else:
        output.write(frame, fmt)


@cli.command()
@root_arg
@index_opt
@where_opt
@click.option("--format", "fmt", type=click.Choice(output.EXPORT_FORMATS), default="csv", show_default=True)
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
def export(root: str, index_url: str | None, where_expr: str | None, fmt: str, out: str | None) -> None:
    """The whole index, for scripts and notebooks."""
    idx = _load(root, index_url=index_url, where_expr=where_expr)
    frame = where(idx.df, where_expr, idx.metrics)
    if out:
        with open(out, "wb") as fh:
            output.write(frame, fmt, fh)
        err.print(f"{frame.height} models written to {out}", style="dim")
    else:
        if fmt == "parquet" and sys.stdout.isatty():
            raise UsageError("parquet is binary: give -o FILE or redirect stdout")
        output.write(frame, fmt)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False))
def demo(directory: str) -> None:
    """Write a realistic demo repository into DIRECTORY."""
    from mlrepo.commands.operations.demo import write_demo

    if os.path.isdir(directory) and os.listdir(directory):
        raise UsageError(f"{directory} is not empty; give a new or empty folder")
    n = write_demo(directory)
    click.echo(f"wrote {n} models to {os.path.abspath(directory)}; try: mlrepo ls {directory}")


@cli.command()
@click.argument("root", default=".", type=click.Path(file_okay=False, exists=True, path_type=str))
@click.option("--demo", is_flag=True, help="Open a generated demo repository instead of ROOT.")
def tui(root: str, demo: bool) -> None:
    """The terminal app: browse, sort, filter and pick models; `p` prints the selected model's path."""
    if demo:
        import platformdirs
        from mlrepo.commands.operations.demo import cached_demo

        root = cached_demo(platformdirs.user_cache_dir("mlrepo"))
    if not (sys.stdin.isatty() and sys.stderr.isatty()):  # Textual draws on stderr and reads stdin
        err.print("mlrepo tui needs a terminal; listing the models instead", style="dim")
        output.write(_load(root).df.select(*DEFAULT_LS), "table")
        return
    from mlrepo.tui.app import MlrepoApp  # textual only loads for this command

    app = MlrepoApp(root, label="demo" if demo else root)
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
        click.echo(picked)


def _one_line(message: str) -> str:
    """Libraries' messages can span lines (polars adds its plan); the first non-empty line says what went wrong."""
    return next((line.strip() for line in message.splitlines() if line.strip()), message)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line on stderr for every error, never a traceback."""
    try:
        code = cli.main(args=argv, prog_name="mlrepo", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("aborted", markup=False)
        code = ExitStatus.FAILED
    except click.ClickException as exc:  # click's usage errors too: one line, pointing at the command's help
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
        err.print(f"mlrepo: error: {_one_line(exc.format_message())}{hint}", markup=False)
        code = exc.exit_code
    except MlrepoError as exc:
        err.print(f"mlrepo: error: {exc}", markup=False)
        code = exc.exit_status
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): not an error
        code = 0
    except Exception as exc:  # the promise: a message, not a traceback
        err.print(f"mlrepo: error: {type(exc).__name__}: {_one_line(str(exc))}", markup=False)
        code = ExitStatus.FAILED
    except BaseException as exc:  # pyo3 panics (polars) are BaseExceptions; exits and interrupts pass
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        err.print(f"mlrepo: error: internal error in a library: {_one_line(str(exc))}", markup=False)
        code = ExitStatus.FAILED
    sys.exit(int(code) if isinstance(code, int) else 0)

"""The ``mlrepo`` command line. Every command is a thin shell over ``repo_index`` and the operations here.

This module loads no polars and no rich: ``--help``, ``--version`` and a TAB stay fast. Each command imports what
it uses when it runs.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click
from mlrepo import __version__
from mlrepo.commands.cli import complete
from mlrepo.commands.cli import config as settings
from mlrepo.commands.cli.common import (
    EXPORT_FORMATS,
    LIST_FORMATS,
    State,
    get_root,
    load,
    note,
    root_argument,
    visible,
)
from mlrepo.commands.cli.console import err, set_color
from mlrepo.commands.cli.roots import check_refs_inside
from mlrepo.errors import ExitStatus, FailedError, MlrepoError, UsageError, in_words
from mlrepo.repo_index.remote.location import is_url

if TYPE_CHECKING:
    from mlrepo.repo_index import Index

INACTIVE = ("deleted", "trashed", "archived")
DEFAULT_LS = ("id", "repo", "line", "name", "format", "status", "size_bytes", "updated_at")


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def where_opt(f: Callable) -> Callable:
    return click.option("--where", "where_expr", metavar="EXPR", shell_complete=complete.column_names,
                        help="Only models matching EXPR, e.g. \"metrics.f1 > 0.8 and params.model = 'rf'\".")(f)


def index_opt(f: Callable) -> Callable:
    return click.option("--index", "index_url", metavar="URL",
                        help="Query a published team index (a Delta table: folder, s3://...) instead of ROOT.")(f)


def _source(root: str | None, yes: bool, index_url: str | None, where_expr: str | None = None,
            limit: int | None = None) -> Index:
    """The index of ROOT, or with ``--index URL`` the published team index: the rows ``where_expr`` selects (the
    first ``limit`` of them when given), read with both pushed into the scan."""
    if index_url is None:
        return load(get_root(root, yes, remote=True))
    if root is not None:
        raise UsageError("give ROOT or --index URL, not both")
    from mlrepo.repo_index.team import open_team

    return open_team(index_url, where_expr, limit)  # type: ignore[return-value]  # shaped like Index for listings


def format_opt(default: str = "table", choices: tuple[str, ...] = LIST_FORMATS) -> Callable:
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format (json: README, 'Machine-readable output').")


def _print_json(obj: object) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj, default=str, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    sys.stdout.flush()


class ReaderGone(Exception):
    """stdout's reader closed the pipe (``| head``)."""


class LazyGroup(click.Group):
    """Subcommands whose modules load only when named (click's documented pattern): every command starts without
    the journal, the trash and watchdog unless it needs them."""

    LAZY = {
        "prune": "mlrepo.commands.cli.maintenance:prune",
        "archive": "mlrepo.commands.cli.maintenance:archive",
        "restore": "mlrepo.commands.cli.maintenance:restore",
        "pin": "mlrepo.commands.cli.pins:pin",
        "unpin": "mlrepo.commands.cli.pins:unpin",
        "watch": "mlrepo.commands.cli.watch:watch",
    }
    # what `mlrepo --help` lists for them, so that the help loads none of their modules (nor polars)
    SUMMARIES = {
        "prune": "Remove what no keep rule keeps (to the trash by default).",
        "archive": "Move models into compressed archives (.tar.zst).",
        "restore": "Bring archived or trashed models back, byte for byte.",
        "watch": "Stream index changes as JSON lines, one object per change.",
        "pin": "Protect models from prune and archive; alone, list the pins.",
        "unpin": "Remove the protection of models.",
    }

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        for name in names:
            summary = self.SUMMARIES.get(name)
            if summary is None:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                summary = command.get_short_help_str(limit=limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:  # before click's own handler, which exits 1 on a closed pipe
            if exc.errno == errno.EPIPE:
                raise ReaderGone from None
            raise

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            import importlib

            module, _, attr = self.LAZY[cmd_name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(version=__version__, prog_name="mlrepo")  # not from the dists' metadata: 60 modules fewer
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default=None,
              help="Colour in tables and plans (default auto: on a terminal, unless NO_COLOR; FORCE_COLOR forces).")
@click.option("-q", "--quiet", is_flag=True, help="No progress and no notes on stderr (errors still show).")
@click.pass_context
def cli(ctx: click.Context, color: str | None, quiet: bool) -> None:
    """One index over every model folder under a root (Cascade, MLflow, Lightning, HF Trainer, metrics.json):
    browse, rank, compare, prune and archive.

    ROOT is the folder that holds the models: the ROOT argument, else MLREPO_ROOT, else `root` in a config file,
    else the current folder. `mlrepo config` shows the settings in force; `mlrepo completion bash` the TAB script.
    """
    if ctx.invoked_subcommand is None:  # a bare `mlrepo` is a request for help, as with gh and uv
        click.echo(ctx.get_help())
        ctx.exit(0)
    state = ctx.ensure_object(State)
    state.values, state.looked = settings.settings_in_force(settings.start_folder(state.argv))
    ctx.default_map = settings.default_map(state.values)
    configured = state.values.get("color")
    mode = color or (str(configured.value) if configured else "auto")
    if mode not in ("auto", "always", "never"):
        raise UsageError(f"color in {configured.source if configured else '--color'} must be auto, always or never")
    set_color(mode)  # type: ignore[arg-type]
    state.quiet = quiet


@cli.command()
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

        _print_json(stamped({
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


def _write_rows(frame: object, fmt: str) -> None:
    """A listing in ``fmt``; JSON rows start with the schema version."""
    from mlrepo.commands.cli import output
    from mlrepo.repo_index.schema import with_version_column

    output.write(with_version_column(frame) if fmt in ("json", "jsonl") else frame, fmt)  # type: ignore[arg-type]


@cli.command(name="ls")
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
    from mlrepo.repo_index.columns import resolve_column
    from mlrepo.repo_index.filtering import where

    idx = _source(root, yes, index_url, where_expr, None if sort_col else limit)
    frame = where(idx.df, where_expr, idx.metrics)
    if sort_col:
        col = resolve_column(sort_col, frame.columns, idx.metrics)
        if asc is None and col.startswith("metrics."):  # best first, saying which way is best
            from mlrepo.repo_index.ranking import rank_keys

            key = rank_keys([col], [], frame.columns, idx.metrics)[0]
            asc = key.mode == "min"
            note(f"sorted best first: {key.describe()}")
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
    _write_rows(frame.select(cols), fmt)
    if fmt == "table":
        note(f"{frame.height} of {len(idx)} models" if frame.height != len(idx) else f"{len(idx)} models")


@cli.command()
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
    import polars as pl
    from mlrepo.commands.operations.best import missing_folder, rankable
    from mlrepo.repo_index.filtering import where
    from mlrepo.repo_index.ranking import best as best_of
    from mlrepo.repo_index.ranking import rank_keys

    idx = _source(root, yes, index_url, where_expr)
    keys = rank_keys(_split(metrics), list(modes), idx.df.columns, idx.metrics)
    frame = where(idx.df, where_expr, idx.metrics)
    if not all_status:
        frame = frame.filter(~pl.col("status").is_in(INACTIVE))
    frame, left_out = rankable(frame, include_unfinished, include_failed)
    winners = best_of(frame, keys, per or "all")
    note("ranked by " + "; then ".join(k.describe() for k in keys)
         + (f"; {'/'.join(left_out)} runs not ranked (--include-unfinished/--include-failed)" if left_out else ""))
    if winners.is_empty():
        raise FailedError(f"no model has {keys[0].column}")
    if fmt == "path":
        problems = [why for row in winners.iter_rows(named=True) if (why := missing_folder(row))]
        for path, row in zip(winners["path"], winners.iter_rows(named=True), strict=True):
            if missing_folder(row) is None:
                click.echo(visible(path))
        if problems:
            raise FailedError("; ".join(problems))
        return
    shown = [*DEFAULT_LS[:4], "path", *dict.fromkeys(k.column for k in keys)]
    _write_rows(winners.select(shown) if fmt in ("table", "md") else winners.drop("rank"), fmt)


def _models(args: tuple[str, ...], root_opt: str | None, n_models: int, yes: bool) -> tuple[object, list[dict]]:
    """``[ROOT] MODEL…`` with exactly ``n_models`` models (``show``, ``diff``): one argument more is ROOT; ROOT
    otherwise comes from ``--root``, MLREPO_ROOT, the config or the current folder, as for every command."""
    from mlrepo.repo_index.index import find_model

    given: str | None
    if len(args) == n_models + 1 and root_opt is None:
        given, refs, source = args[0], list(args[1:]), "the ROOT argument"
    elif len(args) == n_models:
        given, refs, source = root_opt, list(args), "--root"
    else:
        what = "MODEL" if n_models == 1 else "MODEL_A MODEL_B"
        raise UsageError(f"give [ROOT] {what}" + (" (ROOT once: as an argument or --root)" if root_opt else ""))
    root = get_root(given, yes, source, remote=True)
    check_refs_inside(root, refs)
    idx = load(root)
    return idx, [find_model(idx, ref) for ref in refs]


root_opt = click.option("--root", "root_opt", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
                        help="ROOT, when not given as the first argument.")
yes_opt = click.option("-y", "--yes", is_flag=True,
                       help="Index ROOT even when it is clearly no model store (/, a home or system folder).")


@cli.command()
@click.argument("args", nargs=-1, metavar="[ROOT] MODEL", shell_complete=complete.model_ids)
@root_opt
@yes_opt
@format_opt(choices=("table", "json"))
def show(args: tuple[str, ...], root_opt: str | None, yes: bool, fmt: str) -> None:
    """Everything known about one model (MODEL: id or id prefix, path, or repo/line/name)."""
    idx, (row,) = _models(args, root_opt, 1, yes)
    if fmt == "json":
        from mlrepo.repo_index.schema import stamped

        _print_json(stamped(row))
        return
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import model_panel

    output.stdout_console().print(model_panel(row, idx))  # type: ignore[arg-type]


@cli.command()
@click.argument("args", nargs=-1, metavar="[ROOT] MODEL_A MODEL_B", shell_complete=complete.model_ids)
@root_opt
@yes_opt
@click.option("--changed", "changed_only", is_flag=True, help="Only the params and metrics that differ.")
@format_opt(choices=("table", "json"))
def diff(args: tuple[str, ...], root_opt: str | None, yes: bool, changed_only: bool, fmt: str) -> None:
    """Params and metrics of two models side by side, differences marked."""
    idx, (a, b) = _models(args, root_opt, 2, yes)
    if fmt == "json":
        from mlrepo.repo_index.schema import diff_document

        doc = diff_document(a, b, [*idx.metric_columns, *idx.param_columns])  # type: ignore[attr-defined]
        if changed_only:
            doc["keys"] = [k for k in doc["keys"] if k["differs"]]
        _print_json(doc)
        return
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import diff_table

    output.stdout_console().print(diff_table(a, b, idx, changed_only))  # type: ignore[arg-type]


@cli.command()
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

        _print_json(history_document(build_history(frame, col), col))
        return
    from mlrepo.commands.cli import output
    from mlrepo.commands.views.tables import history_trees

    console = output.stdout_console()
    for tree in history_trees(frame, col):
        console.print(tree)


@cli.command()
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

    idx = _source(root, yes, index_url, where_expr)
    frame = usage(where(idx.df, where_expr, idx.metrics), by, top)
    if fmt == "table":
        output.stdout_console().print(usage_table(frame, by))
    else:
        _write_rows(frame, fmt)


@cli.command()
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

    idx = _source(root, yes, index_url, where_expr)
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


@cli.command()
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


@cli.command()
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
        source = functools.partial(_source, root, yes, index_url)
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


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the TAB-completion script for SHELL; metric names, columns and model ids come from the last index.

    \b
    bash:  eval "$(mlrepo completion bash)"            (in ~/.bashrc)
    zsh:   eval "$(mlrepo completion zsh)"             (in ~/.zshrc)
    fish:  mlrepo completion fish > ~/.config/fish/completions/mlrepo.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # the three shells click ships
    click.echo(cls(cli, {}, "mlrepo", "_MLREPO_COMPLETE").source())


@cli.command(name="config")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def config_cmd(state: State, fmt: str) -> None:
    """The settings in force and where each comes from (command line > environment > mlrepo.toml or
    [tool.mlrepo] in pyproject.toml, from ROOT upward > user config > default)."""
    rows = [{"setting": s.key, "value": state.values[s.key].value if s.key in state.values else None,
             "source": state.values[s.key].source if s.key in state.values else "default", "env": s.env,
             "meaning": s.help} for s in settings.SETTINGS]
    if fmt == "json":
        from mlrepo.repo_index.schema import stamped

        _print_json(stamped({"settings": rows, "files": state.looked}))
        return
    for r in rows:
        value = "" if r["value"] is None else (",".join(r["value"]) if isinstance(r["value"], list) else r["value"])
        click.echo(f"{r['setting']:<11} {str(value) or '-':<24} {r['source']}  ({r['env']}: {r['meaning']})")
    click.echo("config files (lowest precedence first): " + ", ".join(
        f"{f}{'' if os.path.isfile(f) else ' (none)'}" for f in state.looked))


def _one_line(message: str) -> str:
    """Libraries' messages can span lines (polars adds its plan); the first non-empty line says what went wrong."""
    return next((line.strip() for line in message.splitlines() if line.strip()), message)


def _reader_gone() -> int:
    """The reader of stdout went away (``| head``): not an error, as with git and ripgrep. stdout is pointed at
    /dev/null so that the interpreter's final flush does not fail (Python's documented recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ExitStatus.OK


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line on stderr for every error, never a traceback."""
    try:
        args = sys.argv[1:] if argv is None else argv
        code = cli.main(args=args, prog_name="mlrepo", standalone_mode=False, obj=State(argv=list(args)),
                        complete_var="_MLREPO_COMPLETE")
        sys.stdout.flush()  # here, not at exit, where a closed pipe would be reported as an error
    except click.exceptions.Abort:
        err.print("aborted", markup=False)
        code = ExitStatus.FAILED
    except click.ClickException as exc:  # click's usage errors too: one line, pointing at the command's help
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
        err.print(visible(f"mlrepo: error: {_one_line(exc.format_message())}{hint}"), markup=False)
        code = exc.exit_code
    except MlrepoError as exc:
        err.print(visible(f"mlrepo: error: {exc}"), markup=False)
        code = exc.exit_status
    except KeyboardInterrupt:
        code = ExitStatus.INTERRUPTED
    except (ReaderGone, BrokenPipeError):
        code = _reader_gone()
    except Exception as exc:  # the promise: a message, not a traceback
        err.print(visible(f"mlrepo: error: {_one_line(str(exc)) if str(exc) else in_words(exc)}"), markup=False)
        code = ExitStatus.FAILED
    except BaseException as exc:  # pyo3 panics (polars) are BaseExceptions; exits and interrupts pass
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        err.print(visible(f"mlrepo: error: internal error in a library: {_one_line(str(exc))}"), markup=False)
        code = ExitStatus.FAILED
    sys.exit(int(code) if isinstance(code, int) else 0)

"""The ``mlrepo`` command line: the root group (global options, the subcommands it loads by name), ``completion``,
``config`` and ``main``, which turns every error into one line. Every command is a thin shell over ``repo_index``
and the operations.

This module loads no polars and no rich: ``--help``, ``--version`` and a TAB stay fast. A command's module loads
when the command is named (``LazyGroup``), and imports what it uses when it runs.
"""

from __future__ import annotations

import errno
import os
import sys

import click
from mlrepo import __version__
from mlrepo.commands.cli import config as settings
from mlrepo.commands.cli.common import State, print_json, visible
from mlrepo.commands.cli.console import err, set_color
from mlrepo.errors import ExitStatus, MlrepoError, UsageError, in_words


class ReaderGone(Exception):
    """stdout's reader closed the pipe (``| head``)."""


class LazyGroup(click.Group):
    """Subcommands whose modules load only when named (click's documented pattern): every command starts without
    the journal, the trash and watchdog unless it needs them."""

    LAZY = {
        "index": "mlrepo.commands.cli.read:index",
        "ls": "mlrepo.commands.cli.read:ls",
        "best": "mlrepo.commands.cli.read:best",
        "show": "mlrepo.commands.cli.read:show",
        "diff": "mlrepo.commands.cli.read:diff",
        "history": "mlrepo.commands.cli.read:history",
        "du": "mlrepo.commands.cli.read:du",
        "export": "mlrepo.commands.cli.read:export",
        "tui": "mlrepo.commands.cli.app:tui",
        "demo": "mlrepo.commands.cli.app:demo",
        "prune": "mlrepo.commands.cli.maintenance:prune",
        "archive": "mlrepo.commands.cli.maintenance:archive",
        "restore": "mlrepo.commands.cli.maintenance:restore",
        "pin": "mlrepo.commands.cli.pins:pin",
        "unpin": "mlrepo.commands.cli.pins:unpin",
        "watch": "mlrepo.commands.cli.watch:watch",
    }
    # what `mlrepo --help` lists, so that the help loads no command's module (nor polars); one line at 80 columns
    SUMMARIES = {
        "index": "Build or refresh the index cache; print the models found.",
        "ls": "List models.",
        "best": "Print the best finished model's path, for scripts.",
        "show": "Everything known about one model.",
        "diff": "Params and metrics of two models side by side.",
        "history": "The parameter-history tree of each line.",
        "du": "Disk usage by repo, line or model, largest first.",
        "export": "The whole index, for scripts and notebooks.",
        "tui": "The terminal app: browse, sort, filter and pick models.",
        "demo": "Write a realistic demo repository into DIRECTORY.",
        "prune": "Remove what no keep rule keeps (to the trash by default).",
        "archive": "Move models into compressed archives (.tar.zst).",
        "restore": "Bring archived or trashed models back, byte for byte.",
        "watch": "Stream index changes as JSON lines, one object per change.",
        "pin": "Protect models from prune and archive; alone, list the pins.",
        "unpin": "Remove the protection of models.",
        "completion": "Print the TAB-completion script for SHELL.",
        "config": "The settings in force and where each comes from.",
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

        print_json(stamped({"settings": rows, "files": state.looked}))
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

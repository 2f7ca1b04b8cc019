"""Printing a table in every listing format: table (rich), csv, json, jsonl, md, parquet."""

from __future__ import annotations

import errno
import io
import sys
from typing import BinaryIO

import orjson
import polars as pl
from mlrepo.commands.views.text import cell, plain, visible_frame
from mlrepo.repo_index.schema import PARQUET_KEY, SCHEMA_VERSION
from rich.console import Console
from rich.table import Table
from rich.text import Text


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """List columns as text, for formats that hold scalars only."""
    lists = [c for c, t in frame.schema.items() if isinstance(t, pl.List)]
    return frame.with_columns(pl.col(c).list.join(";") for c in lists) if lists else frame


def _rows_json(frame: pl.DataFrame) -> list[bytes]:
    return [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in frame.iter_rows(named=True)]


def markdown(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=10_000, tbl_width_chars=65_535,
                   fmt_table_cell_list_len=-1):
        text = visible_frame(_flat(frame).with_columns(pl.all().cast(pl.String).fill_null("")))  # empty, not "null"
        return str(text) + "\n"


def rich_table(frame: pl.DataFrame, title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for name, dtype in frame.schema.items():
        numeric = dtype.is_numeric()
        header = plain("size" if name == "size_bytes" else name.removeprefix("metrics."))
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True, overflow="ellipsis")
    for row in frame.iter_rows():
        table.add_row(*(Text(cell(v, c)) for v, c in zip(row, frame.columns, strict=True)))
    return table


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        """rich's documented hook: the CLI ends a closed pipe quietly with 0, where rich would exit 1."""
        raise BrokenPipeError(errno.EPIPE, "stdout was closed")


def stdout_console() -> Console:
    """A console for stdout that never wraps lines when stdout is a file or a pipe (scripts read it), even when
    FORCE_COLOR makes rich treat the pipe as a terminal (``FORCE_COLOR=1 mlrepo ls | less -R``)."""
    return _StdoutConsole() if sys.stdout.isatty() else _StdoutConsole(width=100_000)


def write(frame: pl.DataFrame, fmt: str, out: BinaryIO | None = None, title: str | None = None) -> None:
    """Write ``frame`` in ``fmt`` to ``out`` (stdout by default)."""
    stream = out or sys.stdout.buffer
    if fmt == "table":
        if out is None:
            stdout_console().print(rich_table(frame, title))
            return
        text = io.TextIOWrapper(stream, encoding="utf-8", write_through=True)
        Console(file=text, width=100_000, color_system=None, force_terminal=False).print(rich_table(frame, title))
        text.detach()  # ``out`` stays open for its owner
        return
    if fmt == "csv":
        stream.write(visible_frame(_flat(frame)).write_csv().encode())
    elif fmt == "json":
        stream.write(b"[" + b",\n".join(_rows_json(frame)) + b"]\n")
    elif fmt == "jsonl":
        for line in _rows_json(frame):
            stream.write(line + b"\n")
    elif fmt == "md":
        stream.write(markdown(frame).encode())
    elif fmt == "parquet":
        buffer = io.BytesIO()
        frame.write_parquet(buffer, metadata={PARQUET_KEY: str(SCHEMA_VERSION)})
        stream.write(buffer.getvalue())
    else:  # guarded by click.Choice
        raise ValueError(fmt)
    stream.flush()

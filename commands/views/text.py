"""Strings from disk shown as text: one cell's text as every table (CLI and TUI) shows a value, control characters
made visible, and rich ``Text`` (never markup) for every renderable.

A name, tag or value read from a model's files is untrusted: ``[link=…]`` or ``[/nothing]`` must print as itself, and an
ESC, CR, BEL or bidi override must not reach the terminal (clear screen, OSC 52 clipboard writes, window titles,
lines that overwrite the plan). ``visible`` writes each such character as its escape (``\\x1b``, ``\\r``,
``\\u202e``); json/jsonl/parquet keep values intact (their own formats escape them).
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl
from mlrepo.repo_index.units import human_size
from rich.text import Text

# C0 controls, DEL, C1 controls, and the bidi embeddings/overrides/isolates that reorder what a line shows
_UNSAFE = "\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[{_UNSAFE}]")
_RUST_UNSAFE = r"[\x00-\x1f\x7f-\x9f\x{200e}\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}]"  # the same, for polars
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every control or reordering character written as its escape; anything else unchanged."""
    return UNSAFE.sub(_escape, text) if UNSAFE.search(text) else text


def plain(value: object) -> Text:
    """A string from disk as a rich ``Text``: never read as markup, control characters visible."""
    return Text(visible(str(value)))


def cell(value: object, column: str = "") -> str:
    """A value as a table shows it (control characters visible)."""
    if value is None:
        return ""
    if column == "size_bytes" and isinstance(value, int):
        return human_size(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return visible(", ".join(map(str, value)))
    return visible(str(value))


def visible_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every string column and column name with control characters visible (csv, md, the TUI's cells; list
    columns are joined into strings first); only the values that hold one are rewritten."""
    exprs = [
        pl.when(pl.col(name).str.contains(_RUST_UNSAFE))
        .then(pl.col(name).map_elements(visible, return_dtype=pl.String))
        .otherwise(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items() if dtype == pl.String
    ]
    shown = frame.with_columns(exprs) if exprs else frame
    names = {name: visible(name) for name in shown.columns if UNSAFE.search(name)}
    return shown.rename(names) if names else shown

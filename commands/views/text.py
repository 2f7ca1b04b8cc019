"""One cell's text, as every table (CLI and TUI) shows a value."""

from __future__ import annotations

from datetime import datetime

from mlrepo.repo_index.units import human_size


def cell(value: object, column: str = "") -> str:
    """A value as a table shows it."""
    if value is None:
        return ""
    if column == "size_bytes" and isinstance(value, int):
        return human_size(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)

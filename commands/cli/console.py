"""The stderr console every command writes its notes to, made on first use: ``--help``, ``--version`` and a TAB
never load rich, and ``--color`` applies to it as to stdout."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console

ColorMode = Literal["auto", "always", "never"]


def set_color(mode: ColorMode) -> None:
    """``--color``: through the variables rich and other tools read (NO_COLOR, FORCE_COLOR), so every console made
    afterwards, stdout's and stderr's, follows it."""
    if mode == "never":
        os.environ["NO_COLOR"] = "1"
        os.environ.pop("FORCE_COLOR", None)
    elif mode == "always":
        os.environ["FORCE_COLOR"] = "1"
        os.environ.pop("NO_COLOR", None)
    _stderr.cache_clear()


@cache
def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class _Err:
    """``err.print(...)`` as before, with the console behind it made when first printed to."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_stderr(), name)


err: Any = _Err()

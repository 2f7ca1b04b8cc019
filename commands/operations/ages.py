"""Spans of time as restic spells them, and times as the plan prints them."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mlrepo.errors import UsageError

_AGE = re.compile(r"(\d+(?:\.\d+)?)(min|y|m|w|d|h)", re.IGNORECASE)
_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "min": 60}


@dataclass(frozen=True, slots=True)
class Age:
    """A span as restic's ``forget --keep-within`` spells it: ``y`` years, ``m`` months, ``w`` weeks, ``d`` days,
    ``h`` hours (combined: ``1y6m``); minutes only spelled out (``90min``). Years and months are calendar ones."""

    months: int = 0
    seconds: float = 0.0
    text: str = ""

    def before(self, now: datetime) -> datetime:
        """``now`` minus this span (the cut-off date)."""
        shifted = now
        if self.months:
            year, month0 = divmod(now.year * 12 + now.month - 1 - self.months, 12)
            if year < 1:
                return datetime.min.replace(tzinfo=timezone.utc)
            day = min(now.day, calendar.monthrange(year, month0 + 1)[1])
            shifted = now.replace(year=year, month=month0 + 1, day=day)
        try:
            return shifted - timedelta(seconds=self.seconds)
        except OverflowError:
            return datetime.min.replace(tzinfo=timezone.utc)

    @property
    def zero(self) -> bool:
        return not self.months and not self.seconds


def parse_age(text: str) -> Age:
    """``30d``, ``12h``, ``2w``, ``6m`` (months, as restic), ``90min``, ``1y``, or combined: ``1y6m``; ``0``."""
    compact = text.strip().replace(" ", "")
    if compact == "0":
        return Age(0, 0.0, "0")
    parts = list(_AGE.finditer(compact))
    if not compact or not parts or "".join(p.group(0) for p in parts) != compact:
        raise UsageError(f"bad age {text!r}: give a number and a unit (y years, m months, w weeks, d days, "
                         "h hours, min minutes), e.g. 30d, 6m, 12h, 90min, 1y6m")
    months, seconds = 0, 0.0
    for p in parts:
        n, unit = float(p.group(1)), p.group(2).lower()
        if unit in ("y", "m"):
            if n != int(n):
                raise UsageError(f"bad age {text!r}: years and months are whole numbers")
            months += int(n) * (12 if unit == "y" else 1)
        else:
            seconds += n * _SECONDS[unit]
    return Age(months, seconds, compact)


RECENT = Age(0, 600.0, "10min")


def human_age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def when_text(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

"""Time windows given on the command line (`--since 1h`)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
MAX_WINDOW = timedelta(days=90)
"""The ledger keeps history 90 days (its TTL); a longer window only costs empty queries."""


def parse_duration(text: str) -> timedelta:
    """`"90s"`, `"15m"`, `"1h"`, `"2d"`, `"1w"` → a timedelta.

    Raises ValueError for anything else, for zero, and for more than `MAX_WINDOW`.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit s, m, h, d or w (e.g. 1h, 2d)"
        )
    delta = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    if delta <= timedelta(0):
        raise ValueError(f"{text!r}: the duration must be positive")
    if delta > MAX_WINDOW:
        raise ValueError(f"{text!r}: the longest window is {MAX_WINDOW.days}d")
    return delta


def days_between(start: datetime, end: datetime) -> list[date]:
    """Every UTC calendar day touched by `[start, end]`, oldest first (empty when reversed)."""
    first = start.astimezone(UTC).date()
    last = end.astimezone(UTC).date()
    days = []
    day = first
    while day <= last:
        days.append(day)
        day += timedelta(days=1)
    return days

"""Sets of days kept as ranges: ``[["2026-01-03", "2026-01-05"], …]``.

Each batch remembers the event days of the records it stored or changed (``batches.event_days``)
so that the quality analysis can cover the days that received data, however old (a back-fill
of five years), instead of only the last seven days of receipt. Ranges keep that small: a
back-fill batch of 5,000 rows read in update-time order spans a few runs of consecutive days.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

Range = tuple[date, date]


def to_ranges(days: Iterable[date]) -> list[Range]:
    """Consecutive days folded into (first, last) pairs, in order."""
    out: list[list[date]] = []
    for day in sorted(set(days)):
        if out and day == out[-1][1] + timedelta(days=1):
            out[-1][1] = day
        else:
            out.append([day, day])
    return [(a, b) for a, b in out]


def pack(days: Iterable[date]) -> list[list[str]] | None:
    """The JSON form stored in ``batches.event_days`` (None when there is no day)."""
    ranges = to_ranges(days)
    return [[a.isoformat(), b.isoformat()] for a, b in ranges] or None


def unpack(value: object) -> list[Range]:
    if not value:
        return []
    return [(date.fromisoformat(str(a)[:10]), date.fromisoformat(str(b)[:10])) for a, b in value]  # type: ignore[union-attr]


def merge(ranges: Iterable[Range], gap_days: int = 0) -> list[Range]:
    """Overlapping ranges joined, and ranges separated by at most ``gap_days`` days."""
    out: list[list[date]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + timedelta(days=gap_days + 1):
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]

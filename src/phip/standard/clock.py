"""The platform's clock and the date and time spellings hospital systems send.

Records carry local wall-clock times (Asia/Shanghai), stored naive.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

PLATFORM_TZ = ZoneInfo("Asia/Shanghai")


def platform_now() -> datetime:
    """Naive local time of the platform (Asia/Shanghai): records carry local wall-clock times."""
    return datetime.now(PLATFORM_TZ).replace(tzinfo=None)


_DATE_SEPARATORS = str.maketrans({"/": "-", ".": "-"})


def parse_datetime(value: str) -> datetime:
    """Parse the spellings hospital systems actually send into a naive local datetime.

    Accepted: ISO 8601 (``2026-11-22T08:30:00``, with or without offset), a space instead of
    ``T``, ``/`` or ``.`` as date separators, WS 363 DT15 (``20261122T083000``), compact
    ``20261122083000`` and a bare date (read as midnight).
    """
    if len(value) == 19 and value[10] in " T" and value[4] == "-":  # the canonical spelling: fast path
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    text = value.translate(_DATE_SEPARATORS) if ("/" in value or "." in value[:10]) else value
    if len(text) == 14 and text.isdigit():
        text = f"{text[:8]}T{text[8:]}"
    elif len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return naive_local(datetime.fromisoformat(text))


def naive_local(value: datetime) -> datetime:
    """A datetime as the platform stores it: platform local time, no zone, whole seconds."""
    if value.tzinfo is not None:
        value = value.astimezone(PLATFORM_TZ).replace(tzinfo=None)
    return value.replace(microsecond=0)


def parse_date(value: str) -> date:
    """A date in any spelling :func:`parse_datetime` takes (the time, if any, dropped)."""
    text = value.translate(_DATE_SEPARATORS) if ("/" in value or "." in value) else value
    if len(text) == 10:
        return date.fromisoformat(text)
    if len(text) == 8 and text.isdigit():
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return parse_datetime(value).date()


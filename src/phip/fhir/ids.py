"""Resource ids and page cursors. A record's resource id is the platform's record id (a
surrogate number, never the natural key, which may hold a visit or inpatient number), with
``-<suffix>`` for one of several resources of one record; a Patient's id is its EMPI person id."""

from __future__ import annotations

import re

from .outcome import FhirError

_RECORD_ID = re.compile(r"^([0-9]{1,18})(?:-([a-z0-9]{1,8}))?$")
_CURSOR = re.compile(r"^([ab])([0-9]{1,18})\.([0-9]{1,3})$")

#: the sort key of a resource in a searchset: newest record first, then its parts in order
SortKey = tuple[int, int]


def resource_id(record_id: int, suffix: str | None) -> str:
    return f"{record_id}-{suffix}" if suffix else str(record_id)


def parse_resource_id(value: str) -> tuple[int, str | None] | None:
    m = _RECORD_ID.match(value)
    return (int(m.group(1)), m.group(2)) if m else None


def sort_key(record_id: int, part: int) -> SortKey:
    return (-record_id, part)


def cursor(direction: str, key: SortKey) -> str:
    """``a…``: the page after ``key``; ``b…``: the page before it (keyset, not an offset)."""
    return f"{direction}{-key[0]}.{key[1]}"


def parse_cursor(value: str) -> tuple[str, SortKey]:
    m = _CURSOR.match(value)
    if m is None:
        raise FhirError("BAD_CURSOR", "分页参数 _cursor 无效：请使用上一页返回的 next / previous 链接", 400, "_cursor")
    return m.group(1), sort_key(int(m.group(2)), int(m.group(3)))

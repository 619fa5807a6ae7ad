"""Search parameters (FHIR R4 search, the subset PHIP answers): ``patient`` (or ``subject``),
``date`` with its prefixes, ``category`` and ``code`` tokens, ``_count`` and the page cursor.
Anything else is refused (400) rather than silently ignored: a client that believes it
filtered must not receive more than it asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from phip.standard.clock import PLATFORM_TZ

from .ids import SortKey, parse_cursor
from .outcome import FhirError

DEFAULT_COUNT, MAX_COUNT = 20, 100
KNOWN = {"patient", "subject", "date", "category", "code", "_count", "_cursor", "_id", "_format"}
#: the _format values meaning the only one PHIP answers; asking for XML is refused (406)
#: rather than answered in JSON
JSON_FORMATS = {"json", "application/json", "application/fhir+json"}


@dataclass
class SearchParams:
    patient: str | None = None
    since: datetime | None = None  # event time >= since
    until: datetime | None = None  # event time < until
    categories: list[tuple[str | None, str]] | None = None
    codes: list[tuple[str | None, str]] | None = None
    count: int = DEFAULT_COUNT
    cursor: tuple[str, SortKey] | None = None
    given: list[tuple[str, str]] = field(default_factory=list)  # what the self link repeats


def _bad(name: str, message: str) -> FhirError:
    return FhirError("BAD_SEARCH_PARAM", f"检索参数 {name} 无效：{message}", 400, name)


def _interval(text: str) -> tuple[datetime, datetime]:
    """The [start, end) a FHIR date of any precision covers, as naive platform times. A date
    whose end or time zone falls outside the calendar (9999-12-31, 0001-01-01T00:00+14:00) is
    refused like a malformed one (OverflowError: it was a server error)."""
    try:
        if len(text) == 4:
            y = int(text)
            return datetime(y, 1, 1), datetime(y + 1, 1, 1)
        if len(text) == 7:
            y, m = int(text[:4]), int(text[5:7])
            return datetime(y, m, 1), datetime(y + (m == 12), m % 12 + 1, 1)
        if len(text) == 10:
            d = date.fromisoformat(text)
            start = datetime(d.year, d.month, d.day)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(PLATFORM_TZ).replace(tzinfo=None)
        return moment, moment + timedelta(seconds=1)
    except (ValueError, OverflowError):
        raise _bad("date", "日期格式应为 YYYY、YYYY-MM、YYYY-MM-DD 或带时区的日期时间（0001至9999年内）") from None


def _dates(values: list[str], out: SearchParams) -> None:
    for value in values:
        prefix, text = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        start, end = _interval(text)
        bounds = {"eq": (start, end), "ge": (start, None), "gt": (end, None), "sa": (end, None),
                  "le": (None, end), "lt": (None, start), "eb": (None, start)}
        if prefix not in bounds:
            raise _bad("date", f"不支持的前缀 {prefix}（支持 eq、ge、gt、le、lt、sa、eb）")
        low, high = bounds[prefix]
        if low is not None:
            out.since = max(out.since, low) if out.since else low
        if high is not None:
            out.until = min(out.until, high) if out.until else high


def _tokens(name: str, values: list[str]) -> list[tuple[str | None, str]]:
    out = []
    for value in values:
        for token in value.split(","):
            system, sep, code = token.rpartition("|")
            if not code:
                raise _bad(name, "应为 code 或 system|code")
            out.append((system if sep and system else None, code))
    return out


def check_format(items: list[tuple[str, str]]) -> None:
    """Refuse a ``_format`` PHIP does not answer (406) rather than answer it in JSON: a read,
    a search and the CapabilityStatement alike."""
    for name, value in items:
        if name == "_format" and value.split(";")[0].strip().lower() not in JSON_FORMATS:
            raise FhirError("UNSUPPORTED_FORMAT", f"不支持的格式 _format={value[:40]}（仅支持 json）", 406, "_format")


def parse(items: list[tuple[str, str]]) -> SearchParams:
    """Parse a query string's (name, value) pairs, repeats kept (``date=ge…&date=le…``)."""
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        if name not in KNOWN:
            raise FhirError("UNSUPPORTED_SEARCH_PARAM", f"不支持的检索参数：{name}（支持 patient、date、category、code、_count）",
                            400, name)
        grouped.setdefault(name, []).append(value)
    out = SearchParams(given=[(n, v) for n, v in items if n not in ("_cursor", "_count", "_format")])
    patients = grouped.get("patient", []) + grouped.get("subject", [])
    if len(patients) > 1:
        raise _bad("patient", "只能指定一位患者")
    if patients:
        out.patient = patients[0].removeprefix("Patient/")
    _dates(grouped.get("date", []), out)
    if "category" in grouped:
        out.categories = _tokens("category", grouped["category"])
    if "code" in grouped:
        out.codes = _tokens("code", grouped["code"])
    if "_count" in grouped:
        try:
            out.count = int(grouped["_count"][-1])
        except ValueError:
            raise _bad("_count", "应为整数") from None
        if not 0 <= out.count <= MAX_COUNT:
            raise _bad("_count", f"应在 0 至 {MAX_COUNT} 之间")
    check_format(items)
    if "_cursor" in grouped:
        out.cursor = parse_cursor(grouped["_cursor"][-1])
    return out


def query_string(params: list[tuple[str, Any]]) -> str:
    return urlencode(params)

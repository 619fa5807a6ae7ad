"""Report periods: a month (``2021-03``), a month range (``2021-03..2021-04``) or a day range
(``2021-03-01..2021-04-30``; ``~`` and ``至`` also separate). Chinese month spellings such as
``2021年3月`` and dotted dates (``2021.5.6``) are read as well."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from phip.errors import PhipError


class PeriodError(PhipError, ValueError):
    """A report period that cannot be read; the message quotes it."""

    code = "BAD_PERIOD"

    def __init__(self, message: str):
        super().__init__(None, message)


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def label(self) -> str:
        """The way the Jiangsu tables title a period: （3月1日-4月30日）."""
        if self.start.year != self.end.year:
            return f"{self.start.year}年{self.start.month}月{self.start.day}日-{self.end.year}年{self.end.month}月{self.end.day}日"
        return f"{self.start.year}年{self.start.month}月{self.start.day}日-{self.end.month}月{self.end.day}日"

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


_MONTH = re.compile(r"^(\d{4})\s*[-./年]\s*(\d{1,2})\s*月?$")
_DAY = re.compile(r"^(\d{4})\s*[-./年]\s*(\d{1,2})\s*[-./月]\s*(\d{1,2})\s*日?$")


def _bound(text: str, end: bool) -> date:
    text = text.strip()
    if (m := _DAY.match(text) or _MONTH.match(text)) and not 1900 <= int(m[1]) <= 2999:
        raise PeriodError(f"“{text}”的年份超出范围（1900–2999）")  # year 0 made date() raise: a 500
    if m := _DAY.match(text):
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise PeriodError(f"“{text}”不是有效日期") from None
    if m := _MONTH.match(text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise PeriodError(f"“{text}”不是有效月份")
        return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
    raise PeriodError(f"无法识别的统计期“{text}”，应为 2021-03、2021-03..2021-04 或 2021-03-01..2021-04-30")


def parse_period(text: str) -> Period:
    parts = re.split(r"\.\.|~|～|至|—|/(?=\d{4})", str(text).strip())
    if len(parts) == 1:
        start, end = _bound(parts[0], False), _bound(parts[0], True)
    elif len(parts) == 2:
        start, end = _bound(parts[0], False), _bound(parts[1], True)
    else:
        raise PeriodError(f"无法识别的统计期“{text}”")
    if end < start:
        raise PeriodError(f"统计期“{text}”的结束早于开始")
    return Period(start, end)


def month_of(day: date) -> Period:
    return Period(day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1]))


def last_days(today: date, n: int) -> Period:
    return Period(today - timedelta(days=n - 1), today)

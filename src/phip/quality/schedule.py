"""Nightly quality analysis (每日质控分析) from ``phip worker``.

Once a day, after ``PHIP_QUALITY_AT`` (platform local time, default 02:30: after the T+1
uploads), every institution that has uploaded is analysed over the last seven event days plus
every event day that received records since its last analysis (:mod:`phip.quality.window`: a
back-fill of history is analysed on the days it happened) — the windows ``phip quality run``
takes by default, so records corrected since the previous night are analysed again and stale
findings replaced. ``PHIP_QUALITY_AT=off`` leaves it to
the operator (or cron).

Workers share nothing but the database, like the collection schedule: an institution is
due while no full run of it has started since today's time, unless that run is an hour old
and unfinished (its worker died: it is taken up again). Two workers that both find an
institution due at the same instant analyse it twice; each data set's findings are
replaced under a lock (``quality.run.analyse``), so that costs time, never a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from sqlalchemy import Engine, or_, select

from phip.config import get_settings
from phip.errors import PhipError
from phip.standard.validate import platform_now
from phip.store.models import Institution

from .run import RunResult
from .window import analyse_windows, recent
from .tables import QualityRun

log = logging.getLogger("phip.quality")

DEFAULT_AT = time(2, 30)
STALE_AFTER = timedelta(hours=1)


class ScheduleError(PhipError, ValueError):
    """A ``PHIP_QUALITY_AT`` that is neither ``HH:MM`` nor ``off``."""

    code = "BAD_QUALITY_AT"

    def __init__(self, message: str):
        super().__init__(None, message)


def quality_time(text: str | None = None) -> time | None:
    """``PHIP_QUALITY_AT``: ``HH:MM``, or ``off``; unset means :data:`DEFAULT_AT`."""
    text = get_settings().quality_at if text is None else text
    text = text.strip().lower()
    if not text:
        return DEFAULT_AT
    if text in ("off", "none", "0", "false"):
        return None
    try:
        hour, minute = (int(p) for p in text.split(":"))
        return time(hour, minute)
    except ValueError:
        raise ScheduleError(f"PHIP_QUALITY_AT 应为 HH:MM（如 02:30）或 off，实际为“{text}”") from None


def window(today: date) -> tuple[date, date]:
    """The last seven event days (what every nightly analysis covers at least)."""
    return recent(today)


def due_institutions(engine: Engine, at: time, now: datetime | None = None, only: str | None = None) -> list[str]:
    """Institutions with uploads whose nightly analysis has not started (or has died) since
    today's ``at``; none before ``at``. One query, whatever the number of institutions (the
    worker asks every pass); ``only`` narrows it to one institution."""
    now = now or platform_now()
    if now.time() < at:
        return []
    r, inst = QualityRun.__table__, Institution.__table__
    taken = select(r.c.id).where(
        r.c.org_code == inst.c.code, r.c.dataset.is_(None), r.c.started_at >= datetime.combine(now.date(), at),
        or_(r.c.finished_at.is_not(None), r.c.started_at > now - STALE_AFTER),
    )
    query = select(inst.c.code).where(inst.c.first_upload_at.is_not(None), ~taken.exists()).order_by(inst.c.code)
    if only is not None:
        query = query.where(inst.c.code == only)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def run_due(engine: Engine, at: time | None, now: datetime | None = None,
            on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Analyse every due institution, one after another (each run commits per data set)."""
    if at is None:
        return []
    results = []
    for code in due_institutions(engine, at, now):
        if not due_institutions(engine, at, now, only=code):  # another worker took it meanwhile
            continue
        for result in analyse_windows(engine, code, (now or platform_now()).date(), as_of=now, on_result=on_result):
            log.info("quality analysis of %s (%s ~ %s): %d records, %d findings", code, result.day_from,
                     result.day_to, result.records, result.findings)
            results.append(result)
    return results

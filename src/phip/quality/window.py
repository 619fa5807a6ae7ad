"""Which event days an analysis covers (分析范围).

The analysis reads records by event day. Analysing only the last seven days missed every record
that arrives about older days: a back-fill of history (a new source's first run, ``phip collect
run --backfill``, a pushed archive) found nothing. Each batch keeps the event days of the records
it stored or changed (``batches.event_days``), so the nightly analysis and ``phip quality run``
without dates cover, besides the last seven days, every event day that received data since the
institution's last complete analysis began (all of them before its first): history is analysed
as the history it is, once, on the days it happened.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Engine, func, select

from phip.store.dayranges import Range, merge, unpack
from phip.store.models import Batch

from .tables import QualityRun

WINDOW_DAYS = 7
#: Ranges closer than this are analysed as one (a run per isolated day would cost more).
JOIN_GAP_DAYS = 7
#: A batch's receipt time is taken before its commit: batches received this long before the
#: last analysis began are looked at again (they may have committed after it read).
SLACK = timedelta(hours=1)


def recent(today: date) -> Range:
    return today - timedelta(days=WINDOW_DAYS), today


def last_analysis_start(engine: Engine, org_code: str) -> datetime | None:
    """When the institution's latest complete analysis of every data set began."""
    r = QualityRun.__table__
    with engine.connect() as conn:
        return conn.execute(select(func.max(r.c.started_at)).where(
            r.c.org_code == org_code, r.c.dataset.is_(None), r.c.finished_at.is_not(None))).scalar()


def touched(engine: Engine, org_code: str, since: datetime | None) -> list[Range]:
    """Event days of the institution that received records since ``since`` (ever, when None)."""
    b = Batch.__table__
    query = select(b.c.event_days).where(b.c.org_code == org_code, b.c.event_days.is_not(None))
    if since is not None:
        query = query.where(b.c.received_at >= since - SLACK)
    ranges: list[Range] = []
    with engine.connect() as conn:
        for value in conn.execute(query).scalars():
            ranges = merge([*ranges, *unpack(value)])  # folded as it goes: a back-fill is many batches
    return ranges


def windows(engine: Engine, org_code: str, today: date) -> list[Range]:
    """The event-day ranges to analyse: the last seven days plus what arrived since the last
    complete analysis, ranges a week apart or less joined."""
    since = last_analysis_start(engine, org_code)
    upto = [(a, min(b, today)) for a, b in touched(engine, org_code, since) if a <= today]
    return merge([recent(today), *upto], gap_days=JOIN_GAP_DAYS)

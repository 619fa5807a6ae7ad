"""Which event days an analysis covers (分析范围).

The analysis reads records by event day. Analysing only the last seven days missed every record
that arrives about older days: a back-fill of history (a new source's first run, ``phip collect
run --backfill``, a pushed archive) found nothing. Each batch keeps the event days of the records
it stored or changed (``batches.event_days``), so the nightly analysis and ``phip quality run``
without dates cover, besides the last seven days, every event day that received data since the
institution's last complete pass over its windows (all of them before its first): history is
analysed as the history it is, once, on the days it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, func, select, update

from phip.standard.validate import platform_now
from phip.store.dayranges import Range, merge, unpack
from phip.store.models import Batch

from .rules import load_supervision_rules
from .run import RunResult, analyse
from .tables import QualityRun

WINDOW_DAYS = 7
#: Ranges closer than this are analysed as one (a run per isolated day would cost more).
JOIN_GAP_DAYS = 7
#: A batch's receipt time is taken before its commit: batches received this long before the
#: last analysis began are looked at again (they may have committed after it read).
SLACK = timedelta(hours=1)


def recent(today: date) -> Range:
    return today - timedelta(days=WINDOW_DAYS), today


def covered_until(engine: Engine, org_code: str) -> datetime | None:
    """Batches received before this time have had their event days analysed (the mark of the
    institution's last complete pass over its windows; None before its first)."""
    r = QualityRun.__table__
    with engine.connect() as conn:
        return conn.execute(select(func.max(r.c.received_until)).where(r.c.org_code == org_code)).scalar()


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
    complete pass, ranges a week apart or less joined."""
    upto = [(a, min(b, today)) for a, b in touched(engine, org_code, covered_until(engine, org_code)) if a <= today]
    return merge([recent(today), *upto], gap_days=JOIN_GAP_DAYS)


def analyse_windows(engine: Engine, org_code: str, today: date, *, as_of: datetime | None = None,
                    dataset: str | None = None, on_result: Callable[[RunResult], None] | None = None) -> list[RunResult]:
    """Analyse every window, then mark the pass complete on its last run. The mark is the time
    the windows were computed; a pass that dies half-way leaves no mark, so the next one covers
    the same batches again. A run of dates chosen by hand (``--from``) marks nothing: it did
    not look at what arrived."""
    mark = platform_now()
    results = []
    for start, end in windows(engine, org_code, today):
        result = analyse(engine, org_code, start, end, as_of=as_of, dataset=dataset)
        # the internet-hospital supervision rules over the same window (only data sets they cover)
        analyse(engine, org_code, start, end, as_of=as_of, dataset=dataset, rules=load_supervision_rules(), mark=False)
        results.append(result)
        if on_result:
            on_result(result)
    if results and dataset is None:
        with engine.begin() as conn:
            conn.execute(update(QualityRun).where(QualityRun.id == results[-1].run_id).values(received_until=mark))
    return results

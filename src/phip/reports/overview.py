"""Figures of the province overview and the institution page, from counters only.

``within`` (a set of institution codes, :func:`phip.orgs.service.region_orgs`) limits every
figure to a regional reader's institutions; None is the whole province."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from phip.orgs.codes import tiles
from phip.standard.catalog import load_standard
from phip.store.models import EventDaily, IngestDaily, Institution

from .onboarding import Status
from .period import month_of
from .uploads import upload_report

STORED = IngestDaily.accepted + IngestDaily.updated


def daily_uploads(engine: Engine, start: date, end: date, org_code: str | None = None, *,
                  within: Collection[str] | None = None) -> list[tuple[date, int]]:
    """Records stored per receipt day (new + corrected), every day of the window (zeros included)."""
    stmt = select(IngestDaily.day, func.sum(STORED)).where(IngestDaily.day >= start, IngestDaily.day <= end)
    if org_code:
        stmt = stmt.where(IngestDaily.org_code == org_code)
    if within is not None:
        stmt = stmt.where(IngestDaily.org_code.in_(within))
    with engine.connect() as conn:
        got = {d: int(n or 0) for d, n in conn.execute(stmt.group_by(IngestDaily.day))}
    return [(start + timedelta(days=i), got.get(start + timedelta(days=i), 0)) for i in range((end - start).days + 1)]


def totals(engine: Engine, today: date, *, within: Collection[str] | None = None) -> dict[str, int]:
    month_start = today.replace(day=1)
    scope = [] if within is None else [IngestDaily.org_code.in_(within)]
    with engine.connect() as conn:
        def total(start: date) -> int:
            return int(conn.execute(select(func.coalesce(func.sum(STORED), 0))
                                    .where(IngestDaily.day >= start, IngestDaily.day <= today, *scope)).scalar_one())
        return {"today": total(today), "month": total(month_start)}


def dataset_records(engine: Engine, dataset: str) -> int:
    """Records of one data set across the province, from the daily event counters."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(EventDaily.records), 0))
                                .where(EventDaily.dataset == dataset)).scalar_one())


def institution(engine: Engine, org_code: str, *, within: Collection[str] | None = None) -> dict[str, Any] | None:
    """The register's row of an institution; None when unknown or outside ``within``."""
    if within is not None and org_code not in within:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(Institution.__table__).where(Institution.code == org_code)).first()
    return None if row is None else dict(row._mapping)


def datasets_of(engine: Engine, org_code: str, start: date, end: date) -> list[dict[str, Any]]:
    """Records per data set by event day in the window, and the last day with records."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(EventDaily.dataset, func.sum(EventDaily.records), func.max(EventDaily.day))
            .where(EventDaily.org_code == org_code, EventDaily.day >= start, EventDaily.day <= end)
            .group_by(EventDaily.dataset)
        ).all()
    std = load_standard()
    order = {d.code: d.number for d in std.datasets}
    return sorted(({"dataset": ds, "name": std.dataset(ds).label, "records": int(n or 0), "last_day": last}
                   for ds, n, last in rows), key=lambda e: order[e["dataset"]])


def rates_by_city(engine: Engine, today: date, within: Collection[str] | None = None) -> dict[str, Any]:
    """This month's upload rates per city (门急诊 and 出院, % of the figures reported to the
    statistics system) for the overview's bar chart; a city without reported figures is a gap."""
    report = upload_report(engine, month_of(today), "city", within=within)

    def pct(rate: float | None) -> float | None:
        return None if rate is None else round(rate * 100, 1)

    places = tiles()
    return {"categories": [r.name for r in report.rows],
            "series": [{"name": "门急诊上传率（%）", "values": [pct(r.outpatient_rate) for r in report.rows]},
                       {"name": "出院上传率（%）", "values": [pct(r.discharges_rate) for r in report.rows]}],
            "tiles": [{"code": r.key, "name": r.name, "col": places[r.key][0] + 1, "row": places[r.key][1] + 1,
                       "outpatient": r.rate_text("outpatient"), "discharges": r.rate_text("discharges"),
                       "band": rate_band(r.outpatient_rate)}
                      for r in report.rows if r.key in places]}


#: Colour bands of the tile map (upload rate of 门急诊), lowest first: (lower bound, class, legend)
RATE_BANDS = ((0.0, "low", "低于60%"), (0.6, "mid", "60%–90%"), (0.9, "high", "90%及以上"))


def rate_band(rate: float | None) -> str:
    """A rate's band (``RATE_BANDS``); "none" when no figure was reported to compare with."""
    if rate is None:
        return "none"
    return next(name for bound, name, _ in reversed(RATE_BANDS) if rate >= bound)


def onboarding_funnel(statuses: list[Status]) -> dict[str, Any]:
    """The onboarding stages as a funnel (对接进度): registered, linked, uploading, analysed."""
    stages = (("对接机构", len(statuses)), ("网络已联通", sum(s.network == "connected" for s in statuses)),
              ("数据已上传", sum(bool(s.uploading) for s in statuses)), ("数据已分析", sum(bool(s.analysed) for s in statuses)))
    return {"items": [{"name": name, "value": n} for name, n in stages]}

"""The supervision dashboard (互联网医院监管看板, /ops/supervision/): per internet hospital and in
total — appointments, consultations, prescriptions and the reviewed share, findings by rule with
their trend and masked examples, seed 000's weekly figures, and the monthly report as XLSX.
Built by the dashboard's router with its login (``view``, which also tells a regional reader's
institutions) and page renderer (``page``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from phip.quality import supervision_report as report
from phip.reports.period import PeriodError, month_of, parse_period
from phip.standard.validate import platform_now

from .scope import Viewer

PREFIX = "/ops/supervision"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(text: str | None, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        return default


def build_router(engine: Engine, view: Callable[[Request], Viewer], page: Callable[..., HTMLResponse]) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def window(month: str | None) -> tuple[date, date, str]:
        today = platform_now().date()
        try:
            p = parse_period(month) if month else month_of(today)
        except PeriodError:
            p = month_of(today)
        return p.start, p.end, f"{p.start:%Y-%m}"

    @router.get(PREFIX + "/", response_class=HTMLResponse)
    def supervision_page(request: Request, month: str | None = None, org: str | None = None, rule: str | None = None,
                         week: str | None = None) -> HTMLResponse:
        v = view(request)
        start, end, label = window(month)
        s = report.summary(engine, start, end, org or None, rule or None, within=v.within)
        days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
        week_end = _day(week, platform_now().date())
        return page("supervision.html", me=v.me, area=v.area, active="supervision", s=s, total=s.total, month=label,
                    org=org or "", rule=rule or "", hospitals=report.internet_hospitals(engine, v.within), rules=s.rules,
                    days=days, examples=report.examples(engine, start, end, org=org or None, rule=rule or None,
                                                        role=v.me.role, within=v.within),
                    week=report.week_figures(engine, week_end, within=v.within))

    @router.get(PREFIX + "/report.xlsx")
    def supervision_xlsx(request: Request, month: str | None = None, org: str | None = None,
                         rule: str | None = None) -> Response:
        v = view(request)
        start, end, label = window(month)
        body = report.monthly_xlsx(engine, start, end, org or None, rule or None, within=v.within, role=v.me.role)
        return Response(body, media_type=XLSX, headers={
            "Content-Disposition": f"attachment; filename=supervision-{label}.xlsx", "Cache-Control": "no-store"})

    return router

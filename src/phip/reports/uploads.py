"""The upload statistics report (数据上传情况统计), columns as in the Jiangsu bulletin tables:
upload volume, upload days, outpatient visits uploaded and upload rate, discharges uploaded
and upload rate, lab/exam volume, health records (basic information, hypertension, diabetes).

Every figure comes from counters — ``ingest_daily`` (receipt day), ``event_daily`` (event
day), ``measure_daily`` — and the reported figures; ``records`` is never read. The rate's
denominator is what the institution reported to the statistics system: not reported
(``None``) stays different from reported zero, and only active, network-connected
institutions that reported count in a region's rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from sqlalchemy import Engine, func, select

from phip.store.models import EventDaily, IngestDaily, Institution

from .period import Period
from .tables import MeasureDaily, ReportedFigure

Level = Literal["region", "institution"]
OUTPATIENT = ("outpatient_visit",)
LAB_EXAM = ("lab_report", "exam_report")
BASIC = ("patient_info",)

#: (key, Chinese header, group header) — the column order of the export and the page.
COLUMNS: list[tuple[str, str, str | None]] = [
    ("volume", "数据上传量", None),
    ("rejected", "拒收", None),
    ("days", "数据上传天数", None),
    ("outpatient", "上传人次", "门急诊信息"),
    ("outpatient_rate", "上传率", "门急诊信息"),
    ("discharges", "上传人次", "出院信息"),
    ("discharges_rate", "上传率", "出院信息"),
    ("lab_exam", "检验检查上传量", None),
    ("basic", "基本信息", "健康档案上传量"),
    ("hypertension", "高血压", "健康档案上传量"),
    ("diabetes", "糖尿病", "健康档案上传量"),
]
SORT_KEYS = {"name", *(c[0] for c in COLUMNS)}


@dataclass
class Row:
    key: str
    name: str
    region_name: str
    volume: int = 0
    rejected: int = 0  # rejections new in the period: each source row and content once (ingest_daily.rejected_new)
    days: int = 0
    outpatient: int = 0
    outpatient_reported: int | None = None
    discharges: int = 0
    discharges_reported: int | None = None
    lab_exam: int = 0
    basic: int = 0
    hypertension: int = 0
    diabetes: int = 0
    counted: bool = True  # institutions: counts in its region's rate (active and connected)
    institutions: int = 1
    region_code: str = ""
    # numerators of the rates when they differ from the uploaded totals (regions: counted institutions only)
    outpatient_num: int | None = None
    discharges_num: int | None = None

    def _num(self, measure: str) -> int:
        num = getattr(self, f"{measure}_num")
        return getattr(self, measure) if num is None else num

    @property
    def outpatient_rate(self) -> float | None:
        return _rate(self._num("outpatient"), self.outpatient_reported)

    @property
    def discharges_rate(self) -> float | None:
        return _rate(self._num("discharges"), self.discharges_reported)

    def rate_text(self, measure: str) -> str:
        return rate_text(self._num(measure), getattr(self, f"{measure}_reported"))

    def value(self, key: str) -> object:
        return getattr(self, key)


def _rate(uploaded: int, reported: int | None) -> float | None:
    """None when not reported or reported zero (no denominator); the page tells which."""
    if not reported:
        return None
    return uploaded / reported


def rate_text(uploaded: int, reported: int | None) -> str:
    if reported is None:
        return "未报告"
    if reported == 0:
        return "报告为0"
    return f"{uploaded / reported * 100:.2f}%"


@dataclass
class Report:
    period: Period
    level: Level
    rows: list[Row]
    total: Row
    region_code: str | None = None
    notes: list[str] = field(default_factory=list)


def _sum_by_org(conn, table, column, datasets_or_measures, key_col, period: Period) -> dict[str, int]:  # noqa: ANN001
    stmt = (select(table.org_code, func.sum(column)).where(table.day >= period.start, table.day <= period.end,
                                                           key_col.in_(datasets_or_measures)).group_by(table.org_code))
    return {org: int(n or 0) for org, n in conn.execute(stmt)}


def upload_report(engine: Engine, period: Period, level: Level = "institution", *, region_code: str | None = None,
                  sort: str | None = None, descending: bool = True, kinds: tuple[str, ...] = ("hospital",)) -> Report:
    if level not in ("region", "institution"):
        raise ValueError(f"unknown level {level}")
    with engine.connect() as conn:
        inst_q = select(Institution.code, Institution.name, Institution.region_code, Institution.region_name,
                        Institution.status, Institution.network_status).where(Institution.kind.in_(kinds))
        if region_code:
            inst_q = inst_q.where(Institution.region_code == region_code)
        insts = conn.execute(inst_q.order_by(Institution.region_code, Institution.name)).all()
        stored = IngestDaily.accepted + IngestDaily.updated
        in_period = (IngestDaily.day >= period.start, IngestDaily.day <= period.end)
        volume, rejected = {}, {}
        for o, n, bad in conn.execute(select(IngestDaily.org_code, func.sum(stored), func.sum(IngestDaily.rejected_new))
                                      .where(*in_period).group_by(IngestDaily.org_code)):
            volume[o], rejected[o] = int(n or 0), int(bad or 0)
        day_rows = conn.execute(
            select(IngestDaily.org_code, IngestDaily.day).where(*in_period, stored > 0).group_by(IngestDaily.org_code, IngestDaily.day)
        ).all()
        events = {}
        for name, datasets in (("outpatient", OUTPATIENT), ("lab_exam", LAB_EXAM), ("basic", BASIC)):
            events[name] = _sum_by_org(conn, EventDaily, EventDaily.records, datasets, EventDaily.dataset, period)
        for name in ("discharges", "hypertension", "diabetes"):
            events[name] = _sum_by_org(conn, MeasureDaily, MeasureDaily.records, (name,), MeasureDaily.measure, period)
        reported = {}
        for org, out_n, out_c, dis_n, dis_c in conn.execute(
            select(ReportedFigure.org_code, func.sum(ReportedFigure.outpatient_visits), func.count(ReportedFigure.outpatient_visits),
                   func.sum(ReportedFigure.discharges), func.count(ReportedFigure.discharges))
            .where(ReportedFigure.period_start >= period.start, ReportedFigure.period_end <= period.end)
            .group_by(ReportedFigure.org_code)
        ):
            reported[org] = (int(out_n) if out_c else None, int(dis_n) if dis_c else None)
    days_by_org: dict[str, set[date]] = {}
    for org, day in day_rows:
        days_by_org.setdefault(org, set()).add(day)
    rows: list[Row] = []
    for code, name, rcode, rname, status, network in insts:
        row = Row(code, name, rname, volume=volume.get(code, 0), rejected=rejected.get(code, 0),
                  days=len(days_by_org.get(code, ())),
                  counted=status == "active" and network == "connected", region_code=rcode)
        for k in ("outpatient", "lab_exam", "basic", "discharges", "hypertension", "diabetes"):
            setattr(row, k, events[k].get(code, 0))
        row.outpatient_reported, row.discharges_reported = reported.get(code, (None, None))
        rows.append(row)
    total = _aggregate("全省合计" if not region_code else "合计", "", rows, days_by_org, [r.key for r in rows])
    if level == "region":
        regions: dict[str, list[Row]] = {}
        for r in rows:
            regions.setdefault(r.region_code, []).append(r)
        rows = [_aggregate(members[0].region_name, code, members, days_by_org, [m.key for m in members])
                for code, members in regions.items()]
    if sort:
        if sort not in SORT_KEYS:
            raise ValueError(f"unknown sort column {sort}")
        present = [r for r in rows if r.value(sort) is not None]
        absent = [r for r in rows if r.value(sort) is None]
        rows = sorted(present, key=lambda r: r.value(sort), reverse=descending) + absent  # type: ignore[arg-type,return-value]
    notes = ["上传率 = 上传人次 ÷ 向卫生统计直报系统报告的人次；“未报告”与“报告为0”不计算上传率。",
             "拒收 = 统计期内新被拒收的记录数：同一条源记录以相同内容重复上传或重复采集只计一次，内容变化后再被拒收另计。",
             "地区上传率只计入在用且网络已联通、并已报告的机构；关停或未联通机构不拉低地区上传率。"]
    return Report(period, level, rows, total, region_code, notes)


def _aggregate(name: str, key: str, members: list[Row], days_by_org: dict[str, set[date]], orgs: list[str]) -> Row:
    agg = Row(key, name, name, institutions=len(members), region_code=key)
    for r in members:
        for k in ("volume", "rejected", "outpatient", "discharges", "lab_exam", "basic", "hypertension", "diabetes"):
            setattr(agg, k, getattr(agg, k) + getattr(r, k))
    agg.days = len(set().union(*(days_by_org.get(o, set()) for o in orgs))) if orgs else 0
    # rates: numerator and denominator over the same institutions — counted ones that reported
    # a figure. One that reported zero has no rate of its own, so its uploads stay out of the
    # region's numerator too (else 24 uploads against a reported 0 push a region past 100%).
    for measure in ("outpatient", "discharges"):
        reported = [r for r in members if r.counted and getattr(r, f"{measure}_reported") is not None]
        rep = [r for r in reported if getattr(r, f"{measure}_reported") > 0] or reported
        if rep:
            setattr(agg, f"{measure}_reported", sum(getattr(r, f"{measure}_reported") for r in rep))
            setattr(agg, f"{measure}_num", sum(getattr(r, measure) for r in rep))
    return agg

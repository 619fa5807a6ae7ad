"""The upload statistics report (数据上传情况统计), laid out as the Jiangsu bulletin's tables
(seed 003; reports/data/upload_tables.yaml): by city, by district/county, by hospital.

Every figure comes from counters — ``ingest_daily`` (receipt day), ``event_daily`` (event
day), ``measure_daily`` — and the reported figures; ``records`` is never read. The rate's
denominator is what the institution reported to the statistics system: not reported
(``None``) stays different from reported zero, and only active, network-connected
institutions that reported count in a region's rate.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine, func, select

from phip.datafiles import load_yaml
from phip.orgs.codes import regions
from phip.store.models import EventDaily, IngestDaily, Institution

from .health_records import health_record_counts
from .onboarding import PROVINCIAL
from .period import Period
from .tables import MeasureDaily, ReportedFigure

Level = Literal["city", "county", "provincial", "institution"]
LEVELS: tuple[str, ...] = ("city", "county", "provincial", "institution")
LEVEL_ALIASES = {"region": "city"}  # the name of the city level before the county table existed
OUTPATIENT = ("outpatient_visit",)
EXAMS = ("exam_report",)  # one record per report; lab reports are counted by the lab_reports measure
LAB_ITEMS = ("lab_report",)  # one record per result item

#: key -> (Chinese header, group header), in the seed's wording
COLUMN_LABELS: dict[str, tuple[str, str | None]] = {
    "volume": ("数据上传量", None),
    "days": ("数据上传天数", None),
    "outpatient": ("上传人次", "门急诊信息"),
    "outpatient_rate": ("上传率", "门急诊信息"),
    "discharges": ("上传人次", "出院信息"),
    "discharges_rate": ("上传率", "出院信息"),
    "lab_exam": ("检验检查上传量", None),
    "basic": ("基本信息", "健康档案上传量"),
    "hypertension": ("高血压", "健康档案上传量"),
    "diabetes": ("糖尿病", "健康档案上传量"),
    # not in the seed's tables: shown after them on the page, exported only when asked for
    "rejected": ("拒收", "附：平台统计"),
    "lab_items": ("检验结果项目数", "附：平台统计"),
}
EXTRAS: tuple[str, ...] = ("rejected", "lab_items")
#: every column as (key, header, group)
COLUMNS: list[tuple[str, str, str | None]] = [(k, label, group) for k, (label, group) in COLUMN_LABELS.items()]
SORT_KEYS = {"name", *COLUMN_LABELS}
TABLES_FILE = Path(__file__).parent / "data" / "upload_tables.yaml"


class LevelError(ValueError):
    pass


@dataclass(frozen=True)
class Layout:
    level: str
    title: str
    unit: str  # heading of the first column
    columns: tuple[tuple[str, str, str | None], ...]


@cache
def layouts(path: Path = TABLES_FILE) -> dict[str, Layout]:
    out = {}
    for level, spec in load_yaml(path).items():
        unknown = set(spec["columns"]) - set(COLUMN_LABELS)
        if unknown:
            raise ValueError(f"upload table {level}: unknown columns {sorted(unknown)}")
        out[level] = Layout(level, spec["title"], spec["unit"],
                            tuple((k, *COLUMN_LABELS[k]) for k in spec["columns"]))
    return out


def level_of(text: str) -> str:
    """The level a name stands for; LevelError names the ones there are."""
    level = LEVEL_ALIASES.get(text, text)
    if level not in LEVELS:
        raise LevelError(text)
    return level


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
    lab_items: int = 0
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
    extras: bool = False  # the columns after the seed's (拒收, 检验结果项目数)

    @property
    def layout(self) -> Layout:
        return layouts()[self.level]

    @property
    def columns(self) -> list[tuple[str, str, str | None]]:
        extra = [(k, *COLUMN_LABELS[k]) for k in EXTRAS] if self.extras else []
        return [*self.layout.columns, *extra]


def _sum_by_org(conn, table, column, datasets_or_measures, key_col, period: Period) -> dict[str, int]:  # noqa: ANN001
    stmt = (select(table.org_code, func.sum(column)).where(table.day >= period.start, table.day <= period.end,
                                                           key_col.in_(datasets_or_measures)).group_by(table.org_code))
    return {org: int(n or 0) for org, n in conn.execute(stmt)}


def _add(*counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def _reported(conn, period: Period) -> tuple[dict[str, tuple[int | None, int | None]], bool]:  # noqa: ANN001
    """Each institution's reported figures over the period. A figure whose period reaches
    outside the report's counts by the share of its days inside (a monthly figure for a
    part-month report); returns the figures and whether any was prorated."""
    figures = conn.execute(
        select(ReportedFigure.org_code, ReportedFigure.period_start, ReportedFigure.period_end,
               ReportedFigure.outpatient_visits, ReportedFigure.discharges)
        .where(ReportedFigure.period_start <= period.end, ReportedFigure.period_end >= period.start)
    ).all()
    sums: dict[str, list[float | None]] = {}
    prorated = False
    for org, start, end, outpatient, discharges in figures:
        inside = (min(end, period.end) - max(start, period.start)).days + 1
        share = inside / ((end - start).days + 1)
        prorated |= share < 1
        acc = sums.setdefault(org, [None, None])
        for i, value in enumerate((outpatient, discharges)):
            if value is not None:
                acc[i] = (acc[i] or 0) + value * share
    return {org: tuple(None if v is None else round(v) for v in acc) for org, acc in sums.items()}, prorated  # type: ignore[misc]


def upload_report(engine: Engine, period: Period, level: str = "institution", *, region_code: str | None = None,
                  sort: str | None = None, descending: bool = True, kinds: tuple[str, ...] = ("hospital",),
                  extras: bool = False, county_names: dict[str, str] | None = None,
                  within: Collection[str] | None = None) -> Report:
    """``level``: city (alias region), county, provincial (the 中省直 hospitals, one row each) or
    institution; ``extras`` adds the platform's own
    columns after the seed's; ``county_names`` names district/county codes (default: the GB/T 2260
    table of the register, orgs/data/regions.csv); ``within`` keeps a regional reader's
    institutions only (:func:`phip.orgs.service.region_orgs`)."""
    level = level_of(level)
    with engine.connect() as conn:
        inst_q = select(Institution.code, Institution.name, Institution.region_code, Institution.region_name,
                        Institution.county_code, Institution.status, Institution.network_status).where(Institution.kind.in_(kinds))
        if region_code:
            inst_q = inst_q.where(Institution.region_code == region_code)
        if level == "provincial":
            inst_q = inst_q.where(Institution.affiliation.in_(PROVINCIAL))
        if within is not None:
            inst_q = inst_q.where(Institution.code.in_(within))
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
        for name, datasets in (("outpatient", OUTPATIENT), ("exams", EXAMS), ("lab_items", LAB_ITEMS)):
            events[name] = _sum_by_org(conn, EventDaily, EventDaily.records, datasets, EventDaily.dataset, period)
        for name in ("discharges", "lab_reports"):
            events[name] = _sum_by_org(conn, MeasureDaily, MeasureDaily.records, (name,), MeasureDaily.measure, period)
        events["lab_exam"] = _add(events.pop("exams"), events.pop("lab_reports"))
        reported, prorated = _reported(conn, period)
    # 健康档案上传量: resident health records of the public-health extension data sets (073–076)
    for org, counts in health_record_counts(engine, period).items():
        for name in ("basic", "hypertension", "diabetes"):
            events.setdefault(name, {})[org] = getattr(counts, name)
    days_by_org: dict[str, set[date]] = {}
    for org, day in day_rows:
        days_by_org.setdefault(org, set()).add(day)
    rows: list[Row] = []
    counties: dict[str, str] = {}
    for code, name, rcode, rname, county, status, network in insts:
        row = Row(code, name, rname, volume=volume.get(code, 0), rejected=rejected.get(code, 0),
                  days=len(days_by_org.get(code, ())),
                  counted=status == "active" and network == "connected", region_code=rcode)
        for k in ("outpatient", "lab_exam", "lab_items", "basic", "discharges", "hypertension", "diabetes"):
            setattr(row, k, events.get(k, {}).get(code, 0))
        row.outpatient_reported, row.discharges_reported = reported.get(code, (None, None))
        rows.append(row)
        counties[code] = county or ""
    total = _aggregate("全省合计" if not region_code and within is None else "合计", "", rows, days_by_org, [r.key for r in rows])
    if level in ("city", "county"):
        groups: dict[str, list[Row]] = {}
        for r in rows:
            groups.setdefault(r.region_code if level == "city" else counties[r.key] or r.region_code, []).append(r)
        names = county_names if county_names is not None else {c: r.name for c, r in regions().items()}

        def county_name(code: str, members: list[Row]) -> str:
            if code == members[0].region_code:  # institutions registered without a district/county
                return f"{members[0].region_name}（未登记区县）"
            return names.get(code, code)

        rows = [_aggregate(members[0].region_name if level == "city" else county_name(code, members), code,
                           members, days_by_org, [m.key for m in members])
                for code, members in groups.items()]
    if sort:
        if sort not in SORT_KEYS:
            raise ValueError(f"unknown sort column {sort}")
        present = [r for r in rows if r.value(sort) is not None]
        absent = [r for r in rows if r.value(sort) is None]
        rows = sorted(present, key=lambda r: r.value(sort), reverse=descending) + absent  # type: ignore[arg-type,return-value]
    notes = ["上传率 = 上传人次 ÷ 向卫生统计直报系统报告的人次；“未报告”与“报告为0”不计算上传率。",
             "检验检查上传量 = 检验报告数 + 检查报告数（按报告计，不按检验结果项目计）。",
             "地区上传率只计入在用且网络已联通、并已报告的机构；关停或未联通机构不拉低地区上传率。"]
    if extras:
        notes.append("拒收 = 统计期内新被拒收的记录数：同一条源记录以相同内容重复上传或重复采集只计一次，内容变化后再被拒收另计。")
    if prorated:
        notes.append("统计期不是报告期的整数倍：报告人次按统计期覆盖报告期的天数折算。")
    return Report(period, level, rows, total, region_code, notes, extras)  # type: ignore[arg-type]


def _aggregate(name: str, key: str, members: list[Row], days_by_org: dict[str, set[date]], orgs: list[str]) -> Row:
    agg = Row(key, name, name, institutions=len(members), region_code=key)
    for r in members:
        for k in ("volume", "rejected", "outpatient", "discharges", "lab_exam", "lab_items", "basic", "hypertension", "diabetes"):
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

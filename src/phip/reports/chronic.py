"""The chronic-disease management report (慢病管理报告) per primary-care institution and per
region: hypertension and type-2 diabetes patients under management, follow-ups done in the
period and the standardised-management rate (规范管理率).

Definitions (docs/quality-and-reports.md states them beside the seed's wording):

- management year (管理年度): the calendar year of the period's last day, counted from 1 January
  to that day (年内累计), so a monthly report shows the year to date;
- patients under management (管理人数): distinct 健康档案编号 of the institution with a management
  enrolment (``chronic_disease_enrolment``) enrolled on or before the period's end and not ended
  before the year began, or with at least one follow-up in the management year;
- follow-ups done (随访人次): follow-up records dated in the period (from ``event_daily``);
- 规范管理率 = patients under management with at least 4 follow-ups in the management year
  ÷ patients under management. Follow-ups of earlier years never count.

The per-patient counts come from one grouped query on ``records`` per disease, through the
``(dataset, event_time)`` index: it reads the follow-ups of the year and the enrolments, and
returns one row per institution (the grouping by patient stays in the database).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from sqlalchemy import Engine, case, func, literal, or_, select, union_all

from phip.orgs.primary_care import PRIMARY_CARE_CATEGORIES
from phip.standard.workbook import save_workbook
from phip.store.models import EventDaily, Institution, Record

from .period import Period

Level = Literal["region", "institution"]
STANDARD_FOLLOWUPS = 4  # 每年至少4次面对面随访
ENROLMENT = "chronic_disease_enrolment"
#: disease -> (Chinese name, enrolment disease_code, follow-up data set)
DISEASES: dict[str, tuple[str, str, str]] = {
    "hypertension": ("高血压", "1", "hypertension_followup"),
    "diabetes": ("2型糖尿病", "2", "diabetes_followup"),
}
#: (key, header) of the figures per disease, the export's column order under each disease.
FIGURES = (("managed", "管理人数"), ("followups", "随访人次"), ("standard", "规范管理人数"), ("rate", "规范管理率"))


@dataclass
class DiseaseFigures:
    managed: int = 0
    followups: int = 0
    standard: int = 0

    @property
    def rate(self) -> float | None:
        return self.standard / self.managed if self.managed else None

    def add(self, other: DiseaseFigures) -> None:
        self.managed += other.managed
        self.followups += other.followups
        self.standard += other.standard


@dataclass
class ChronicRow:
    key: str
    name: str
    region_code: str
    region_name: str
    institutions: int = 1
    figures: dict[str, DiseaseFigures] = field(default_factory=lambda: {d: DiseaseFigures() for d in DISEASES})


@dataclass
class ChronicReport:
    period: Period
    year_start: date
    level: Level
    rows: list[ChronicRow]
    total: ChronicRow
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        scope = "各地区" if self.level == "region" else "各基层医疗卫生机构"
        return f"{scope}高血压、2型糖尿病患者健康管理情况（{self.period.label}）"


def _per_patient_counts(engine: Engine, disease: str, year_start: date, end: date) -> dict[str, tuple[int, int]]:
    """Institution -> (patients under management, of them with ≥ 4 follow-ups in the year)."""
    _, code, followup_ds = DISEASES[disease]
    begin, stop = datetime.combine(year_start, time()), datetime.combine(end + timedelta(days=1), time())
    patient = Record.payload["health_record_no"].as_string()
    followups = (select(Record.org_code.label("org"), patient.label("patient"), literal(1).label("n"))
                 .where(Record.dataset == followup_ds, Record.event_time >= begin, Record.event_time < stop))
    ended = Record.payload["end_date"].as_string()
    enrolled = (select(Record.org_code.label("org"), patient.label("patient"), literal(0).label("n"))
                .where(Record.dataset == ENROLMENT, Record.event_time < stop,
                       Record.payload["disease_code"].as_string() == code,
                       or_(ended.is_(None), ended == "", ended >= year_start.isoformat())))
    both = union_all(followups, enrolled).subquery()
    per_patient = (select(both.c.org, both.c.patient, func.sum(both.c.n).label("n"))
                   .where(both.c.patient.is_not(None)).group_by(both.c.org, both.c.patient).subquery())
    stmt = select(per_patient.c.org, func.count(),
                  func.sum(case((per_patient.c.n >= STANDARD_FOLLOWUPS, 1), else_=0))).group_by(per_patient.c.org)
    with engine.connect() as conn:
        return {org: (int(managed), int(standard or 0)) for org, managed, standard in conn.execute(stmt)}


def _followups_done(engine: Engine, disease: str, period: Period) -> dict[str, int]:
    stmt = (select(EventDaily.org_code, func.sum(EventDaily.records))
            .where(EventDaily.dataset == DISEASES[disease][2], EventDaily.day >= period.start, EventDaily.day <= period.end)
            .group_by(EventDaily.org_code))
    with engine.connect() as conn:
        return {org: int(n or 0) for org, n in conn.execute(stmt)}


def chronic_report(engine: Engine, period: Period, level: Level = "institution", *,
                   region_code: str | None = None) -> ChronicReport:
    """The report: every primary-care institution of the register, and any other institution
    that sent chronic-disease records, with its figures (zeros where nothing was sent)."""
    if level not in ("region", "institution"):
        raise ValueError(f"unknown level {level}")
    year_start = date(period.end.year, 1, 1)
    counts = {d: _per_patient_counts(engine, d, year_start, period.end) for d in DISEASES}
    done = {d: _followups_done(engine, d, period) for d in DISEASES}
    senders = set().union(*counts.values(), *done.values())
    with engine.connect() as conn:
        q = select(Institution.code, Institution.name, Institution.region_code, Institution.region_name).where(
            or_(Institution.category.in_(PRIMARY_CARE_CATEGORIES), Institution.code.in_(sorted(senders))))
        if region_code:
            q = q.where(Institution.region_code == region_code)
        insts = conn.execute(q.order_by(Institution.region_code, Institution.name)).all()
    rows: list[ChronicRow] = []
    for code, name, rcode, rname in insts:
        row = ChronicRow(code, name, rcode, rname)
        for d, fig in row.figures.items():
            fig.managed, fig.standard = counts[d].get(code, (0, 0))
            fig.followups = done[d].get(code, 0)
        rows.append(row)
    total = _aggregate("全省合计" if not region_code else "合计", "", "", rows)
    if level == "region":
        regions: dict[str, list[ChronicRow]] = {}
        for r in rows:
            regions.setdefault(r.region_code, []).append(r)
        rows = [_aggregate(members[0].region_name, code, members[0].region_name, members) for code, members in regions.items()]
    notes = [
        f"管理年度为统计期末所在年份（{year_start.isoformat()} 至 {period.end.isoformat()}，年内累计）。",
        "管理人数 = 统计期末前已纳入管理且年初前未终止管理的患者，加上管理年度内有随访记录的患者（按健康档案编号去重）。",
        f"规范管理率 = 管理年度内面对面随访不少于{STANDARD_FOLLOWUPS}次的患者数 ÷ 管理人数；以往年度的随访不计入。",
        "随访人次 = 随访日期在统计期内的随访记录数。",
    ]
    return ChronicReport(period, year_start, level, rows, total, notes)


def _aggregate(name: str, key: str, region_name: str, members: list[ChronicRow]) -> ChronicRow:
    agg = ChronicRow(key, name, key, region_name, institutions=len(members))
    for r in members:
        for d, fig in r.figures.items():
            agg.figures[d].add(fig)
    return agg


def cells(row: ChronicRow) -> list[object]:
    """One row's values in export order: per disease the FIGURES (rates as fractions or None)."""
    return [getattr(row.figures[d], key) for d in DISEASES for key, _ in FIGURES]


HEAD_FONT, HEAD_FILL = Font(bold=True), PatternFill("solid", fgColor="EEF3F8")


def _head(ws, row: int, col: int, value: str | None = None, *, to_row: int | None = None, to_col: int | None = None) -> None:  # noqa: ANN001
    """A header cell (value, style) merged down to ``to_row`` and across to ``to_col``."""
    cell = ws.cell(row, col, value)
    cell.font, cell.fill, cell.alignment = HEAD_FONT, HEAD_FILL, Alignment(horizontal="center", vertical="center")
    if (to_row or row) != row or (to_col or col) != col:
        ws.merge_cells(start_row=row, start_column=col, end_row=to_row or row, end_column=to_col or col)


def to_xlsx(report: ChronicReport, path: Path | None = None) -> bytes:
    """XLSX like the upload statistics: title row, two header rows (disease / figure), a total."""
    wb = Workbook()
    ws = wb.active
    ws.title = "慢病管理"
    width = 1 + len(DISEASES) * len(FIGURES)
    ws.cell(1, 1, report.title).font = Font(bold=True, size=14)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    _head(ws, 2, 1, "地区" if report.level == "region" else "机构名称", to_row=3)
    for i, (name, _, _) in enumerate(DISEASES.values()):
        first = 2 + i * len(FIGURES)
        _head(ws, 2, first, f"{name}患者健康管理", to_col=first + len(FIGURES) - 1)
        for j, (_, label) in enumerate(FIGURES):
            _head(ws, 3, first + j, label)
    body = [*report.rows, report.total]
    for excel_row, row in enumerate(body, start=4):
        values: list[object] = [row.name, *cells(row)]
        for col, value in enumerate(values, start=1):
            cell = ws.cell(excel_row, col, "—" if value is None else value)
            if isinstance(value, float):
                cell.number_format = "0.00%"
            if row is report.total:
                cell.font = HEAD_FONT
    ws.column_dimensions["A"].width = 32
    for c in range(2, width + 1):
        ws.column_dimensions[get_column_letter(c)].width = 13
    ws.freeze_panes = ws.cell(4, 2)
    for k, note in enumerate(report.notes, start=4 + len(body) + 1):
        ws.cell(k, 1, note)
    buf = io.BytesIO()
    save_workbook(wb, buf)
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()

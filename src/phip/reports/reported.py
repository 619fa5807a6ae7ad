"""Reported figures (统计直报数据): what institutions reported to the statistics system, the
denominator of the upload rate. Imported from CSV/XLSX by operators, all rows or none: a bad
row stops the import with its row number and nothing is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, insert

from phip.orgs.service import find_institution
from phip.standard.validate import platform_now

from .period import PeriodError, parse_period
from .sheet import SheetError, count_cell, read_sheet
from .tables import ReportedFigure

ALIASES = {
    "institution": ("医疗机构", "机构", "机构名称", "医疗机构名称", "机构代码", "医疗机构代码", "统一社会信用代码", "接入单位", "org_code"),
    "period": ("统计期", "统计期间", "期间", "月份", "统计月份", "period"),
    "outpatient_visits": ("门急诊人次", "门急诊诊疗人次", "门急诊", "outpatient"),
    "discharges": ("出院人次", "出院人数", "出院", "discharge"),
}


@dataclass
class ImportResult:
    rows: int
    institutions: int
    not_reported: int  # cells left blank: stored as "not reported"


def import_reported(engine: Engine, path: Path) -> ImportResult:
    rows = read_sheet(path, ALIASES, ("institution", "period", "outpatient_visits", "discharges"))
    if not rows:
        raise SheetError("EMPTY_FILE", "文件中没有数据行")
    now = platform_now()
    parsed: dict[tuple[str, object], dict] = {}
    blanks = 0
    for n, r in rows:
        ref = r.get("institution")
        if ref is None:
            raise SheetError("MISSING_VALUE", f"第{n}行缺少医疗机构")
        inst = find_institution(engine, str(ref))
        if inst is None:
            raise SheetError("UNKNOWN_ORG", f"第{n}行医疗机构“{ref}”未登记或名称不唯一")
        if r.get("period") is None:
            raise SheetError("MISSING_VALUE", f"第{n}行缺少统计期")
        try:
            period = parse_period(str(r["period"]))
        except PeriodError as exc:
            raise SheetError(exc.code, f"第{n}行：{exc}") from None
        out = count_cell(r.get("outpatient_visits"), n, "门急诊人次")
        dis = count_cell(r.get("discharges"), n, "出院人次")
        blanks += (out is None) + (dis is None)
        if (inst.code, period.start) in parsed:
            raise SheetError("DUPLICATE_ROW", f"第{n}行与前面的行重复（{inst.name}，{period}）")
        parsed[(inst.code, period.start)] = {
            "org_code": inst.code, "period_start": period.start, "period_end": period.end,
            "outpatient_visits": out, "discharges": dis, "source": path.name[:200], "imported_at": now}
    with engine.begin() as conn:
        for org, start in parsed:
            conn.execute(delete(ReportedFigure).where(ReportedFigure.org_code == org, ReportedFigure.period_start == start))
        conn.execute(insert(ReportedFigure), list(parsed.values()))
    return ImportResult(len(parsed), len({k[0] for k in parsed}), blanks)

"""The reply form (对接工作回执, attachment 3 of the docking notice), read exactly as the notice
lays it out: a title, the line 市（州）：…, section 一 (the region's health commission contacts:
序号 | 对接工作联系人 | 职务 | 办公电话 | 手机号) and section 二 (the institutions: 序号 |
医疗机构名称 | 对接工作负责人 | 职务 | 手机号 | 对接方式 | 对接开始时间), with the example row
``例`` and ``...`` rows left as the notice prints them. Any other layout is refused with the
header expected. One transaction: the region's contacts are replaced, the institutions'
reply fields set (kept in the register's history), or nothing is written.

:func:`blank_form` is the same form, empty, as XLSX."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from phip.orgs import codes
from phip.orgs.register import RegisterError, check, update_in
from phip.standard.checks import normalize_phone
from phip.standard.sheet import SheetError, norm, raw_rows
from phip.standard.validate import platform_now
from phip.standard.workbook import save_workbook
from phip.store.models import Institution

from .tables import RegionContact

TITLE = "对接工作回执"
REGION_LABEL = "市（州）："
SECTION_ONE = "一、地区卫生健康行政部门"
SECTION_TWO = "二、医疗机构"
HEADER_ONE = ("序号", "对接工作联系人", "职务", "办公电话", "手机号")
HEADER_TWO = ("序号", "医疗机构名称", "对接工作负责人", "职务", "手机号", "对接方式", "对接开始时间")
EXAMPLE = ("例", "长春市XX医院", "张XX", "主任", "155xxxxxxx", "数据采集", "2021.5.6")
_DATE = re.compile(r"^(\d{4})\s*[-./年]\s*(\d{1,2})\s*[-./月]\s*(\d{1,2})\s*日?$")


@dataclass
class ReplyResult:
    region_code: str
    region_name: str
    contacts: int
    institutions: int


def _find_header(rows: list[list[Any]], header: tuple[str, ...], start: int = 0) -> tuple[int, int] | None:
    """(row, column) where ``header`` starts; the cells are compared without spaces or line breaks."""
    want = [norm(h) for h in header]
    for r in range(start, len(rows)):
        cells = [norm(c) for c in rows[r]]
        for c in range(len(cells) - len(want) + 1):
            if cells[c : c + len(want)] == want:
                return r, c
    return None


def _region(rows: list[list[Any]], before: int) -> tuple[str, str]:
    """The 市（州） the form is for: after the colon in the same cell, or in the next cell."""
    for row in rows[:before]:
        for c, cell in enumerate(row):
            text = str(cell or "")
            if norm(text).startswith(norm("市（州）")) or norm(text).startswith("市(州)"):
                value = re.split(r"[：:]", text, maxsplit=1)[1].strip() if re.search(r"[：:]", text) else ""
                if not value:
                    value = next((str(v).strip() for v in row[c + 1 :] if v is not None and str(v).strip()), "")
                if not value:
                    raise SheetError("MISSING_REGION", "回执未填写“市（州）”", "region")
                region = codes.region_by_name(value)
                if region is None:
                    raise SheetError("BAD_REGION", f"回执的市（州）“{value}”不是吉林省的市（州）", "region")
                return region.code, region.name
    raise SheetError("MISSING_REGION", f"回执缺少“{REGION_LABEL}”一行", "region")


def _cells(row: list[Any], col: int, n: int) -> list[Any]:
    values = [row[col + i] if col + i < len(row) else None for i in range(n)]
    return [None if v is None or str(v).strip() == "" else (v.strip() if isinstance(v, str) else v) for v in values]


def _skip(cells: list[Any]) -> bool:
    """Blank rows, the example row and the form's ``...`` rows."""
    return all(c is None for c in cells[1:]) or str(cells[0] or "").strip() == "例"


def _phone(value: Any, where: str, label: str, mobile: bool) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    normalized = normalize_phone(text)
    if normalized is None or (mobile and not re.match(r"^(?:\+?86)?1\d{10}$", normalized)):
        kind = "手机号（11位）" if mobile else "电话号码"
        raise SheetError("BAD_PHONE", f"{where}【{label}】“{text}”不是有效的{kind}", label)
    return normalized


def _date(value: Any, where: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    m = _DATE.match(text[:10] if re.match(r"^\d{4}-\d{2}-\d{2} \d", text) else text)  # a date cell reads as ISO text
    try:
        if m:
            return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        pass
    raise SheetError("BAD_DATE", f"{where}【对接开始时间】“{text}”不是有效日期（如 2021.5.6）", "docking_start")


def _layout_error() -> SheetError:
    return SheetError("BAD_LAYOUT", "不是对接工作回执（附件3）的格式：应有“一、地区卫生健康行政部门”表头“"
                      + "、".join(HEADER_ONE) + "”和“二、医疗机构”表头“" + "、".join(HEADER_TWO) + "”；可下载空白回执模板填写")


def import_reply(engine: Engine, path: Path, by: str = "reply-form") -> ReplyResult:
    """Import a filled reply form (both sections); all of it or nothing."""
    rows = raw_rows(path)
    one = _find_header(rows, HEADER_ONE)
    two = _find_header(rows, HEADER_TWO, one[0] + 1 if one else 0)
    if one is None or two is None:
        raise _layout_error()
    region_code, region_name = _region(rows, one[0])
    contacts = []
    for n in range(one[0] + 1, two[0]):
        cells = _cells(rows[n], one[1], len(HEADER_ONE))
        if norm(cells[0]) == norm(SECTION_TWO) or _skip(cells):
            continue
        where = f"第{n + 1}行"
        if cells[1] is None:
            raise SheetError("MISSING_VALUE", f"{where}【对接工作联系人】未填写", "contact_name")
        contacts.append({"region_code": region_code, "name": str(cells[1])[:50], "title": (str(cells[2])[:50] if cells[2] else None),
                         "office_phone": _phone(cells[3], where, "办公电话", False),
                         "mobile": _phone(cells[4], where, "手机号", True)})
    replies = []
    with engine.connect() as conn:
        names = dict(conn.execute(select(Institution.name, Institution.code)).all())
        regions = dict(conn.execute(select(Institution.code, Institution.region_code)).all())
    for n in range(two[0] + 1, len(rows)):
        cells = _cells(rows[n], two[1], len(HEADER_TWO))
        if _skip(cells):
            continue
        where = f"第{n + 1}行"
        name = " ".join(str(cells[1] or "").split())
        code = names.get(name)
        if code is None:
            raise SheetError("UNKNOWN_ORG", f"{where}医疗机构“{name}”未登记（名称须与登记的机构名称一致）", "institution")
        if regions[code] != region_code:
            raise SheetError("WRONG_REGION", f"{where}医疗机构“{name}”不属于{region_name}", "institution")
        for i, label in ((2, "对接工作负责人"), (5, "对接方式"), (6, "对接开始时间")):
            if cells[i] is None:
                raise SheetError("MISSING_VALUE", f"{where}【{label}】未填写", label)
        try:
            method = check({"docking_method": cells[5]}, where=where)["docking_method"]
        except RegisterError as exc:
            raise SheetError(exc.code, exc.message, exc.field) from None
        replies.append((code, {"contact_name": str(cells[2])[:50], "contact_title": str(cells[3])[:50] if cells[3] else None,
                               "contact_phone": _phone(cells[4], where, "手机号", True), "docking_method": method,
                               "docking_start": _date(cells[6], where)}))
    now = platform_now()
    with engine.begin() as conn:
        conn.execute(delete(RegionContact).where(RegionContact.region_code == region_code))
        if contacts:
            conn.execute(insert(RegionContact), [{**c, "updated_at": now} for c in contacts])
        for code, values in replies:
            update_in(conn, code, values, by, now, "reply")
    return ReplyResult(region_code, region_name, len(contacts), len(replies))


def region_contacts(engine: Engine, region_code: str | None = None) -> list[RegionContact]:
    from sqlalchemy.orm import Session

    stmt = select(RegionContact).order_by(RegionContact.region_code, RegionContact.id)
    if region_code:
        stmt = stmt.where(RegionContact.region_code == region_code)
    with Session(engine) as session:
        rows = list(session.scalars(stmt))
        session.expunge_all()
    return rows


def blank_form(rows_one: int = 1, rows_two: int = 8) -> bytes:
    """The blank form as the notice prints it (title, 市（州）, both sections, example row)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = TITLE
    width = len(HEADER_TWO)
    ws.append([TITLE])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    ws.cell(1, 1).font = Font(bold=True, size=14)
    ws.cell(1, 1).alignment = Alignment(horizontal="center")
    ws.append([REGION_LABEL])
    ws.append([SECTION_ONE])
    ws.append(list(HEADER_ONE))
    for i in range(1, rows_one + 1):
        ws.append([i])
    ws.append(["..."])
    ws.append([SECTION_TWO])
    ws.append(list(HEADER_TWO))
    ws.append(list(EXAMPLE))
    for i in range(1, rows_two + 1):
        ws.append([i])
    ws.append(["..."])
    for row in ws.iter_rows():
        if norm(row[0].value) in (norm(SECTION_ONE), norm(SECTION_TWO), "序号"):
            for cell in row:
                cell.font = Font(bold=True)
    for col, w in zip("ABCDEFG", (6, 28, 16, 12, 16, 12, 14), strict=True):
        ws.column_dimensions[col].width = w
    buf = BytesIO()
    save_workbook(wb, buf)
    return buf.getvalue()

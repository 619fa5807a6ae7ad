"""A register as a spreadsheet (机构登记表, XLSX or CSV): import (add or change, all rows or
none) and export in the same columns, so an exported register can be edited and imported back."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from sqlalchemy import Engine, select

from phip.standard.sheet import SheetError, read_sheet
from phip.standard.validate import platform_now
from phip.standard.workbook import save_workbook
from phip.store.models import Institution

from .register import RegisterError, add_in, check, registered, shown, update_in

#: Column → the header people write (first) and the other words accepted for it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("机构代码", "统一社会信用代码", "代码"),
    "name": ("机构名称", "医疗机构名称", "名称"),
    "kind": ("类型",),
    "region_code": ("地区代码", "区划代码"),
    "county_code": ("县区代码",),
    "level": ("医院等级", "等级"),
    "category": ("机构类别", "类别"),
    "affiliation": ("隶属关系",),
    "ownership": ("经济类型", "所有制"),
    "docking_method": ("对接方式",),
    "status": ("状态",),
    "placeholder": ("示例值字段",),
}
STATUS_WORDS = {"在用": "active", "active": "active", "关停": "closed", "closed": "closed"}


@dataclass
class ImportResult:
    added: int
    updated: int
    unchanged: int


def import_register(engine: Engine, path: Path, by: str) -> ImportResult:
    """Add the rows whose code is new and change the given cells of the others; a blank cell
    leaves a registered value as it is. One transaction: a bad row imports nothing."""
    rows = read_sheet(path, COLUMNS, ("code", "name"))
    now = platform_now()
    added = updated = unchanged = 0
    seen: dict[str, int] = {}
    with engine.begin() as conn:
        known = {c: (k, r) for c, k, r in conn.execute(select(Institution.code, Institution.kind, Institution.region_code))}
        for n, row in rows:
            where = f"第{n}行"
            given = {k: v for k, v in row.items() if v is not None}
            code = str(given.get("code", "")).strip().upper()
            if code in seen:
                raise SheetError("DUPLICATE_ORG", f"{where}机构代码{code}与第{seen[code]}行重复", "code")
            seen[code] = n
            status = given.pop("status", None)
            if status is not None and str(status).strip() not in STATUS_WORDS:
                raise SheetError("BAD_STATUS", f"{where}状态“{status}”应为“在用”或“关停”", "status")
            current = known.get(code)
            kind = given.get("kind") or (current[0] if current else "hospital")
            try:
                values = check({**given, "kind": kind, "_region_code": given.get("region_code") or (current[1] if current else None)},
                               where=where)
                values.pop("_region_code", None)
                if status is not None:
                    values["status"] = STATUS_WORDS[str(status).strip()]
                if current is None:
                    add_in(conn, values, by, now, "import")
                    added += 1
                else:
                    values.pop("code", None)
                    changed = update_in(conn, code, values, by, now, "import").fields
                    updated += bool(changed)
                    unchanged += not changed
            except RegisterError as exc:
                message = exc.message if exc.message.startswith(where) else where + exc.message
                raise SheetError(exc.code, message, exc.field) from None
    return ImportResult(added, updated, unchanged)


def export_register(engine: Engine, only: Collection[str] | None = None) -> bytes:
    """The register as XLSX in the import's columns (Chinese headers, labels for codes);
    ``only``: just these codes (what a page shows, or a regional reader's institutions)."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "机构登记表"
    ws.append([names[0] for names in COLUMNS.values()])
    for row in registered(engine, only):
        ws.append([shown(c, row[c]) or None for c in COLUMNS])
    buf = BytesIO()
    save_workbook(wb, buf)
    return buf.getvalue()

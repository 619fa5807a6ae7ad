"""Operators' spreadsheets (registers, reported figures, reply forms) as header → value rows.

The header row may sit below a title (the reply form has one), so the first row that holds
one of the expected column names is the header. Column names are matched through aliases,
because each region fills the form in its own words.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from phip.errors import PhipError
from phip.standard.cells import BAD_ENCODING, cell_value, decode_text
from phip.standard.workbook import open_workbook, sheet_rows

#: an operator's sheet (a register of 30,000 institutions is ~10 MB of sheet XML) is read whole
MAX_SHEET_UNPACKED = 64 * 2**20


class SheetError(PhipError, ValueError):
    """A row or the whole sheet is wrong; the message names the row and column (Chinese)."""


def raw_rows(path: Path) -> list[list[Any]]:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        wb = open_workbook(path, SheetError, MAX_SHEET_UNPACKED)
        try:
            return [[cell_value(c) for c in row] for row in sheet_rows(wb.worksheets[0], SheetError)]
        finally:
            wb.close()
    if suffix in (".csv", ".txt"):
        text = decode_text(path.read_bytes())
        if text is None:
            raise SheetError("BAD_ENCODING", BAD_ENCODING)
        return [list(r) for r in csv.reader(io.StringIO(text))]
    raise SheetError("BAD_FORMAT", f"不支持的文件类型“{path.suffix}”，请使用CSV或XLSX")


def read_sheet(path: Path, aliases: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> list[tuple[int, dict[str, Any]]]:
    """Rows as (spreadsheet row number, {canonical column: value}); blank cells become None."""
    lookup = {norm(a): key for key, names in aliases.items() for a in (key, *names)}
    rows = raw_rows(path)
    for h, header in enumerate(rows):
        keys = [lookup.get(norm(c)) for c in header]
        if any(keys):
            break
    else:
        raise SheetError("NO_HEADER", f"找不到表头：应包含{'、'.join(aliases[k][0] for k in required)}等列")
    missing = [k for k in required if k not in keys]
    if missing:
        raise SheetError("MISSING_COLUMN", f"缺少列：{'、'.join(aliases[k][0] for k in missing)}")
    out = []
    for n, row in enumerate(rows[h + 1 :], start=h + 2):
        values = {k: (None if v is None or str(v).strip() == "" else (v.strip() if isinstance(v, str) else v))
                  for k, v in zip(keys, row, strict=False) if k}
        if any(v is not None for v in values.values()):
            out.append((n, values))
    return out


def norm(text: Any) -> str:
    return "".join(str(text or "").split()).lower()

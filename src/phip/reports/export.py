"""Exports of the upload statistics report: XLSX (openpyxl) laid out like the Jiangsu tables —
a title row, a two-row header with the 门急诊信息 / 出院信息 / 健康档案上传量 groups — and CSV.

Rates are numbers with a percent format in XLSX (so they sort and sum in a spreadsheet) and
"未报告" / "报告为0" as text where there is no denominator. Nothing personal is exported.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from .uploads import Report, Row

FIRST_DATA_ROW = 4


def title(report: Report) -> str:
    return f"{report.layout.title}({report.period.label})"


def cells(report: Report, row: Row) -> list[object]:
    """The exported values of one row, in the report's column order (rates as fractions or text)."""
    out: list[object] = []
    for key, _, _ in report.columns:
        if key.endswith("_rate"):
            measure = key[: -len("_rate")]
            rate = row.value(key)
            out.append(rate if rate is not None else row.rate_text(measure))
        else:
            out.append(row.value(key))
    return out


def to_xlsx(report: Report, path: Path | None = None) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "数据上传统计"
    columns = report.columns
    width = len(columns) + 1
    ws.cell(1, 1, title(report)).font = Font(bold=True, size=14)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    head = Font(bold=True)
    fill = PatternFill("solid", fgColor="EEF3F8")
    ws.cell(2, 1, report.layout.unit)
    ws.merge_cells(start_row=2, start_column=1, end_row=3, end_column=1)
    col = 2
    while col <= width:
        key, label, group = columns[col - 2]
        if group is None:
            ws.cell(2, col, label)
            ws.merge_cells(start_row=2, start_column=col, end_row=3, end_column=col)
            col += 1
            continue
        span = sum(1 for c in columns if c[2] == group)
        ws.cell(2, col, group)
        ws.merge_cells(start_row=2, start_column=col, end_row=2, end_column=col + span - 1)
        for i in range(span):
            ws.cell(3, col + i, columns[col - 2 + i][1])
        col += span
    for r in (2, 3):
        for c in range(1, width + 1):
            cell = ws.cell(r, c)
            cell.font, cell.fill, cell.alignment = head, fill, Alignment(horizontal="center", vertical="center")
    rows = [*report.rows, report.total]
    for i, row in enumerate(rows):
        excel_row = FIRST_DATA_ROW + i
        ws.cell(excel_row, 1, row.name)
        for j, value in enumerate(cells(report, row)):
            cell = ws.cell(excel_row, 2 + j, value)
            if columns[j][0].endswith("_rate") and isinstance(value, float):
                cell.number_format = "0.00%"
            elif isinstance(value, int):
                cell.number_format = "#,##0"
        if row is report.total:
            for c in range(1, width + 1):
                ws.cell(excel_row, c).font = head
    ws.column_dimensions["A"].width = 28
    for c in range(2, width + 1):
        ws.column_dimensions[get_column_letter(c)].width = 14
    ws.freeze_panes = ws.cell(FIRST_DATA_ROW, 2)
    notes_row = FIRST_DATA_ROW + len(rows) + 1
    for k, note in enumerate(report.notes):
        ws.cell(notes_row + k, 1, note)
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def header_labels(report: Report) -> list[str]:
    return [report.layout.unit, *[f"{g}-{label}" if g else label for _, label, g in report.columns]]


def to_csv(report: Report, path: Path | None = None) -> str:
    """UTF-8 with BOM so that Excel on Chinese Windows opens it correctly."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header_labels(report))
    for row in [*report.rows, report.total]:
        values = cells(report, row)
        w.writerow([row.name, *[f"{v * 100:.2f}%" if isinstance(v, float) else v for v in values]])
    text = "\ufeff" + buf.getvalue()
    if path is not None:
        path.write_text(text, encoding="utf-8", newline="")
    return text

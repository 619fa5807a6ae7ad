"""Exports of the upload statistics report: XLSX (openpyxl) laid out like the Jiangsu tables —
a title row, a two-row header with the 门急诊信息 / 出院信息 / 健康档案上传量 groups — and CSV.

Rates are numbers with a percent format in XLSX (so they sort and sum in a spreadsheet) and
"未报告" / "报告为0" as text where there is no denominator. The mutual-recognition report
(``recognition_xlsx``) is one plain table. Nothing personal is exported.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from phip.standard.workbook import csv_text, save_workbook

from .recognition import COLUMNS as RECOGNITION_COLUMNS
from .recognition import Report as RecognitionReport
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
    return _finish(wb, FIRST_DATA_ROW, len(rows), width, 14, report.notes, path)


def _finish(wb: Workbook, first_row: int, n_rows: int, width: int, col_width: int, notes: list[str],
            path: Path | None) -> bytes:
    """Bold total (the last row), column widths, frozen header, notes below; the file's bytes."""
    ws = wb.active
    for c in range(1, width + 1):
        ws.cell(first_row + n_rows - 1, c).font = Font(bold=True)
    ws.column_dimensions["A"].width = 28
    for c in range(2, width + 1):
        ws.column_dimensions[get_column_letter(c)].width = col_width
    ws.freeze_panes = ws.cell(first_row, 2)
    for k, note in enumerate(notes):
        ws.cell(first_row + n_rows + 1 + k, 1, note)
    buf = io.BytesIO()
    save_workbook(wb, buf)
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
        w.writerow([csv_text(row.name), *[f"{v * 100:.2f}%" if isinstance(v, float) else csv_text(v) for v in values]])
    text = "\ufeff" + buf.getvalue()
    if path is not None:
        path.write_text(text, encoding="utf-8", newline="")
    return text


def recognition_xlsx(report: RecognitionReport, path: Path | None = None) -> bytes:
    """The mutual-recognition report (检查检验结果互认情况) as one sheet: title, header, rows, total, notes."""
    wb = Workbook()
    ws = wb.active
    ws.title = "检查检验结果互认"
    width = len(RECOGNITION_COLUMNS) + 1
    ws.cell(1, 1, report.title).font = Font(bold=True, size=14)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    head, fill = Font(bold=True), PatternFill("solid", fgColor="EEF3F8")
    for c, label in enumerate(["地区" if report.level == "region" else "医疗机构", *(h for _, h in RECOGNITION_COLUMNS)], 1):
        cell = ws.cell(2, c, label)
        cell.font, cell.fill, cell.alignment = head, fill, Alignment(horizontal="center", vertical="center")
    rows = [*report.rows, report.total]
    for i, row in enumerate(rows, 3):
        ws.cell(i, 1, row.name)
        for j, (key, _) in enumerate(RECOGNITION_COLUMNS, 2):
            value = row.value(key)
            cell = ws.cell(i, j, "—" if value is None else value)
            cell.number_format = {"rate": "0.00%", "saved_cost": "#,##0.00", "repeat_cost": "#,##0.00"}.get(key, "#,##0")
    return _finish(wb, 3, len(rows), width, 16, report.notes, path)

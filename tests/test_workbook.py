"""Workbooks and CSV that PHIP writes hold what hospitals sent as text, never as formulas."""

from __future__ import annotations

import csv
import io
from io import BytesIO

from openpyxl import Workbook, load_workbook

from phip.standard.workbook import csv_text, save_workbook


def test_a_string_that_starts_like_a_formula_is_saved_as_its_text():
    wb = Workbook()
    wb.active.append(["=HYPERLINK(\"http://x\",\"y\")", "=1+1", "-3", 5, -2.5, "普通文本"])
    buf = BytesIO()
    save_workbook(wb, buf)
    back = load_workbook(BytesIO(buf.getvalue()))
    row = next(back.active.iter_rows())
    assert [c.value for c in row] == ["=HYPERLINK(\"http://x\",\"y\")", "=1+1", "-3", 5, -2.5, "普通文本"]
    assert [c.data_type for c in row] == ["s", "s", "s", "n", "n", "s"]


def test_csv_cells_that_start_like_a_formula_get_an_apostrophe_numbers_do_not():
    buf = io.StringIO()
    csv.writer(buf).writerow([csv_text(v) for v in ["=cmd|' /C calc'!A0", "+1", "@SUM(A1)", "-x", "\tx", -2, 3.5, "长春市中心医院"]])
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == [
        "'=cmd|' /C calc'!A0", "'+1", "'@SUM(A1)", "'-x", "'\tx", "-2", "3.5", "长春市中心医院"]

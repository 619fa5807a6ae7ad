"""Sheets of the reports area: the generic reader lives in :mod:`phip.standard.sheet` (the
register imports sheets too); counts are read here."""

from __future__ import annotations

from typing import Any

from phip.standard.sheet import SheetError, norm, raw_rows, read_sheet

__all__ = ["SheetError", "count_cell", "norm", "raw_rows", "read_sheet"]


def count_cell(value: Any, row: int, label: str) -> int | None:
    """A count: blank is None (not reported), 0 is zero; anything else must be a whole number ≥ 0."""
    if value is None:
        return None
    text = str(value).replace(",", "").strip()
    if text in ("-", "—", "未报告", "未报"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise SheetError("BAD_COUNT", f"第{row}行【{label}】“{value}”不是人次数") from None
    if number < 0 or not number.is_integer():
        raise SheetError("BAD_COUNT", f"第{row}行【{label}】“{value}”应为不小于0的整数")
    return int(number)

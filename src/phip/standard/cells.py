"""How values arrive in the files hospitals upload: text in their encodings, spreadsheet
cells as Excel types them. File import (:mod:`phip.ingest.readers`) and the reported-figures
sheets (:mod:`phip.standard.sheet`) read them the same way."""

from __future__ import annotations

from typing import Any

from phip.standard.validate import EXACT_DIGITS

#: What Chinese hospital systems write text in: UTF-8 (a BOM from Windows tools), else the
#: GBK family (GB18030 reads GBK and GB2312 too).
ENCODINGS = ("utf-8-sig", "gb18030")
BAD_ENCODING = "文件编码无法识别，请使用UTF-8或GBK编码"


def decode_text(data: bytes) -> str | None:
    """``data`` in the first of :data:`ENCODINGS` that reads it, or None."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def cell_value(value: Any) -> Any:
    """Excel gives datetimes and floats; dates go to ISO text, whole floats to int, except
    those beyond Excel's 15 exact digits (an ID number typed as a number): they stay floats,
    so validation can say the digits are lost (NUMBER_PRECISION_LOST) instead of storing
    …283520 for …283534."""
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < EXACT_DIGITS:
        return int(value)
    return value

"""Excel workbooks in and out.

In: opening one someone else made (a hospital's data file, an operator's register or reported
figures) so that a broken or hostile one gets a clear refusal, not a traceback.

openpyxl reads lazily in read-only mode: a workbook opens, then fails rows later, where its
sheet XML is cut short, names a shared string that is not there, or declares entities
(expat refuses a "billion laughs" sheet with a ``ParseError`` mid-iteration). Every such
failure, at opening or while reading, becomes the caller's error with the code ``BAD_XLSX``
and the row reached. A workbook is a zip: its declared uncompressed size is checked before
anything is inflated, so a few megabytes that unpack to gigabytes are refused up front.

Out: every workbook PHIP writes goes through :func:`save_workbook`. openpyxl stores a string
that starts with "=" as a formula, and PHIP's exports carry what hospitals sent (a record key
in the supervision report's examples): "=HYPERLINK(…)" as a record number would run in the
operator's Excel. PHIP writes no formulas, so every formula cell is turned back into its text.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

#: (code, message) -> the caller's exception (FileFormatError, SheetError)
Fail = Callable[[str, str], Exception]


def open_workbook(path: Path, fail: Fail, max_unpacked: int) -> Any:
    """A read-only workbook of ``path``, at most ``max_unpacked`` bytes once inflated."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        # the library's English reason (File is not a zip file) helps nobody reading this
        raise fail("BAD_XLSX", "无法读取Excel文件：不是有效的xlsx文件（xlsx是zip压缩包；.xls等旧格式请另存为.xlsx或CSV）") from None
    if unpacked > max_unpacked:
        raise fail("XLSX_TOO_LARGE", f"Excel文件解压后为 {unpacked // 2**20} MB，超过 {max_unpacked // 2**20} MB 上限；"
                   "请拆分文件或改用CSV") from None
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several unrelated types for a bad file
        raise fail("BAD_XLSX", f"无法读取Excel文件：文件内容已损坏或不是Excel生成的工作簿（{type(exc).__name__}）") from None


def sheet_rows(sheet: Any, fail: Fail) -> Iterator[tuple[Any, ...]]:
    """The sheet's rows as values; a failure while reading them names the row it came after."""
    row = 0
    # the sheet's declared size is not trusted: one stray cell at XFD1048576 made openpyxl pad
    # a million empty rows to 16,384 columns each (a 6.8 KB file, a hung import); without it
    # each row is as long as its own cells and missing rows are empty
    if hasattr(sheet, "reset_dimensions"):
        sheet.reset_dimensions()
    rows = sheet.iter_rows(values_only=True)
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - expat, zip, KeyError on a missing shared string …
            raise fail("BAD_XLSX", f"Excel工作表“{sheet.title}”读到第{row + 1}行时无法继续读取：文件内容已损坏"
                       f"（{type(exc).__name__}）") from None
        row += 1
        yield values


def save_workbook(wb: Any, target: str | Path | IO[bytes]) -> None:
    """Save ``wb`` with every cell that openpyxl took for a formula kept as the text it is."""
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.data_type == "f":
                    cell.data_type = "s"
    wb.save(target)


#: what a spreadsheet takes for the start of a formula in a CSV cell (OWASP: CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """A CSV cell that Excel shows as the text it is: a string starting like a formula gets a
    leading apostrophe; numbers and other strings are left alone."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value

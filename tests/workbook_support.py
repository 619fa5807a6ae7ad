"""Workbooks that open and then break, for every reader of uploaded Excel files
(phip.standard.workbook: the data import, the register, reported figures)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from openpyxl import Workbook

_LAUGHS = ('<!DOCTYPE s [<!ENTITY l "lollollollollollollollollollol">'
           + "".join(f'<!ENTITY l{i} "{("&l%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)) + "]>")


def _rewritten(source: Path, target: Path, sheet_xml: Callable[[str], str]) -> None:
    """``source`` with its first sheet's XML passed through ``sheet_xml``."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for item in z.infolist():
            data = z.read(item.filename)
            out.writestr(item, sheet_xml(data.decode()).encode() if item.filename == "xl/worksheets/sheet1.xml" else data)


def hostile_workbooks(tmp_path: Path, header: list, rows: list[list]) -> dict[str, Path]:
    """A good workbook of ``header`` and ``rows`` (at least two), and three made from it that
    open and then fail rows later: entities expanding a billion times (expat refuses), the
    sheet cut off mid-row, a shared string that is not there; one that unpacks to 65 MB; and
    one with a stray value in the sheet's last cell (corner), whose declared size is the whole
    sheet."""
    wb = Workbook()
    wb.active.append(header)
    for row in rows:
        wb.active.append(row)
    good = tmp_path / "good.xlsx"
    wb.save(good)
    out = {"good": good}

    def laughs(xml: str) -> str:
        start = xml.index("<worksheet")
        body = xml[start:]
        i = body.index("<t>", body.index('r="2"'))  # a cell of the first data row
        return _LAUGHS + body[:i + 3] + "&l9;" + body[i + 3:]

    for name, change in (("laughs", laughs),
                         ("truncated", lambda xml: xml[: xml.index('<row r="3"') + 20]),
                         ("no_string", lambda xml: xml.replace('t="inlineStr"><is><t>', 't="s"><v>99999</v><is><t>', 1))):
        _rewritten(good, tmp_path / f"{name}.xlsx", change)
        out[name] = tmp_path / f"{name}.xlsx"
    with zipfile.ZipFile(tmp_path / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
        with zipfile.ZipFile(good) as g:
            for item in g.infolist():
                z.writestr(item, g.read(item.filename))
        z.writestr("xl/media/padding.bin", bytes(65 * 2**20))  # 65 MB of zeros: ~65 KB packed
    out["bomb"] = tmp_path / "bomb.xlsx"
    wb.active.cell(row=1_048_576, column=16_384, value="x")  # the last cell of the sheet: 6.8 KB,
    wb.save(tmp_path / "corner.xlsx")  # a declared size of 1,048,576 x 16,384
    out["corner"] = tmp_path / "corner.xlsx"
    return out

"""Read upload files (JSON, NDJSON, CSV, XLSX) into records, lazily.

Files come from hospital engineers' exports: CSV is often GBK-encoded (Excel on a Chinese
Windows), spreadsheet headers are often the Chinese labels of the standard rather than the
field names and sit below a title row or two, and NDJSON files sometimes carry one broken line. Readers therefore yield
``(line_or_row_number, record)`` pairs where a record that cannot be parsed is a
:class:`Unreadable` marker; the pipeline turns it into a rejection for that one record
instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import orjson

from phip.errors import PhipError
from phip.input_messages import first_reason, json_problem, json_reason
from phip.standard.catalog import DataSet
from phip.standard.cells import BAD_ENCODING as _BAD_ENCODING
from phip.standard.cells import ENCODINGS, decode_text
from phip.standard.cells import cell_value as _cell
from phip.standard.workbook import open_workbook, sheet_rows

FORMATS = ("json", "ndjson", "csv", "xlsx")
#: a workbook's size once inflated: Excel's 1,048,576 rows of a wide data set fit; a zip
#: bomb of a few MB that unpacks past it is refused before it is read
MAX_XLSX_UNPACKED = 2 * 2**30


class FileFormatError(PhipError, ValueError):
    """The file as a whole cannot be read (wrong format, undecodable, empty header)."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that could not be parsed; carries the reason in Chinese."""

    reason: str
    text: str


def detect_format(path: Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise FileFormatError("BAD_FORMAT", f"不支持的文件格式“{explicit}”，可选：{', '.join(FORMATS)}")
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "ndjson"
    if suffix in FORMATS:
        return suffix
    raise FileFormatError("BAD_FORMAT", f"无法从扩展名“{path.suffix}”判断文件格式，请用 --format 指定（{', '.join(FORMATS)}）")


def _decode(data: bytes) -> str:
    text = decode_text(data)
    if text is None:
        raise FileFormatError("BAD_ENCODING", _BAD_ENCODING)
    return text


def header_map(dataset: DataSet, headers: list[str]) -> list[str]:
    """Map spreadsheet headers (field names or Chinese labels) to field names; unknown stay as is."""
    by_label = {f.label: f.name for f in dataset.fields}
    by_name = {f.name: f.name for f in dataset.fields}
    out = []
    for h in headers:
        h = (h or "").strip()
        out.append(by_name.get(h) or by_name.get(h.lower()) or by_label.get(h) or h)
    return out


#: How far down a sheet the header row is looked for (titles and notes above it are skipped).
HEADER_SEARCH_ROWS = 10
#: what a file stopped part-way says: its batches before the stop are stored, and importing
#: the mended file again resumes (what was stored reads as unchanged)
_RESUME = "此前各批已保存，修正后重新导入即可续传"


def find_header(dataset: DataSet, rows: Iterable[Any], empty: str) -> tuple[list[str], int, Iterator[Any]]:
    """The header row among the first :data:`HEADER_SEARCH_ROWS` rows: the one naming the most
    fields of the data set (by field name or Chinese label), the first of equals. Returns the
    mapped header, its 1-based row number, and the rows after it.

    Exports from hospital systems often start with a title row (门诊就诊记录导出 2026-11-21)
    or a note; taken as the header, every record was rejected for having more cells than
    the header. A sheet whose first rows name no field at all is refused as a whole
    (NO_HEADER) rather than rejected record by record."""
    it = iter(rows)
    head = list(islice(it, HEADER_SEARCH_ROWS))
    if not head:
        raise FileFormatError("EMPTY_FILE", empty)
    known = {f.name for f in dataset.fields} | {f.label for f in dataset.fields}

    def score(row: Any) -> int:
        cells = (str(cell).strip() for cell in row if cell is not None)
        return sum(1 for cell in cells if cell in known or cell.lower() in known)

    scores = [score(row) for row in head]
    best = max(range(len(head)), key=lambda i: (scores[i], -i))
    if scores[best] == 0:
        raise _no_header(dataset, f"前{len(head)}行中")
    labels = [str(h).strip() if h is not None else "" for h in head[best]]
    headers = header_map(dataset, labels)
    fields = {f.name for f in dataset.fields}
    first: dict[str, int] = {}
    for column, name in enumerate(headers):
        if name in fields and first.setdefault(name, column) != column:
            # two columns of one field (its name and its Chinese label, or a copied column):
            # which one holds the data cannot be told, and taking either would lose the other
            a = first[name]
            raise FileFormatError("DUPLICATE_COLUMN", f"第{best + 1}行表头的第{a + 1}列“{labels[a]}”与第{column + 1}列"
                                  f"“{labels[column]}”是同一字段 {name}，请删去其中一列", name)
    return headers, best + 1, chain(head[best + 1:], it)


def _no_header(dataset: DataSet, where: str) -> FileFormatError:
    example = next(f for f in dataset.fields if f.name in dataset.natural_key)
    return FileFormatError("NO_HEADER", f"{where}没有表头：表头应为数据集【{dataset.name}】的字段名或中文名称"
                                        f"（如 {example.name} 或 {example.label}）")


def read_records(path: Path, dataset: DataSet, fmt: str | None = None) -> Iterator[Any]:
    """Yield the records of a file one by one (Unreadable for a record that cannot be parsed)."""
    kind = detect_format(path, fmt)
    if kind == "xlsx":
        yield from _read_xlsx(path, dataset)
        return
    if kind == "ndjson":
        with path.open("rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield Unreadable(f"第{number}行不是有效的JSON（第{exc.colno}列：{json_reason(exc)}）",
                                     line[:200].decode("utf-8", "replace"))
        return
    if kind == "csv":
        yield from _read_csv(path, dataset)
        return
    if _streamable_json_array(path):
        yield from _read_json_array(path)
        return
    text = _decode(path.read_bytes())  # an object with a records array, or GBK text: read whole
    if kind == "json":
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FileFormatError("BAD_JSON", f"文件不是有效的JSON（{json_problem(exc)}）") from None
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            data = data["records"]
        if not isinstance(data, list):
            raise FileFormatError("BAD_JSON", "JSON文件应为记录数组，或包含 records 数组的对象")
        yield from data
        return


#: How much of a CSV decides its encoding; the rest is decoded as it streams.
_SNIFF_BYTES = 1 << 20
#: A cell may be a whole clinical note; validation reports one that is longer than its field
#: allows (TOO_LONG). The csv module's default limit (128 KiB) failed the whole file instead.
csv.field_size_limit(1 << 26)


def _read_csv(path: Path, dataset: DataSet) -> Iterator[Any]:
    """Stream a CSV row by row (a month of fee details is gigabytes: it is never held whole).
    The encoding is decided on the first megabyte: UTF-8 (with or without BOM), else GB18030.
    Lines are decoded one by one, so bytes further on that do not fit it stop the file at the
    very line they are on (the batches before it are stored, and running the import again
    after fixing the file resumes)."""
    head, encoding = _sniff(path)
    if encoding is None:
        raise FileFormatError("BAD_ENCODING", _BAD_ENCODING)

    def lines(f: Any) -> Iterator[str]:
        decode = codecs.getdecoder(encoding)
        for number, raw in enumerate(f, 1):
            try:
                yield decode(raw)[0]
            except UnicodeDecodeError:
                name = "UTF-8" if encoding.startswith("utf") else "GBK"
                raise FileFormatError("BAD_ENCODING", f"第{number}行不是{name}编码（文件可能混用了编码）；{_RESUME}") from None

    with path.open("rb") as f:
        # a file that ends its lines with CR alone (Excel's "CSV (Macintosh)"): split on CR.
        # strict: a quote left open took every line after it into one cell, silently (299 rows
        # of a 1,500-row file); it is now an error at the line the cell began on
        reader = csv.reader(lines(_cr_lines(f) if b"\r" in head and b"\n" not in head else f), strict=True)
        began = 1  # the line the row being read began on (a quote left open is said there)

        def tracked() -> Iterator[list[str]]:
            nonlocal began
            while True:
                began = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return
                yield row

        try:
            headers, header_row, rows = find_header(dataset, tracked(), "CSV文件为空")
            for number, row in enumerate(rows, header_row + 1):
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) > len(headers):
                    yield Unreadable(f"第{number}行有{len(row)}列，多于表头的{len(headers)}列", ",".join(row)[:200])
                    continue
                yield {h: v for h, v in zip(headers, row, strict=False) if v != ""}
        except csv.Error as exc:
            reason, line = first_reason(_CSV_REASONS, str(exc)), began if "end of data" in str(exc) else reader.line_num
            raise FileFormatError("BAD_CSV", f"文件第{line}行不是有效的CSV：{reason}；{_RESUME}") from None


#: the csv module's reasons in Chinese
_CSV_REASONS = (("unexpected end of data", "这里开始的引号直到文件末尾都没有闭合"),
                ("expected after '\"'", "引号括起的内容之后应为逗号（内容中的引号应写成两个：\"\"）"),
                ("new-line character seen in unquoted field", "未加引号的内容中有单独的回车符（CR），文件可能混用了换行方式"),
                ("field larger than field limit", "单元格过长"),
                ("line contains NUL", "含空字符（NUL）"))


def _cr_lines(f: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary file whose lines end with CR alone, each with its CR."""
    rest = b""
    while block := f.read(chunk):
        lines = (rest + block).split(b"\r")
        rest = lines.pop()
        for line in lines:
            yield line + b"\r"
    if rest:
        yield rest


def _streamable_json_array(path: Path) -> bool:
    """A UTF-8 file whose JSON is an array (the usual export): streamed record by record."""
    head, encoding = _sniff(path)
    return encoding == "utf-8-sig" and head.lstrip(codecs.BOM_UTF8).lstrip()[:1] == b"["


def _read_json_array(path: Path) -> Iterator[Any]:
    """The records of a JSON array, one by one (ijson, C backend): a month's export of several
    gigabytes is never held whole. Broken JSON further on stops the file there; the batches
    before it are stored, and importing the fixed file again resumes."""
    import ijson

    with path.open("rb") as f:
        if f.read(3) != codecs.BOM_UTF8:
            f.seek(0)
        count = 0
        try:
            for record in _array_items(ijson, f):
                count += 1
                yield record
        except ijson.JSONError as exc:
            raise FileFormatError("BAD_JSON", f"文件不是有效的JSON（第{count + 1}条记录处：{json_reason(exc)}）；{_RESUME}") from None
        except _TooDeep:
            raise FileFormatError("TOO_DEEP", f"第{count + 1}条记录嵌套超过{MAX_JSON_DEPTH}层，不是数据集的记录；{_RESUME}") from None


#: nesting a record of the standard never needs; deeper is refused while reading (ijson.items
#: keeps a prefix string per level, so 100,000 levels of a 200 KB file took 22 GB)
MAX_JSON_DEPTH = 64


class _TooDeep(Exception):
    pass


def _array_items(ijson: Any, f: Any) -> Iterator[Any]:
    """The items of the top-level array, built from ijson's basic events with the nesting
    counted, so a hostile depth stops the file instead of the machine."""
    depth, builder = 0, None
    for event, value in ijson.basic_parse(f, use_float=True):
        if event in ("start_map", "start_array"):
            depth += 1
            if depth == 1:
                continue  # the array itself
            if depth > MAX_JSON_DEPTH + 1:
                raise _TooDeep
            if depth == 2:
                builder = ijson.ObjectBuilder()
            builder.event(event, value)
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                continue  # the array closed; anything after it is the parser's to refuse
            builder.event(event, value)
            if depth == 1:
                yield builder.value
                builder = None
        elif depth == 1:
            yield value  # a scalar item: rejected by the pipeline as NOT_AN_OBJECT
        else:
            builder.event(event, value)


def _sniff(path: Path) -> tuple[bytes, str | None]:
    """A file's first :data:`_SNIFF_BYTES` and the first of :data:`ENCODINGS` they read in
    (a character cut at the end of them is allowed), or None."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    for encoding in ENCODINGS:
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < _SNIFF_BYTES)
            return head, encoding
        except UnicodeDecodeError:
            continue
    return head, None


def _read_xlsx(path: Path, dataset: DataSet) -> Iterator[Any]:
    wb = open_workbook(path, FileFormatError, MAX_XLSX_UNPACKED)
    try:
        headers, rows = _first_sheet_with_header(wb, dataset)
        for row in rows:
            # empty under the header's columns: a value in a column without a header is no field
            if row is None or all(c is None or str(c).strip() == "" for c in row[:len(headers)]):
                continue
            yield {h: _cell(v) for h, v in zip(headers, row, strict=False) if v is not None and h}
    finally:
        wb.close()


def _first_sheet_with_header(wb: Any, dataset: DataSet) -> tuple[list[str], Iterator[Any]]:
    """The first worksheet that has a header (templates often put 填报说明 on the first)."""
    problems: list[FileFormatError] = []
    for sheet in wb.worksheets:
        try:
            headers, _, rows = find_header(dataset, sheet_rows(sheet, FileFormatError), "Excel工作表为空")
            return headers, rows
        except FileFormatError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    names = "、".join(f"“{ws.title}”" for ws in wb.worksheets)
    if all(p.code == "EMPTY_FILE" for p in problems):
        raise FileFormatError("EMPTY_FILE", f"各工作表（{names}）都是空的")
    raise _no_header(dataset, f"各工作表（{names}）的前{HEADER_SEARCH_ROWS}行中都")

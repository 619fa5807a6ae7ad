"""Upload files as hospital systems export them: title rows above the header, Chinese labels,
GBK, a sheet that names no field. The readers alone, on real files."""

from __future__ import annotations

import csv
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from phip.ingest.readers import FileFormatError, Unreadable, read_records
from phip.standard.catalog import load_standard
from phip.synth.generator import Generator

from .workbook_support import hostile_workbooks

DATASET = load_standard().dataset("outpatient_visit")
LABELS = {f.name: f.label for f in DATASET.fields}
NOW = datetime(2026, 11, 22, 12, 0)


def visits(n=3):
    gen = Generator(seed=4)
    org = ("12220104412001376B", "长春中医药大学附院")
    (_, _, recs), = gen.day([org], date(2026, 11, 21), visits=n, admissions=0, datasets=["outpatient_visit"], now=NOW)
    return recs[:n]


def test_csv_header_below_a_title_and_a_blank_row(tmp_path):
    recs = visits()
    fields = sorted({k for r in recs for k in r})
    path = tmp_path / "export.csv"
    with open(path, "w", newline="", encoding="gb18030") as f:
        w = csv.writer(f)
        w.writerow(["门诊就诊记录导出", "", ""])
        w.writerow([])
        w.writerow([LABELS[c] for c in fields])
        for r in recs:
            w.writerow([r.get(c, "") for c in fields])
        w.writerow(["x"] * (len(fields) + 1))  # the 7th line: one cell too many
    out = list(read_records(path, DATASET))
    assert [o["visit_no"] for o in out[:3]] == [r["visit_no"] for r in recs]
    assert set(out[0]) == {k for k, v in recs[0].items() if v not in (None, "")}
    assert isinstance(out[3], Unreadable) and out[3].reason.startswith("第7行")  # numbered as the file is


def test_xlsx_header_below_a_merged_title(tmp_path):
    recs = visits()
    fields = sorted({k for r in recs for k in r})
    wb = Workbook()
    ws = wb.active
    ws.append(["长春中医药大学附院 门诊就诊记录（2026-11-21）"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(fields))
    ws.append(fields)
    for r in recs:
        ws.append([r.get(c) for c in fields])
    wb.save(tmp_path / "export.xlsx")
    out = list(read_records(tmp_path / "export.xlsx", DATASET))
    assert [o["visit_no"] for o in out] == [r["visit_no"] for r in recs]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_sheet_naming_no_field_is_refused_whole(tmp_path, kind):
    rows = [["编号", "姓名"], ["1", "张三"]]
    path = tmp_path / f"other.{kind}"
    if kind == "csv":
        path.write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    else:
        wb = Workbook()
        for r in rows:
            wb.active.append(r)
        wb.save(path)
    with pytest.raises(FileFormatError) as exc:
        list(read_records(path, DATASET))
    assert exc.value.code == "NO_HEADER" and "visit_no" in exc.value.message and "门(急)诊就诊流水号" in exc.value.message


def test_an_empty_csv_is_said_empty(tmp_path):
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(FileFormatError) as exc:
        list(read_records(tmp_path / "e.csv", DATASET))
    assert exc.value.code == "EMPTY_FILE"


def test_a_csv_streams_and_stops_at_the_line_whose_encoding_changes(tmp_path):
    """The encoding is read off the first megabyte; a GBK line far below it (two exports
    pasted together) stops the file at that line, after the rows before it were handed on."""
    from phip.ingest import readers

    recs = visits(2)
    fields = sorted({k for r in recs for k in r})
    path = tmp_path / "mixed.csv"
    lines = [",".join(fields)] + [",".join(str(r.get(c, "")) for c in fields) for r in recs]
    filler = ["," * (len(fields) - 1)] * 12  # blank rows (skipped), past the rows searched for the header
    body = ("\n".join(lines + filler) + "\n").encode("utf-8")
    gbk_line = ",".join(["MZ9", "张三"] + [""] * (len(fields) - 2)).encode("gb18030") + b"\n"
    path.write_bytes(body + gbk_line)
    readers_sniff = readers._SNIFF_BYTES
    try:
        readers._SNIFF_BYTES = len(body) - 10  # the GBK line lies beyond what decides the encoding
        got = []
        with pytest.raises(FileFormatError) as exc:
            for record in read_records(path, DATASET):
                got.append(record)
    finally:
        readers._SNIFF_BYTES = readers_sniff
    assert [g["visit_no"] for g in got] == [r["visit_no"] for r in recs]
    assert exc.value.code == "BAD_ENCODING" and "第16行" in exc.value.message


def test_a_cell_longer_than_the_csv_modules_default_limit_is_a_record_finding(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text('visit_no,chief_complaint\nMZ1,"' + "痛" * 200_000 + '"\nMZ2,头痛\n', encoding="utf-8")
    rows = list(read_records(path, DATASET))
    assert [r["visit_no"] for r in rows] == ["MZ1", "MZ2"] and len(rows[0]["chief_complaint"]) == 200_000


def test_the_data_may_be_on_a_later_sheet(tmp_path):
    """Templates often open with a sheet of instructions (填报说明); the data sheet is found."""
    recs = visits(2)
    fields = sorted({k for r in recs for k in r})
    wb = Workbook()
    wb.active.title = "填报说明"
    wb.active.append(["请按省平台数据采集标准填写，日期格式 YYYY-MM-DD"])
    data = wb.create_sheet("门诊就诊")
    data.append([LABELS[c] for c in fields])
    for r in recs:
        data.append([r.get(c) for c in fields])
    wb.save(tmp_path / "t.xlsx")
    assert [o["visit_no"] for o in read_records(tmp_path / "t.xlsx", DATASET)] == [r["visit_no"] for r in recs]
    del wb["门诊就诊"]
    wb.create_sheet("空白")
    wb.save(tmp_path / "none.xlsx")
    with pytest.raises(FileFormatError) as exc:
        list(read_records(tmp_path / "none.xlsx", DATASET))
    assert exc.value.code == "NO_HEADER" and "“填报说明”、“空白”" in exc.value.message


def test_a_json_array_streams_with_the_values_orjson_reads(tmp_path):
    """A JSON array is read record by record (a month's export is gigabytes) and gives the
    very values a whole-document parse gives: ints (18 digits too), floats, text, nesting."""
    import orjson

    records = [*visits(3), {"visit_no": "MZ9", "total_fee": 12.5, "age_years": 220102193406283534, "x": [1, {"a": None}],
                            "name": "张三\u3000", "flag": True}]
    path = tmp_path / "v.json"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(records))  # with a BOM, as Windows tools write it
    got = list(read_records(path, DATASET))
    assert got == orjson.loads(orjson.dumps(records))
    assert [type(v) for v in got[-1].values()] == [type(v) for v in records[-1].values()]


def test_a_json_array_broken_further_on_stops_at_that_record(tmp_path):
    import orjson

    recs = visits(3)
    path = tmp_path / "broken.json"
    path.write_bytes(orjson.dumps(recs)[:-1] + b', {"visit_no": "MZ9", "name": }]')
    got = []
    with pytest.raises(FileFormatError) as exc:
        for record in read_records(path, DATASET):
            got.append(record)
    assert [g["visit_no"] for g in got] == [r["visit_no"] for r in recs]
    assert exc.value.code == "BAD_JSON" and "第4条记录处" in exc.value.message


def test_a_hostile_json_array_is_refused_in_chinese_without_the_memory(tmp_path):
    """100,000 levels of brackets (200 KB) took ijson.items 22 GB and the OOM killer (a prefix
    string per level); the depth is now counted while reading, and the stream parser's English
    reasons are said in Chinese. Records before the bad one are read."""
    import resource

    import orjson

    recs = visits(2)
    head = orjson.dumps(recs)[:-1]
    deep = tmp_path / "deep.json"
    deep.write_bytes(head + b"," + b"[" * 100_000 + b"]" * 100_000 + b"]")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = []
    with pytest.raises(FileFormatError) as exc:
        for record in read_records(deep, DATASET):
            got.append(record)
    assert len(got) == 2 and exc.value.code == "TOO_DEEP" and "第3条记录嵌套超过64层" in exc.value.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: well under 200 MB
    nested = tmp_path / "nested.json"  # deep enough for real data, still read as it was
    nested.write_bytes(b'[{"visit_no": "MZ1", "x": ' + b"[" * 60 + b"1" + b"]" * 60 + b"}, 7]")
    assert [r if isinstance(r, int) else r["visit_no"] for r in read_records(nested, DATASET)] == ["MZ1", 7]
    for tail, said in ((b'{"total_fee": 1e309}]', "数值超出范围"), (b'{"total_fee": NaN}]', "NaN"),
                       (b'{"visit_no": "MZ9"', "内容不完整"), (b'{"a" 1}]', "缺少冒号")):
        path = tmp_path / "bad.json"
        path.write_bytes(head + b"," + tail)
        with pytest.raises(FileFormatError) as exc:
            list(read_records(path, DATASET))
        message = exc.value.message
        assert exc.value.code == "BAD_JSON" and said in message and "第3条记录处" in message, message
        assert "parse error" not in message and "lexical" not in message, message


# --- workbooks that break while being read (phip.standard.workbook) ----------------------------------


def test_a_stray_value_in_the_last_cell_does_not_stall_the_read(tmp_path):
    """A 6.8 KB workbook with one value at XFD1048576 hung phip ingest (openpyxl padded a
    million rows to 16,384 columns from the declared size); it is read in a moment now, with
    every record."""
    import time

    recs = visits(3)
    start = time.monotonic()
    got = list(read_records(_books(tmp_path, recs)["corner"], DATASET))
    assert time.monotonic() - start < 30
    assert [g["visit_no"] for g in got] == [r["visit_no"] for r in recs]


def _books(tmp_path, recs) -> dict:
    fields = sorted({k for r in recs for k in r})
    return hostile_workbooks(tmp_path, [LABELS[c] for c in fields], [[r.get(c) for c in fields] for r in recs])


@pytest.mark.parametrize("name", ["laughs", "truncated", "no_string"])
def test_a_workbook_that_fails_while_being_read_is_a_bad_xlsx_naming_the_row(tmp_path, name):
    recs = visits(3)
    books = _books(tmp_path, recs)
    assert [o["visit_no"] for o in read_records(books["good"], DATASET)] == [r["visit_no"] for r in recs]
    with pytest.raises(FileFormatError) as exc:
        list(read_records(books[name], DATASET))
    assert exc.value.code == "BAD_XLSX" and "读到第" in exc.value.message, exc.value.message


def test_a_workbook_that_unpacks_past_the_cap_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from phip.ingest import readers

    books = _books(tmp_path, visits(3))
    monkeypatch.setattr(readers, "MAX_XLSX_UNPACKED", 64 * 2**20)  # the data import's own cap is 2 GB
    with pytest.raises(FileFormatError) as exc:
        list(read_records(books["bomb"], DATASET))
    assert exc.value.code == "XLSX_TOO_LARGE" and "64 MB" in exc.value.message
    (tmp_path / "cut.xlsx").write_bytes(books["good"].read_bytes()[:-200])  # the zip's directory is gone
    with pytest.raises(FileFormatError) as cut:
        list(read_records(tmp_path / "cut.xlsx", DATASET))
    assert cut.value.code == "BAD_XLSX"


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_two_columns_of_one_field_refuse_the_file_naming_both(tmp_path, kind):
    """A field's name and its Chinese label both in the header (or a column copied): which
    column holds the data cannot be told, and taking either silently loses the other."""
    recs = visits(2)
    header = ["visit_no", "patient_id", LABELS["visit_no"]]
    rows = [[r["visit_no"], r["patient_id"], r["visit_no"] + "X"] for r in recs]
    path = tmp_path / f"t.{kind}"
    if kind == "csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["门诊就诊记录导出"], header, *rows])
    else:
        wb = Workbook()
        for row in [["门诊就诊记录导出"], header, *rows]:
            wb.active.append(row)
        wb.save(path)
    with pytest.raises(FileFormatError) as exc:
        list(read_records(path, DATASET))
    assert (exc.value.code, exc.value.field) == ("DUPLICATE_COLUMN", "visit_no")
    assert f"第2行表头的第1列“visit_no”与第3列“{LABELS['visit_no']}”是同一字段" in exc.value.message


def test_a_csv_with_carriage_returns_alone_is_read(tmp_path):
    """Excel's "CSV (Macintosh)" ends lines with CR alone; GBK, a quoted cell holding a CR."""
    recs = visits(3)
    text = "\r".join(["visit_no,patient_id,dept_name", *(f'{r["visit_no"]},{r["patient_id"]},"内科\r一病区"' for r in recs)])
    (tmp_path / "mac.csv").write_bytes(text.encode("gb18030") + b"\r")
    got = list(read_records(tmp_path / "mac.csv", DATASET))
    assert [(g["visit_no"], g["dept_name"]) for g in got] == [(r["visit_no"], "内科\r一病区") for r in recs]


def test_a_quote_left_open_stops_the_csv_at_its_line(tmp_path):
    """A cell whose quote never closes took every line after it (299 rows of a 1,500-row
    file) into one cell, with no word of it; a lone CR inside a line gave the csv module's
    English. Both stop the file at their line now, in Chinese, the rows before it read."""
    header = ",".join(LABELS[c] for c in ("visit_no", "patient_id", "name"))
    rows = [f"MZ{i},P{i},张{i}" for i in range(1, 41)]  # past the rows the header is looked for in
    for bad, line, said in (('"MZ6,P6,张6', 42, "引号直到文件末尾都没有闭合"), ("MZ6,P6\r,张6", 42, "单独的回车符"),
                            ('"MZ6"x,P6,张6', 42, "引号括起的内容之后应为逗号")):
        path = tmp_path / "f.csv"
        path.write_text("\n".join([header, *rows, bad, *rows]) + "\n", encoding="utf-8")
        got = []
        with pytest.raises(FileFormatError) as exc:
            for record in read_records(path, DATASET):
                got.append(record)
        assert len(got) == 40 and exc.value.code == "BAD_CSV", got
        assert f"文件第{line}行" in exc.value.message and said in exc.value.message and "此前各批已保存" in exc.value.message
        assert not any("a" <= ch <= "z" for ch in exc.value.message.replace("CSV", "").replace("CR", "")), exc.value.message


def test_an_ndjson_line_of_bytes_that_are_no_utf8_says_so():
    """orjson names bad bytes "not valid UTF-8: surrogates not allowed"; the line was said to
    hold an unpaired surrogate, which sent the reader looking for a \\u escape."""
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "bad.ndjson"
    path.write_bytes(b'{"visit_no": "MZ1"}\n{"visit_no": "\xc0\xff"}\n')
    got = list(read_records(path, DATASET))
    assert isinstance(got[1], Unreadable) and "不是UTF-8编码" in got[1].reason, got[1]

"""Row → record: the field map of a job compiled against the columns of a result.

Compiled once per result (column positions resolved, one small function per field) because
it runs for every row of tables with millions of rows.

Nothing is dropped here. A value the mapping cannot convert (a date text that does not fit
its format, a local code missing from the code map) goes on to validation as it is, so the
pipeline rejects the record with the precise finding (BAD_DATE, NOT_IN_DOMAIN …) that the
hospital fetches through the feedback API. A row that breaks the mapping itself becomes an
:class:`~phip.ingest.readers.Unreadable` with the reason, which the pipeline keeps as a
rejection too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import orjson

from phip.ingest.readers import Unreadable, decode_text
from phip.standard.catalog import DataSet

from .mapping import FieldMap, Job, Mapping, MappingError

Getter = Callable[[Sequence[Any]], Any]


def plain(value: Any) -> Any:
    """A driver value as the JSON-like value records carry (text dates, float decimals)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _text_of_bytes(bytes(value))
    return str(value)


def _text_of_bytes(raw: bytes) -> str:
    """A binary column's text: UTF-8, else GB18030 (what Chinese Windows systems wrote before
    UTF-8), as upload files are read, and only then UTF-8 with U+FFFD for what neither reads.
    Decoded as UTF-8 with replacement straight away, a GBK name (张三) became four U+FFFD."""
    text = decode_text(raw)
    return text if text is not None else raw.decode("utf-8", "replace")


class RowMapper:
    """Maps rows of one result (given its column names) to records of one data set."""

    def __init__(self, mapping: Mapping, job: Job, dataset: DataSet, columns: Sequence[str]):
        self.job = job
        upper = [c.upper() for c in columns]
        self.columns = list(columns)
        index = {c: i for i, c in enumerate(upper)}
        missing = sorted({c for fm in job.fields.values() if isinstance(fm, FieldMap) for c in fm.columns()
                          if c.upper() not in index})
        if job.cursor and job.cursor.column.split(".")[-1].upper() not in index:
            missing.append(job.cursor.column)
        if missing:
            raise MappingError(
                "MAPPING_COLUMN", f"数据集{job.key}的映射引用了查询结果中没有的列：{', '.join(missing)}"
                f"（查询返回的列：{', '.join(self.columns)}）",
            )
        self.cursor_index = index[job.cursor.column.split(".")[-1].upper()] if job.cursor else None
        # (field, column position, getter): a plain trimmed column has no getter and is read
        # inline, most fields of most mappings, without two calls per field; a date or time
        # the driver already decoded stays a date or time for a date or datetime field
        # (validation takes it as is) instead of going to text and being parsed back.
        self._fields: list[tuple[str, int, bool, Getter | None]] = []
        for name, fm in job.fields.items():
            assert isinstance(fm, FieldMap)
            spec = dataset.field(name)
            if fm.column is not None and fm.trim and not (fm.format or fm.codes is not None or fm.default is not None):
                self._fields.append((name, index[fm.column.upper()], spec.type in ("date", "datetime"), None))
            else:
                self._fields.append((name, -1, False, _compile(fm, mapping, index, spec.type)))

    def __call__(self, row: Sequence[Any], number: int) -> dict[str, Any] | Unreadable:
        record: dict[str, Any] = {}
        name = ""
        try:
            for name, i, timely, get in self._fields:
                if get is None:
                    value = row[i]
                    kind = type(value)
                    if kind is str:
                        value = value.strip()
                    elif not (kind is int or kind is float or value is None or (timely and isinstance(value, date))):
                        value = plain(value)
                else:
                    value = get(row)
                if value is not None and value != "":
                    record[name] = value
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the table
            text = orjson.dumps(dict(zip(self.columns, (plain(v) for v in row), strict=False)),
                                default=str).decode()[:2000]
            return Unreadable(f"源数据第{number}行映射字段{name}时出错：{type(exc).__name__}: {exc}", text)
        return record


def _compile(fm: FieldMap, mapping: Mapping, index: dict[str, int], field_type: str) -> Getter:
    if fm.const is not None:
        const = plain(fm.const)
        return lambda row: const
    trim = fm.trim
    default = plain(fm.default)
    if fm.concat is not None:
        positions = [index[c.upper()] for c in fm.concat]
        sep = fm.sep

        def base(row: Sequence[Any]) -> Any:
            parts = [_text(row[i], trim) for i in positions]
            parts = [p for p in parts if p]
            return sep.join(parts) if parts else None
    else:
        i = index[(fm.column or "").upper()]
        if trim:

            def base(row: Sequence[Any]) -> Any:
                value = row[i]
                return value.strip() if type(value) is str else plain(value)
        else:

            def base(row: Sequence[Any]) -> Any:
                return plain(row[i])

    getter = base
    if fm.format:
        getter = _with_format(getter, fm.format, field_type)
    if fm.codes is not None:
        getter = _with_codes(getter, mapping.code_map(fm.codes))
    if default is not None:
        inner = getter

        def getter(row: Sequence[Any]) -> Any:
            value = inner(row)
            return default if value is None or value == "" else value

    return getter


def _text(value: Any, trim: bool) -> str:
    if value is None:
        return ""
    text = value if type(value) is str else str(plain(value))
    return text.strip() if trim else text


def _with_format(inner: Getter, fmt: str, field_type: str) -> Getter:
    as_date = field_type == "date"

    def parse(row: Sequence[Any]) -> Any:
        value = inner(row)
        if type(value) is not str or not value:
            return value
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            return value  # validation reports it with the field's label and the raw value
        return parsed.date().isoformat() if as_date else parsed.isoformat(sep=" ")

    return parse


def _with_codes(inner: Getter, table: dict[str, str]) -> Getter:
    def lookup(row: Sequence[Any]) -> Any:
        value = inner(row)
        if value is None:
            return None
        key = value if type(value) is str else str(value)
        return table.get(key, value)  # unmapped: validation reports NOT_IN_DOMAIN

    return lookup

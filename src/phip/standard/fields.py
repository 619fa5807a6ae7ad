"""Field compilers: one small converter per field of the standard, raw JSON value to canonical
value, built once per data set; a value it cannot take raises :class:`BadValue`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from .catalog import FieldSpec, Standard, ValueDomain
from .checks import normalize_text
from .clock import naive_local, parse_date, parse_datetime
from .findings import BadValue

def as_text(value: Any) -> str:
    """A scalar as the text a code or identifier field holds."""
    if type(value) is str:
        if value.isascii():
            return value.strip()
        return normalize_text(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if abs(value) >= EXACT_DIGITS:  # 220102199003071234 typed into Excel reads back …1200
            raise BadValue("NUMBER_PRECISION_LOST")
        return str(int(value)) if value.is_integer() else repr(value)
    raise BadValue("BAD_VALUE_TYPE")


#: A float this large has more digits than a double (and Excel, which keeps 15) holds exactly:
#: as the text of a code or identifier it is already wrong.
EXACT_DIGITS = 1e15
#: How Excel writes a long number into CSV: 2.20102E+17.
SCIENTIFIC = re.compile(r"^[+-]?\d(?:\.\d+)?[Ee]\+?\d+$").match
SCIENTIFIC_HINT = "（疑似被Excel转为科学计数法，请将该列设为文本格式后重新导出）"

_TRUE = frozenset({"1", "true", "t", "y", "yes", "是"})
_FALSE = frozenset({"0", "false", "f", "n", "no", "否"})


def domain_lookup(domain: ValueDomain) -> dict[str, str]:
    """Accepted spellings → canonical code. Numeric codes also match by integer value
    ("1" and "01" are the same payment method), as regional feeds disagree on code width,
    and a code's own name (男 for 1) reads as the code."""
    lookup: dict[str, str] = {}
    for c in domain.codes:
        lookup[c.code] = c.code
        if c.code.isdigit():
            lookup.setdefault(str(int(c.code)), c.code)
            lookup.setdefault(c.code.zfill(2), c.code)
    # The code's name is a spelling too: hospital systems send 男/女 or 汉族 where the standard
    # wants 1/2 or 01. Only names no other code of the domain shares, and never over a code.
    names: dict[str, list[str]] = {}
    for c in domain.codes:
        names.setdefault(c.name, []).append(c.code)
    for name, codes in names.items():
        if len(codes) == 1:
            lookup.setdefault(name, codes[0])
    return lookup


Converter = Callable[[Any], Any]


def compile_field(spec: FieldSpec, standard: Standard) -> Converter:
    """Build the converter for one field: raw JSON value → canonical value, or raise BadValue."""
    length = spec.length
    pattern = re.compile(spec.pattern) if spec.pattern else None
    lo, hi = spec.min, spec.max

    def bounded(number: float) -> None:
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise BadValue("OUT_OF_RANGE", value=number, bounds=f"{_fmt(lo)}～{_fmt(hi)}")

    if spec.type in ("string", "text"):

        def convert(value: Any) -> Any:
            if type(value) is str:
                text = value.strip() if value.isascii() else normalize_text(value)
            elif isinstance(value, bool):  # a name or department sent as true was stored as "1"
                raise BadValue("BAD_VALUE_TYPE")
            else:
                text = as_text(value)
            if length and len(text) > length:
                raise BadValue("TOO_LONG", actual=len(text), length=length)
            if pattern and not pattern.match(text):
                raise BadValue("BAD_PATTERN", value=text)
            return text

        return convert

    if spec.type == "code":
        domain = standard.domain(spec.domain or "")
        if domain.kind == "code_system":
            code_re = re.compile(domain.pattern or ".*")

            def convert(value: Any) -> Any:
                text = as_text(value)
                if not code_re.match(text):
                    raise BadValue("BAD_CODE_FORMAT", value=text, domain=domain.name, example=domain.example)
                return text

            return convert
        lookup = domain_lookup(domain)

        def convert(value: Any) -> Any:
            text = as_text(value)
            code = lookup.get(text) or lookup.get(text.upper())
            if code is None:
                raise BadValue("NOT_IN_DOMAIN", value=text, domain=f"{domain.name} {domain.standard}")
            return code

        return convert

    if spec.type == "int":

        def convert(value: Any) -> Any:
            if isinstance(value, bool):
                raise BadValue("BAD_INT", value=value)
            if isinstance(value, int):
                number = value
            elif isinstance(value, float) and value.is_integer():
                number = int(value)
            else:
                text = as_text(value)
                try:
                    number = int(text)
                except ValueError:
                    raise BadValue("BAD_INT", value=text) from None
            bounded(number)
            return number

        return convert

    if spec.type == "decimal":
        scale = spec.scale if spec.scale is not None else 4
        ceiling = 10 ** ((length or 18) - scale)

        def convert(value: Any) -> Any:
            if isinstance(value, bool):
                raise BadValue("BAD_DECIMAL", value=value)
            if isinstance(value, int | float):
                number = value
            else:
                text = as_text(value).replace(",", "")
                try:
                    number = float(text)
                except ValueError:
                    raise BadValue("BAD_DECIMAL", value=text) from None
            if not math.isfinite(number) or abs(number) >= ceiling:
                raise BadValue("BAD_DECIMAL", value=value)
            bounded(number)
            number = round(number, scale)
            return int(number) if float(number).is_integer() and scale == 0 else number

        return convert

    if spec.type == "bool":

        def convert(value: Any) -> Any:
            if isinstance(value, bool):
                return value
            text = as_text(value).lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise BadValue("BAD_BOOL", value=text)

        return convert

    if spec.type == "date":

        def convert(value: Any) -> Any:
            if isinstance(value, date):  # a driver's or a spreadsheet's date (a datetime is a date too)
                return value.date() if isinstance(value, datetime) else value
            text = as_text(value)
            try:
                return parse_date(text)
            except ValueError:
                raise BadValue("BAD_DATE", value=text) from None

        return convert

    def convert(value: Any) -> Any:  # datetime
        if isinstance(value, datetime):  # a driver's or a spreadsheet's datetime, as parse_datetime leaves it
            return naive_local(value)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        text = as_text(value)
        try:
            return parse_datetime(text)
        except ValueError:
            raise BadValue("BAD_DATETIME", value=text) from None

    return convert


def _fmt(bound: float | None) -> str:
    if bound is None:
        return ""
    return str(int(bound)) if float(bound).is_integer() else str(bound)



# How :meth:`RecordValidator.validate` treats a field's usual value before calling its
# converter: a string that is plain text (no pattern), a code of a value domain, a code of a
# code system (ICD-10 …), a date, a date and time; a JSON true/false for a yes/no field, a
# JSON integer for an integer field. The shortcut gives exactly what the converter gives;
# anything else (other types, a value it cannot take as is) goes to the converter, which is
# also where findings come from.
TEXT, CODE, CODE_SYSTEM, DATE, DATETIME, BOOL, INT, OTHER = range(8)


def shortcut(spec: FieldSpec, standard: Standard) -> tuple[int, Any]:
    """(kind, argument) of a field's usual value, for :meth:`RecordValidator.validate`."""
    if spec.type in ("string", "text") and not spec.pattern:
        return TEXT, spec.length or 0
    if spec.type == "code":
        domain = standard.domain(spec.domain or "")
        if domain.kind != "code_system":
            return CODE, domain_lookup(domain)
        return CODE_SYSTEM, re.compile(domain.pattern or ".*").match
    if spec.type == "date":
        return DATE, None
    if spec.type == "datetime":
        return DATETIME, None
    if spec.type == "bool":
        return BOOL, None
    if spec.type == "int":
        return INT, (-math.inf if spec.min is None else spec.min, math.inf if spec.max is None else spec.max)
    return OTHER, None


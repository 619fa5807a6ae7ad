"""Validation and normalisation of one record against its data set.

A validator is compiled once per data set (a list of small per-field converters), because
the pipeline runs it for every record and must keep up with tens of thousands of records a
second. The result is the record in canonical form (ASCII digits, ISO dates, codes as the
code table spells them, 15-digit ID numbers upgraded) plus findings.

Keep what can be kept. A record is rejected (severity ``error``) only when it cannot be
stored meaningfully: it is no object or unreadable, a field of its natural key or its event
time is missing or cannot be read, a value carries U+0000 (PostgreSQL stores none), or it is
another institution's. Every other defect is a ``warning`` on a stored record:

* a value of the wrong type or outside its closed value domain (a date that is no date, a
  sex code ``M``) is left out of the stored record — the record holds only values it can
  vouch for — and its finding quotes it (identifiers masked);
* a value of the right type that breaks a rule of the standard (too long, a pattern, an ICD
  code's format, a range, two times out of order) is kept as sent and flagged;
* an ID number that fails GB 11643 is kept as sent, flagged with every check it fails, and
  never used as an identity key (the EMPI matches it as text only). A real HIS lost 17 of 18
  patients to its check digits when such records were rejected, and the EMPI lost the records
  it exists for (newborns, visitors, emergency patients without papers).

``MESSAGES`` gives each code's severity on an ordinary field; on a natural-key or event-time
field every finding that leaves the value out is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from .catalog import DataSet, FieldSpec, Standard, ValueDomain
from .checks import (
    id_birth_date,
    id_number_problems,
    id_sex,
    normalize_phone,
    normalize_text,
    parse_id_number,
    replace_nul,
    stated_sex_and_birth,
    uscc_problem,
)

Severity = Literal["error", "warning"]
PLATFORM_TZ = ZoneInfo("Asia/Shanghai")

#: Every finding code the validator emits, with its severity and Chinese message template.
#: Hospitals program against these codes, so they never change meaning once published.
MESSAGES: dict[str, tuple[Severity, str]] = {
    "UNREADABLE": ("error", "{reason}"),
    "NOT_AN_OBJECT": ("error", "记录必须是JSON对象（键值对），实际为{kind}"),
    "REQUIRED": ("warning", "【{label}】为必填项，不能为空"),
    "BAD_VALUE_TYPE": ("warning", "【{label}】应为单个值，不能是数组或对象"),
    "NUL_CHARACTER": ("error", "【{label}】含有空字符（U+0000），无法保存，请删除后重传"),
    "NUMBER_PRECISION_LOST": ("warning", "【{label}】以数值形式提供且超过15位有效数字（如Excel中的身份证号码），"
                                       "精度已丢失；请将该列设为文本格式后重新导出"),
    "TOO_LONG": ("warning", "【{label}】长度{actual}超过标准规定的最大长度{length}"),
    "NOT_IN_DOMAIN": ("warning", "【{label}】的值“{value}”不在值域【{domain}】内"),
    "BAD_CODE_FORMAT": ("warning", "【{label}】的值“{value}”不符合{domain}的编码格式（示例：{example}）"),
    "BAD_PATTERN": ("warning", "【{label}】的值“{value}”格式不正确"),
    "BAD_INT": ("warning", "【{label}】应为整数，实际为“{value}”"),
    "BAD_DECIMAL": ("warning", "【{label}】应为数值，实际为“{value}”"),
    "BAD_DATE": ("warning", "【{label}】不是有效日期（应为YYYY-MM-DD），实际为“{value}”"),
    "BAD_DATETIME": ("warning", "【{label}】不是有效日期时间（应为YYYY-MM-DD HH:MM:SS），实际为“{value}”"),
    "BAD_BOOL": ("warning", "【{label}】应为是/否（true/false、1/0），实际为“{value}”"),
    "OUT_OF_RANGE": ("warning", "【{label}】的值{value}超出允许范围（{bounds}）"),
    "DATE_IN_FUTURE": ("warning", "【{label}】“{value}”晚于当前时间"),
    "DATE_BEFORE_1900": ("warning", "【{label}】“{value}”早于1900年"),
    "TIME_ORDER": ("warning", "【{label}】“{value}”早于【{other_label}】“{other_value}”，时间先后顺序错误"),
    "ID_NO_FORMAT": ("warning", "【{label}】{detail}"),
    "ID_NO_REGION": ("warning", "【{label}】{detail}"),
    "ID_NO_BIRTH": ("warning", "【{label}】{detail}"),
    "ID_NO_CHECKSUM": ("warning", "【{label}】{detail}"),
    "ID_NO_UPGRADED": ("warning", "【{label}】为15位旧号码，已按GB 11643升级为18位"),
    "ID_NO_SEX_MISMATCH": ("warning", "【{label}】第17位所示性别与【性别代码】不一致"),
    "ID_NO_BIRTH_MISMATCH": ("warning", "【{label}】中的出生日期与【出生日期】不一致"),
    "USCC_FORMAT": ("warning", "【{label}】“{value}”不是18位统一社会信用代码（GB 32100）"),
    "USCC_CHECKSUM": ("warning", "【{label}】“{value}”统一社会信用代码校验位错误（GB 32100）"),
    "PHONE_FORMAT": ("warning", "【{label}】不是有效的手机号码或固定电话号码{hint}"),
    "UNKNOWN_FIELD": ("warning", "字段“{name}”不在数据集【{dataset}】的标准中，已忽略"),
    "UNKNOWN_FIELDS_MORE": ("warning", "另有{count}个字段不在数据集【{dataset}】的标准中，已忽略（如“{name}”）"),
    "EMPI_ID_CONFLICT": ("warning", "【{label}】与平台已登记同一证件号码的居民{what}不一致，已转人工核对，本记录暂未关联到该居民"),
    "ORG_MISMATCH": ("error", "【医疗机构代码】“{value}”与上传机构“{org}”不一致，机构只能上传本机构数据"),
}

#: Unknown fields named one by one per record; the rest are counted in one finding. A hospital
#: system that sends whole rows of its own (three hundred internal columns) would otherwise
#: store three hundred warnings for every record, 1.5 million for one batch of 5,000.
_UNKNOWN_LISTED = 10

#: Fields whose raw value must never appear in a message (messages reach logs and hospitals).
_SENSITIVE_CHECKS = {"id_no", "phone"}
#: Findings on a value of the right type that breaks a rule: the value is kept as sent (a
#: diagnosis text longer than the standard's length is still the diagnosis). Every other
#: finding on a value leaves it out of the stored record.
_KEPT_AS_SENT = frozenset({"TOO_LONG", "BAD_PATTERN", "BAD_CODE_FORMAT", "OUT_OF_RANGE"})
#: Beyond this a value kept as sent is no longer a field but a sender's bug: left out.
_KEEP_CAP = 32_768
_DROPPED = "；该值未保存，记录已接收"
_EPOCH_FLOOR = date(1900, 1, 1)
_FUTURE_TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "field": self.field, "message": self.message}


def finding(code: str, field_name: str | None, severity: Severity | None = None, **params: Any) -> Finding:
    default, template = MESSAGES[code]
    message = template.format(**params)
    if "\x00" in message:  # a value echoed from the input (see checks.replace_nul)
        message = replace_nul(message)
    return Finding(severity or default, code, field_name, message)


@dataclass(slots=True)
class Outcome:
    record: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.record is not None


class _Bad(Exception):
    """Raised by a converter; carries the finding code and template parameters."""

    def __init__(self, code: str, **params: Any):
        self.code = code
        self.params = params


def platform_now() -> datetime:
    """Naive local time of the platform (Asia/Shanghai): records carry local wall-clock times."""
    return datetime.now(PLATFORM_TZ).replace(tzinfo=None)


# --- value converters ----------------------------------------------------------------------

_DATE_SEPARATORS = str.maketrans({"/": "-", ".": "-"})


def parse_datetime(value: str) -> datetime:
    """Parse the spellings hospital systems actually send into a naive local datetime.

    Accepted: ISO 8601 (``2026-11-22T08:30:00``, with or without offset), a space instead of
    ``T``, ``/`` or ``.`` as date separators, WS 363 DT15 (``20261122T083000``), compact
    ``20261122083000`` and a bare date (read as midnight).
    """
    if len(value) == 19 and value[10] in " T" and value[4] == "-":  # the canonical spelling: fast path
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    text = value.translate(_DATE_SEPARATORS) if ("/" in value or "." in value[:10]) else value
    if len(text) == 14 and text.isdigit():
        text = f"{text[:8]}T{text[8:]}"
    elif len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return naive_local(datetime.fromisoformat(text))


def naive_local(value: datetime) -> datetime:
    """A datetime as the platform stores it: platform local time, no zone, whole seconds."""
    if value.tzinfo is not None:
        value = value.astimezone(PLATFORM_TZ).replace(tzinfo=None)
    return value.replace(microsecond=0)


def parse_date(value: str) -> date:
    text = value.translate(_DATE_SEPARATORS) if ("/" in value or "." in value) else value
    if len(text) == 10:
        return date.fromisoformat(text)
    if len(text) == 8 and text.isdigit():
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return parse_datetime(value).date()


def _as_text(value: Any) -> str:
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
            raise _Bad("NUMBER_PRECISION_LOST")
        return str(int(value)) if value.is_integer() else repr(value)
    raise _Bad("BAD_VALUE_TYPE")


#: A float this large has more digits than a double (and Excel, which keeps 15) holds exactly:
#: as the text of a code or identifier it is already wrong.
EXACT_DIGITS = 1e15
#: How Excel writes a long number into CSV: 2.20102E+17.
_SCIENTIFIC = re.compile(r"^[+-]?\d(?:\.\d+)?[Ee]\+?\d+$").match
_SCIENTIFIC_HINT = "（疑似被Excel转为科学计数法，请将该列设为文本格式后重新导出）"

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


def _compile_field(spec: FieldSpec, standard: Standard) -> Converter:
    """Build the converter for one field: raw JSON value → canonical value, or raise _Bad."""
    length = spec.length
    pattern = re.compile(spec.pattern) if spec.pattern else None
    lo, hi = spec.min, spec.max

    def bounded(number: float) -> None:
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise _Bad("OUT_OF_RANGE", value=number, bounds=f"{_fmt(lo)}～{_fmt(hi)}")

    if spec.type in ("string", "text"):

        def convert(value: Any) -> Any:
            if type(value) is str:
                text = value.strip() if value.isascii() else normalize_text(value)
            else:
                text = _as_text(value)
            if length and len(text) > length:
                raise _Bad("TOO_LONG", actual=len(text), length=length)
            if pattern and not pattern.match(text):
                raise _Bad("BAD_PATTERN", value=text)
            return text

        return convert

    if spec.type == "code":
        domain = standard.domain(spec.domain or "")
        if domain.kind == "code_system":
            code_re = re.compile(domain.pattern or ".*")

            def convert(value: Any) -> Any:
                text = _as_text(value)
                if not code_re.match(text):
                    raise _Bad("BAD_CODE_FORMAT", value=text, domain=domain.name, example=domain.example)
                return text

            return convert
        lookup = domain_lookup(domain)

        def convert(value: Any) -> Any:
            text = _as_text(value)
            code = lookup.get(text) or lookup.get(text.upper())
            if code is None:
                raise _Bad("NOT_IN_DOMAIN", value=text, domain=f"{domain.name} {domain.standard}")
            return code

        return convert

    if spec.type == "int":

        def convert(value: Any) -> Any:
            if isinstance(value, bool):
                raise _Bad("BAD_INT", value=value)
            if isinstance(value, int):
                number = value
            elif isinstance(value, float) and value.is_integer():
                number = int(value)
            else:
                text = _as_text(value)
                try:
                    number = int(text)
                except ValueError:
                    raise _Bad("BAD_INT", value=text) from None
            bounded(number)
            return number

        return convert

    if spec.type == "decimal":
        scale = spec.scale if spec.scale is not None else 4
        ceiling = 10 ** ((length or 18) - scale)

        def convert(value: Any) -> Any:
            if isinstance(value, bool):
                raise _Bad("BAD_DECIMAL", value=value)
            if isinstance(value, int | float):
                number = value
            else:
                text = _as_text(value).replace(",", "")
                try:
                    number = float(text)
                except ValueError:
                    raise _Bad("BAD_DECIMAL", value=text) from None
            if not math.isfinite(number) or abs(number) >= ceiling:
                raise _Bad("BAD_DECIMAL", value=value)
            bounded(number)
            number = round(number, scale)
            return int(number) if float(number).is_integer() and scale == 0 else number

        return convert

    if spec.type == "bool":

        def convert(value: Any) -> Any:
            if isinstance(value, bool):
                return value
            text = _as_text(value).lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise _Bad("BAD_BOOL", value=text)

        return convert

    if spec.type == "date":

        def convert(value: Any) -> Any:
            if isinstance(value, date):  # a driver's or a spreadsheet's date (a datetime is a date too)
                return value.date() if isinstance(value, datetime) else value
            text = _as_text(value)
            try:
                return parse_date(text)
            except ValueError:
                raise _Bad("BAD_DATE", value=text) from None

        return convert

    def convert(value: Any) -> Any:  # datetime
        if isinstance(value, datetime):  # a driver's or a spreadsheet's datetime, as parse_datetime leaves it
            return naive_local(value)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        text = _as_text(value)
        try:
            return parse_datetime(text)
        except ValueError:
            raise _Bad("BAD_DATETIME", value=text) from None

    return convert


def _fmt(bound: float | None) -> str:
    if bound is None:
        return ""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


# --- the compiled validator -----------------------------------------------------------------


# How :meth:`RecordValidator.validate` treats a field's usual value before calling its
# converter: a string that is plain text (no pattern), a code of a value domain, a code of a
# code system (ICD-10 …), a date, a date and time; a JSON true/false for a yes/no field, a
# JSON integer for an integer field. The shortcut gives exactly what the converter gives;
# anything else (other types, a value it cannot take as is) goes to the converter, which is
# also where findings come from.
_TEXT, _CODE, _CODE_SYSTEM, _DATE, _DATETIME, _BOOL, _INT, _OTHER = range(8)


def _shortcut(spec: FieldSpec, standard: Standard) -> tuple[int, Any]:
    if spec.type in ("string", "text") and not spec.pattern:
        return _TEXT, spec.length or 0
    if spec.type == "code":
        domain = standard.domain(spec.domain or "")
        if domain.kind != "code_system":
            return _CODE, domain_lookup(domain)
        return _CODE_SYSTEM, re.compile(domain.pattern or ".*").match
    if spec.type == "date":
        return _DATE, None
    if spec.type == "datetime":
        return _DATETIME, None
    if spec.type == "bool":
        return _BOOL, None
    if spec.type == "int":
        return _INT, (-math.inf if spec.min is None else spec.min, math.inf if spec.max is None else spec.max)
    return _OTHER, None


class RecordValidator:
    """Validates and normalises records of one data set. Build once, call per record."""

    def __init__(self, dataset: DataSet, standard: Standard):
        self.dataset = dataset
        self._fields = [(f.name, f, _compile_field(f, standard)) for f in dataset.fields]
        self._by_name = {name: (*_shortcut(spec, standard), spec, convert) for name, spec, convert in self._fields}
        self._required = [f for f in dataset.fields if f.required]
        self._labels = {f.name: f.label for f in dataset.fields}
        self._order = list(dataset.time_order)
        self._id_fields = [f for f in dataset.fields if f.check == "id_no"]
        self._uscc_fields = [f.name for f in dataset.fields if f.check == "uscc"]
        self._phone_fields = [f.name for f in dataset.fields if f.check == "phone"]
        self._dates = [(f.name, f.type == "date") for f in dataset.fields if f.type in ("date", "datetime")]
        self._future_ok = frozenset(f.name for f in dataset.fields if f.allow_future)
        person = dataset.person
        self._id_type_field = person.get("id_type")
        self._sex_field = person.get("sex")
        self._birth_field = person.get("birth_date")
        #: Fields without which a record cannot be stored meaningfully: its key and its time.
        self._structural = frozenset((*dataset.natural_key, dataset.event_time))

    def validate(self, raw: Any, now: datetime | None = None) -> Outcome:
        if not isinstance(raw, dict):
            kind = type(raw).__name__
            return Outcome(None, [finding("NOT_AN_OBJECT", None, kind=kind)])
        findings: list[Finding] = []
        record: dict[str, Any] = {}
        errors = False
        unknown, first_more = 0, None
        by_name = self._by_name
        for name, value in raw.items():
            entry = by_name.get(name)
            if entry is None:
                unknown += 1
                if unknown <= _UNKNOWN_LISTED:
                    shown = replace_nul(str(name))[:64]  # a key may be anything a sender's bug makes it
                    findings.append(finding("UNKNOWN_FIELD", shown, name=shown, dataset=self.dataset.name))
                elif unknown == _UNKNOWN_LISTED + 1:
                    first_more = name
                continue
            kind, arg, spec, convert = entry
            if type(value) is str:  # the usual case, without a call per field (most of the cost)
                if not value:
                    continue
                if kind == _TEXT:
                    text = value.strip() if value.isascii() else normalize_text(value)
                    if (not arg or len(text) <= arg) and "\x00" not in text:
                        if text:
                            record[name] = text
                        continue
                elif kind == _CODE:
                    code = arg.get(value)
                    if code is not None:
                        record[name] = code
                        continue
                elif kind == _DATETIME:
                    if len(value) == 19 and value[10] in " T" and value[4] == "-":
                        try:
                            record[name] = datetime.fromisoformat(value)
                            continue
                        except ValueError:
                            pass
                elif kind == _CODE_SYSTEM:
                    if value.isascii():
                        text = value.strip()
                        if text and arg(text) and "\x00" not in text:
                            record[name] = text
                            continue
                elif kind == _DATE and len(value) == 10 and value[4] == "-":
                    try:
                        record[name] = date.fromisoformat(value)
                        continue
                    except ValueError:
                        pass
            elif value is None or value == "":
                continue
            elif kind == _BOOL:
                if type(value) is bool:
                    record[name] = value
                    continue
            elif kind == _INT and type(value) is int and arg[0] <= value <= arg[1]:
                record[name] = value
                continue
            if type(value) is str and "\x00" in value:  # the shortcuts above never take a U+0000
                findings.append(finding("NUL_CHARACTER", name, label=spec.label))
                errors = True
                continue
            try:
                value = convert(value)
            except _Bad as bad:
                errors |= self._bad_value(name, spec, value, bad, record, findings)
                continue
            if value != "":
                record[name] = value
        if unknown > _UNKNOWN_LISTED:
            shown = replace_nul(str(first_more))[:64]
            findings.append(finding("UNKNOWN_FIELDS_MORE", None, count=unknown - _UNKNOWN_LISTED, name=shown,
                                    dataset=self.dataset.name))
        for spec in self._required:
            if spec.name not in record and not any(f.field == spec.name for f in findings):
                structural = spec.name in self._structural
                findings.append(finding("REQUIRED", spec.name, "error" if structural else None, label=spec.label))
                errors |= structural
        errors |= self._check_dates(record, findings, now or platform_now())
        self._check_identifiers(record, findings)
        if errors:
            return Outcome(None, findings)
        return Outcome(record, findings)

    def _bad_value(self, name: str, spec: FieldSpec, value: Any, bad: _Bad, record: dict[str, Any],
                   findings: list[Finding]) -> bool:
        """Report a value its converter refused; keep it as sent where its type allows.
        True when the record cannot be stored (the value is part of its key or its time)."""
        params = dict(bad.params)
        if spec.check in _SENSITIVE_CHECKS and "value" in params:
            params["value"] = "***"
        params.setdefault("length", spec.length)
        if name in self._structural:
            findings.append(finding(bad.code, name, "error", label=spec.label, **params))
            return True
        found = finding(bad.code, name, label=spec.label, **params)
        if bad.code in _KEPT_AS_SENT:
            try:
                text = _as_text(value) if not isinstance(value, int | float) or bad.code != "OUT_OF_RANGE" else value
            except _Bad:
                text = None
            if text is not None and (not isinstance(text, str) or len(text) <= _KEEP_CAP):
                record[name] = text
                findings.append(found)
                return False
        findings.append(Finding(found.severity, found.code, name, found.message + _DROPPED))
        return False

    def _check_dates(self, record: dict[str, Any], findings: list[Finding], now: datetime) -> bool:
        bad = False
        labels = self._labels
        today = now.date()
        latest = now + _FUTURE_TOLERANCE
        for name, is_date in self._dates:
            value = record.get(name)
            if value is None:
                continue
            day = value if is_date else value.date()
            if day < _EPOCH_FLOOR:
                code = "DATE_BEFORE_1900"
            elif name not in self._future_ok and (day > today if is_date else value > latest):
                code = "DATE_IN_FUTURE"
            else:
                continue
            del record[name]
            if name in self._structural:
                findings.append(finding(code, name, "error", label=labels[name], value=value))
                bad = True
            else:
                found = finding(code, name, label=labels[name], value=value)
                findings.append(Finding(found.severity, code, name, found.message + _DROPPED))
        for earlier, later in self._order:
            a, b = record.get(earlier), record.get(later)
            if a is None or b is None:
                continue
            if type(a) is not type(b):
                a = a.date() if isinstance(a, datetime) else a
                b = b.date() if isinstance(b, datetime) else b
            if b < a:
                findings.append(  # both times are kept: which of them is wrong, only the hospital knows
                    finding("TIME_ORDER", later, label=labels[later], value=b, other_label=labels[earlier], other_value=a)
                )
        return bad

    def _check_identifiers(self, record: dict[str, Any], findings: list[Finding]) -> None:
        labels = self._labels
        for spec in self._id_fields:
            value = record.get(spec.name)
            if value is None:
                continue
            id_type = record.get(self._id_type_field) if self._id_type_field else None
            if id_type not in (None, "01", "02"):
                continue  # passports and other documents follow other rules
            born = record.get(self._birth_field) if self._birth_field and len(value) == 15 else None
            try:  # a 15-digit number takes its century from the record's birth date (20xx when it says so)
                id18, upgraded = parse_id_number(value, birth_date=born)
            except ValueError:
                self._invalid_id(spec, value.upper(), record, findings)
                continue
            record[spec.name] = id18
            if upgraded:
                findings.append(finding("ID_NO_UPGRADED", spec.name, label=spec.label))
            self._id_agrees(spec, id_sex(id18), id_birth_date(id18), record, findings)
        for name in self._uscc_fields:
            value = record.get(name)
            if value is not None and (problem := uscc_problem(value)):
                findings.append(finding(problem, name, label=labels[name], value=value))
        for name in self._phone_fields:
            value = record.get(name)
            if value is None:
                continue
            phone = normalize_phone(value)
            if phone is None:
                findings.append(finding("PHONE_FORMAT", name, label=labels[name], hint=_SCIENTIFIC_HINT if _SCIENTIFIC(value) else ""))
            else:
                record[name] = phone

    def _invalid_id(self, spec: FieldSpec, value: str, record: dict[str, Any], findings: list[Finding]) -> None:
        """An ID number failing GB 11643: kept as sent, every failed check named, and the
        record's sex and birth date still compared with what its digits say."""
        hint = _SCIENTIFIC_HINT if _SCIENTIFIC(value) else ""
        for problem in id_number_problems(value):
            findings.append(finding(problem.code, spec.name, label=spec.label, detail=problem.message + hint))
        record[spec.name] = value
        self._id_agrees(spec, *stated_sex_and_birth(value), record, findings)

    def _id_agrees(self, spec: FieldSpec, stated_sex: str | None, stated_birth: date | None,
                   record: dict[str, Any], findings: list[Finding]) -> None:
        sex = record.get(self._sex_field) if self._sex_field else None
        if stated_sex and sex in ("1", "2") and stated_sex != sex:
            findings.append(finding("ID_NO_SEX_MISMATCH", spec.name, label=spec.label))
        born = record.get(self._birth_field) if self._birth_field else None
        if born is not None and stated_birth is not None and stated_birth != born:
            findings.append(finding("ID_NO_BIRTH_MISMATCH", spec.name, label=spec.label))

    def natural_key_values(self, raw: Any) -> dict[str, Any] | None:
        """The natural-key fields of a raw record normalised as :meth:`validate` would store them,
        or None when one is missing or cannot be read. A rejected record is then known by the key
        its corrected version will be stored under (``ingest.keys.record_key``), whatever else is
        wrong with it."""
        if not isinstance(raw, dict):
            return None
        values: dict[str, Any] = {}
        for name in self.dataset.natural_key:
            value = raw.get(name)
            entry = self._by_name.get(name)
            if value is None or value == "" or entry is None or (type(value) is str and "\x00" in value):
                return None
            try:
                value = entry[3](value)
            except _Bad:
                return None
            if value is None or value == "":
                return None
            values[name] = value
        return values


_VALIDATORS: dict[tuple[int, str], RecordValidator] = {}


def validator_for(standard: Standard, dataset: DataSet) -> RecordValidator:
    key = (id(standard), dataset.code)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = RecordValidator(dataset, standard)
    return _VALIDATORS[key]

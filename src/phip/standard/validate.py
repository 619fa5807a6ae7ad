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
  never used as an identity key (the EMPI matches it as text only): rejecting such records
  would lose the patients the EMPI exists for (newborns, visitors, emergency patients).

``MESSAGES`` gives each code's severity on an ordinary field; on a natural-key or event-time
field every finding that leaves the value out is an error.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from .catalog import DataSet, FieldSpec, Standard
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
from .clock import PLATFORM_TZ, naive_local, parse_date, parse_datetime, platform_now
from .fields import (
    BOOL,
    CODE,
    CODE_SYSTEM,
    DATE,
    DATETIME,
    EXACT_DIGITS,
    INT,
    SCIENTIFIC,
    SCIENTIFIC_HINT,
    TEXT,
    as_text,
    compile_field,
    domain_lookup,
    shortcut,
)
from .findings import MESSAGES, BadValue, Finding, Outcome, Severity, finding

#: Names other modules import from here.
__all__ = ["EXACT_DIGITS", "MESSAGES", "PLATFORM_TZ", "Finding", "Outcome", "RecordValidator", "Severity",
           "domain_lookup", "finding", "naive_local", "parse_date", "parse_datetime", "platform_now", "validator_for"]

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


#: what a record that is no object was, in the words of JSON (not Python's type names)
_JSON_KINDS = {bool: "true/false", int: "数值", float: "数值", str: "文本", list: "数组", type(None): "null"}


class RecordValidator:
    """Validates and normalises records of one data set. Build once, call per record."""

    def __init__(self, dataset: DataSet, standard: Standard):
        self.dataset = dataset
        self._fields = [(f.name, f, compile_field(f, standard)) for f in dataset.fields]
        self._by_name = {name: (*shortcut(spec, standard), spec, convert) for name, spec, convert in self._fields}
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
            kind = _JSON_KINDS.get(type(raw), type(raw).__name__)
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
                if kind == TEXT:
                    text = value.strip() if value.isascii() else normalize_text(value)
                    if (not arg or len(text) <= arg) and "\x00" not in text:
                        if text:
                            record[name] = text
                        continue
                elif kind == CODE:
                    code = arg.get(value)
                    if code is not None:
                        record[name] = code
                        continue
                elif kind == DATETIME:
                    if len(value) == 19 and value[10] in " T" and value[4] == "-":
                        try:
                            record[name] = datetime.fromisoformat(value)
                            continue
                        except ValueError:
                            pass
                elif kind == CODE_SYSTEM:
                    if value.isascii():
                        text = value.strip()
                        if text and arg(text) and "\x00" not in text:
                            record[name] = text
                            continue
                elif kind == DATE and len(value) == 10 and value[4] == "-":
                    try:
                        record[name] = date.fromisoformat(value)
                        continue
                    except ValueError:
                        pass
            elif value is None or value == "":
                continue
            elif kind == BOOL:
                if type(value) is bool:
                    record[name] = value
                    continue
            elif kind == INT and type(value) is int and arg[0] <= value <= arg[1]:
                record[name] = value
                continue
            if type(value) is str and "\x00" in value:  # the shortcuts above never take a U+0000
                findings.append(finding("NUL_CHARACTER", name, label=spec.label))
                errors = True
                continue
            try:
                value = convert(value)
            except BadValue as bad:
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

    def _bad_value(self, name: str, spec: FieldSpec, value: Any, bad: BadValue, record: dict[str, Any],
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
                text = as_text(value) if not isinstance(value, int | float) or bad.code != "OUT_OF_RANGE" else value
            except BadValue:
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
                findings.append(finding("PHONE_FORMAT", name, label=labels[name], hint=SCIENTIFIC_HINT if SCIENTIFIC(value) else ""))
            else:
                record[name] = phone

    def _invalid_id(self, spec: FieldSpec, value: str, record: dict[str, Any], findings: list[Finding]) -> None:
        """An ID number failing GB 11643: kept as sent, every failed check named, and the
        record's sex and birth date still compared with what its digits say."""
        hint = SCIENTIFIC_HINT if SCIENTIFIC(value) else ""
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
            except BadValue:
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

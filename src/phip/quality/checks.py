"""The rule types (规则类型): one function each, set-based SQL where the database can do it,
a batched Python pass where a check digit or phone grammar is needed.

Every check reads the stored records of one institution and data set whose event time lies in
the run's window (``Scope``) and yields :class:`Hit` s; the run turns hits into findings.
Field names in SQL come from the standard (validated ``^[a-z][a-z0-9_]*$``), values are
always bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, text

from phip.recognition.repeats import find_repeats
from phip.standard.checks import IdNumberError, id_birth_date, id_sex, normalize_phone, parse_id_number
from phip.store.models import Institution

from .rules import RuleInstance

_BATCH = 2000


@dataclass(frozen=True)
class Scope:
    org_code: str
    dataset: str
    start: datetime  # event time window [start, end)
    end: datetime
    as_of: datetime  # "now" of the run: companions and references are due relative to it
    # the institution's connection (the later of its docking start date and its first upload's
    # day): timeliness is judged only for events from then on; older events are history
    connected: datetime | None = None
    # only these records of the window (a batch as it is stored: quality.arrival); empty: all
    keys: tuple[str, ...] = ()
    # those records as the batch holds them ("id", "key", "time", "person", "received",
    # "payload"): the checks that can, judge them without reading the batch back
    rows: tuple[dict[str, Any], ...] | None = None

    def where(self) -> str:
        """``SCOPE``, narrowed to ``keys`` when the scope has them (bound by :meth:`bind`)."""
        if not self.keys:
            return SCOPE
        return f"{SCOPE} AND r.record_key IN ({', '.join(f':k{i}' for i in range(len(self.keys)))})"

    def bind(self, **extra: Any) -> dict[str, Any]:
        return {"org": self.org_code, "ds": self.dataset, "t0": self.start, "t1": self.end,
                **{f"k{i}": k for i, k in enumerate(self.keys)}, **extra}


SCOPE = "r.org_code = :org AND r.dataset = :ds AND r.event_time >= :t0 AND r.event_time < :t1"


@dataclass(slots=True)
class Hit:
    record_id: int | None
    record_key: str | None
    event_time: datetime
    code: str
    field: str | None
    params: dict[str, Any] = field(default_factory=dict)


class Sql:
    """JSON access and date arithmetic per dialect (SQLite, PostgreSQL, MySQL/MariaDB)."""

    def __init__(self, dialect: str):
        self.dialect = dialect

    def text(self, alias: str, name: str) -> str:
        if self.dialect == "postgresql":
            return f"({alias}.payload->>'{name}')"
        if self.dialect == "sqlite":
            return f"json_extract({alias}.payload, '$.{name}')"
        return f"JSON_UNQUOTE(JSON_EXTRACT({alias}.payload, '$.{name}'))"

    def num(self, alias: str, name: str) -> str:
        if self.dialect == "postgresql":
            return f"CAST({alias}.payload->>'{name}' AS NUMERIC)"
        if self.dialect == "sqlite":
            return f"json_extract({alias}.payload, '$.{name}')"
        return f"CAST(JSON_EXTRACT({alias}.payload, '$.{name}') AS DECIMAL(20,4))"

    def true(self, alias: str, name: str) -> str:
        if self.dialect == "postgresql":
            return f"(({alias}.payload->>'{name}') = 'true')"
        if self.dialect == "sqlite":
            return f"(json_extract({alias}.payload, '$.{name}') = 1)"
        return f"(JSON_EXTRACT({alias}.payload, '$.{name}') = true)"

    def empty(self, alias: str, name: str) -> str:
        expr = self.text(alias, name)
        return f"({expr} IS NULL OR {expr} = '')"

    def day_plus(self, column: str, days_param: str) -> str:
        """Start of the day of ``column`` plus ``:days_param`` days."""
        if self.dialect == "postgresql":
            return f"(date_trunc('day', {column}) + make_interval(days => :{days_param}))"
        if self.dialect == "sqlite":
            return f"datetime({column}, 'start of day', '+' || :{days_param} || ' days')"
        return f"(DATE({column}) + INTERVAL :{days_param} DAY)"


def as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> Iterator[Any]:
    result = conn.execute(text(sql).execution_options(yield_per=_BATCH), params)
    yield from result


# --- completeness ----------------------------------------------------------------------------


def expected_fields(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    fields = rule.params["fields"]
    flags = ", ".join(f"CASE WHEN {q.empty('r', n)} THEN 1 ELSE 0 END AS m{i}" for i, (n, _) in enumerate(fields))
    any_missing = " OR ".join(q.empty("r", n) for n, _ in fields)
    sql = f"SELECT r.id, r.record_key, r.event_time, {flags} FROM records r WHERE {SCOPE} AND ({any_missing})"
    for row in _rows(conn, sql, scope.bind()):
        for i, (name, label) in enumerate(fields):
            if row[3 + i]:
                yield Hit(row[0], row[1], as_datetime(row[2]), "QC_EXPECTED_MISSING", name, {"label": label})


def _when(q: Sql, when: dict[str, Any], binds: dict[str, Any]) -> str:
    parts = []
    for i, (name, value) in enumerate(when.items()):
        if value is None:
            parts.append(f"NOT {q.empty('r', name)}")
        else:
            binds[f"w{i}"] = str(value)
            parts.append(f"{q.text('r', name)} = :w{i}")
    return " AND ".join(parts)


def _in_list(prefix: str, values: list[Any], binds: dict[str, Any]) -> str:
    names = []
    for i, v in enumerate(values):
        binds[f"{prefix}{i}"] = v
        names.append(f":{prefix}{i}")
    return ", ".join(names)


def companion(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    binds = scope.bind(due=scope.as_of - timedelta(days=p["due_days"]))
    when = _when(q, p["when"], binds)
    comps = _in_list("cp", p["companions"], binds)
    via = p["on"]
    # the companion is due `due_days` after the subject's own time (its `when` field if a time, else the event)
    subject_time = next((n for n, v in p["when"].items() if v is None), None)
    due_col = q.text("r", subject_time) if subject_time else "r.event_time"
    due_cmp = f"{due_col} < :due_s" if subject_time else "r.event_time < :due"
    binds["due_s"] = binds["due"].isoformat()
    sql = (f"SELECT r.id, r.record_key, r.event_time, {q.text('r', via)} FROM records r WHERE {SCOPE} AND {when} "
           f"AND {due_cmp} AND {q.text('r', via)} IS NOT NULL AND {q.text('r', via)} NOT IN ("
           f"SELECT {q.text('c', via)} FROM records c WHERE c.org_code = :org AND c.dataset IN ({comps}) "
           f"AND {q.text('c', via)} IS NOT NULL)")
    for row in _rows(conn, sql, binds):
        yield Hit(row[0], row[1], as_datetime(row[2]), "QC_COMPANION_MISSING", via,
                  {"subject": p["subject"], "value": row[3], "companion": p["companion_names"], "due": p["due_days"]})


# --- validity and demographics (Python: check digits) ---------------------------------------------


def _values(conn: Connection, q: Sql, scope: Scope, names: list[str]) -> Iterator[Any]:
    cols = ", ".join(q.text("r", n) for n in names)
    present = " OR ".join(f"NOT {q.empty('r', n)}" for n in names[:1])
    sql = f"SELECT r.id, r.record_key, r.event_time, {cols} FROM records r WHERE {SCOPE} AND ({present})"
    return _rows(conn, sql, scope.bind())


def id_number(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    id_type = rule.params["id_type"]
    for name, label in rule.params["fields"]:
        for row in _values(conn, q, scope, [name, id_type] if id_type else [name]):
            if id_type and row[4] not in (None, "", "01", "02"):
                continue  # passports and other documents follow other rules
            try:
                parse_id_number(str(row[3]))
            except IdNumberError as exc:
                yield Hit(row[0], row[1], as_datetime(row[2]), "QC_ID_INVALID", name, {"label": label, "detail": exc.message})


def phone(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    for name, label in rule.params["fields"]:
        for row in _values(conn, q, scope, [name]):
            if normalize_phone(str(row[3])) is None:
                yield Hit(row[0], row[1], as_datetime(row[2]), "QC_PHONE_INVALID", name, {"label": label})


def id_demographics(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    names = [p["id_field"], p["id_type"] or p["id_field"], p["sex"] or p["id_field"], p["birth"] or p["id_field"]]
    for row in _values(conn, q, scope, names):
        if p["id_type"] and row[4] not in (None, "", "01", "02"):
            continue
        try:
            id18, _ = parse_id_number(str(row[3]))
        except IdNumberError:
            continue  # an invalid number is a validity finding, not this one
        when = as_datetime(row[2])
        if p["sex"] and row[5] in ("1", "2") and id_sex(id18) != row[5]:
            yield Hit(row[0], row[1], when, "QC_ID_SEX_MISMATCH", p["id_field"], {"label": p["label"]})
        if p["birth"] and row[6] and id_birth_date(id18) != date.fromisoformat(str(row[6])[:10]):
            yield Hit(row[0], row[1], when, "QC_ID_BIRTH_MISMATCH", p["id_field"], {"label": p["label"]})


# --- consistency ---------------------------------------------------------------------------------


def cross_time_order(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    mine, theirs = q.text("r", p["field"]), q.text("o", p["other_field"])
    sql = (f"SELECT r.id, r.record_key, r.event_time, {mine}, {theirs} FROM records r JOIN records o "
           f"ON o.record_key = {q.text('r', p['on'])} AND o.dataset = :other AND o.org_code = r.org_code "
           f"WHERE {SCOPE} AND {mine} < {theirs}")
    for row in _rows(conn, sql, scope.bind(other=p["other"])):
        yield Hit(row[0], row[1], as_datetime(row[2]), "QC_CROSS_TIME_ORDER", p["field"], {
            "label": p["label"], "value": str(row[3]).replace("T", " "), "other": p["other_name"],
            "other_label": p["other_label"], "other_value": str(row[4]).replace("T", " ")})


def sum_equals(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    binds = scope.bind(items=p["items"], tol=p["tolerance"])
    filters = "".join(f" AND {q.text('i', n)} IN ({_in_list(f'f{n}', list(v), binds)})" for n, v in p["item_filter"].items())
    amount = q.num("i", p["item_field"])
    signed = f"CASE WHEN {q.true('i', p['refund_field'])} THEN -{amount} ELSE {amount} END" if p["refund_field"] else amount
    sql = (f"SELECT r.id, r.record_key, r.event_time, {q.num('r', p['field'])}, s.total FROM records r JOIN ("
           f"SELECT {q.text('i', p['on'])} AS via, SUM({signed}) AS total FROM records i "
           f"WHERE i.org_code = :org AND i.dataset = :items{filters} GROUP BY {q.text('i', p['on'])}) s "
           f"ON s.via = {q.text('r', p['on'])} "
           f"WHERE {SCOPE} AND NOT {q.empty('r', p['field'])} AND ABS({q.num('r', p['field'])} - s.total) > :tol")
    for row in _rows(conn, sql, binds):
        yield Hit(row[0], row[1], as_datetime(row[2]), "QC_SUM_MISMATCH", p["field"], {
            "label": p["label"], "value": f"{float(row[3]):.2f}", "items": p["items_name"], "total": f"{float(row[4]):.2f}"})


def reference(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    binds = scope.bind(due=scope.as_of - timedelta(days=p["due_days"]))
    targets = _in_list("tg", p["targets"], binds)
    ref = q.text("r", p["field"])
    sql = (f"SELECT r.id, r.record_key, r.event_time, {ref} FROM records r WHERE {SCOPE} AND r.received_at < :due "
           f"AND {ref} IS NOT NULL AND {ref} NOT IN (SELECT t.record_key FROM records t "
           f"WHERE t.org_code = :org AND t.dataset IN ({targets}))")
    for row in _rows(conn, sql, binds):
        yield Hit(row[0], row[1], as_datetime(row[2]), "QC_REFERENCE_MISSING", p["field"],
                  {"label": p["label"], "value": row[3], "targets": p["target_names"]})


# --- timeliness, uniqueness, linkage ----------------------------------------------------------------


def upload_delay(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    days = rule.params["days"]
    binds = scope.bind(d1=days + 1)
    # Events before the institution was connected could not have been sent on time: a
    # back-fill of history is history, not lateness.
    since = ""
    if scope.connected is not None:
        since, binds["connected"] = " AND r.event_time >= :connected", scope.connected
    sql = (f"SELECT r.id, r.record_key, r.event_time, r.received_at FROM records r WHERE {SCOPE}{since} "
           f"AND r.received_at >= {q.day_plus('r.event_time', 'd1')}")
    for row in _rows(conn, sql, binds):
        event, received = as_datetime(row[2]), as_datetime(row[3])
        yield Hit(row[0], row[1], event, "QC_LATE_UPLOAD", None,
                  {"event": f"{event:%Y-%m-%d %H:%M}", "received": f"{received:%Y-%m-%d %H:%M}", "days": days})


def duplicate_event(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    cols = [q.text("r", f) for f in rule.params["fields"]]
    part = ", ".join(cols)
    present = " AND ".join(f"{c} IS NOT NULL" for c in cols)
    sql = (f"SELECT id, record_key, event_time, first_key FROM (SELECT r.id, r.record_key, r.event_time, "
           f"FIRST_VALUE(r.record_key) OVER (PARTITION BY {part} ORDER BY r.id) AS first_key, "
           f"COUNT(*) OVER (PARTITION BY {part}) AS n FROM records r WHERE {SCOPE} AND {present}) d "
           f"WHERE n > 1 AND record_key <> first_key")
    for row in _rows(conn, sql, scope.bind()):
        yield Hit(row[0], row[1], as_datetime(row[2]), "QC_DUPLICATE_EVENT", None,
                  {"other_key": row[3], "fields": rule.params["labels"]})


def person_link(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    sql = (f"SELECT r.id, r.record_key, r.event_time FROM records r WHERE {SCOPE} AND (r.person_id IS NULL OR NOT EXISTS "
           f"(SELECT 1 FROM person_identifiers pi WHERE pi.person_id = r.person_id AND pi.kind = 'id_no'))")
    for row in _rows(conn, sql, scope.bind()):
        yield Hit(row[0], row[1], as_datetime(row[2]), "QC_NOT_LINKED", None, {})


def repeat_test(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    """重复检查检验: the same item already reported by another institution inside its window."""
    repeats = find_repeats(conn, scope.start, scope.end, org_code=scope.org_code, dataset=scope.dataset)
    names = dict(conn.execute(select(Institution.code, Institution.name).where(
        Institution.code.in_(sorted({p.earlier.org_code for p in repeats})))).all()) if repeats else {}
    for p in repeats:
        r, e = p.result, p.earlier
        yield Hit(r.record_id, r.record_key, r.time, "QC_REPEAT_TEST", None, {
            "item": r.item.name, "days": r.item.window_days, "earlier_org": names.get(e.org_code, e.org_code),
            "earlier_time": f"{e.time:%Y-%m-%d %H:%M}", "earlier_key": e.record_key, "earlier_org_code": e.org_code})


CHECKS: dict[str, Callable[[Connection, Sql, Scope, RuleInstance], Iterator[Hit]]] = {
    "expected_fields": expected_fields, "companion": companion, "id_number": id_number, "phone": phone,
    "id_demographics": id_demographics, "cross_time_order": cross_time_order, "sum_equals": sum_equals,
    "reference": reference, "upload_delay": upload_delay, "duplicate_event": duplicate_event,
    "person_link": person_link, "repeat_test": repeat_test,
}

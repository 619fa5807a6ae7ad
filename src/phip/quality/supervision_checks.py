"""The supervision checks (互联网医院监管规则): one function per rule type of supervision_types.

They read stored records like the quality checks do (``Scope``: one institution, data set and
window of event days) and yield ``Hit`` s; the cross-record ones read other stored records:
the same EMPI person's offline visits at any institution, the practitioner register of any
internet hospital, the prescription's consultation. Rows are fetched set-wise and judged in
Python, where dates and code prefixes are the same on every database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, text

from .checks import Hit, Scope, Sql, _rows, as_datetime
from .rules import RuleInstance
from .supervision_types import CONSULTATION, PRACTITIONER

_CHUNK = 500


def _scoped(conn: Connection, q: Sql, scope: Scope, names: list[str]) -> Iterator[dict[str, Any]]:
    if scope.rows is not None:  # a batch as it is stored: judged from memory
        for r in scope.rows:
            payload = r["payload"]
            yield {"id": r["id"], "key": r["key"], "time": r["time"], "person": r["person"], "received": r["received"],
                   **{n: payload.get(n) for n in names}}  # dates stay objects: `_dt` takes both
        return
    cols = "".join(f", {q.text('r', n)} AS f_{n}" for n in names)
    sql = f"SELECT r.id, r.record_key, r.event_time, r.person_id, r.received_at{cols} FROM records r WHERE {scope.where()}"
    for row in _rows(conn, sql, scope.bind()):
        m = row._mapping
        yield {"id": row[0], "key": row[1], "time": as_datetime(row[2]), "person": row[3], "received": row[4],
               **{n: m[f"f_{n}"] for n in names}}


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return as_datetime(value)
    except ValueError:
        return None


def _hit(r: dict[str, Any], code: str, field: str | None, rule: RuleInstance, **params: Any) -> Hit:
    return Hit(r["id"], r["key"], r["time"], code, field, {"article": rule.params["article"], **params})


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


def _select_in(conn: Connection, sql: str, values: list[Any], **binds: Any) -> Iterator[Any]:
    """Rows of ``sql`` (``IN :values``) for ``values``, a chunk at a time: one expanding
    parameter, so a chunk of 500 is not 500 bind names to parse and compile."""
    stmt = text(sql).bindparams(bindparam("values", expanding=True))
    for part in _chunks(values):
        yield from conn.execute(stmt, {"values": part, **binds})


# --- first visit not online (线上首诊) ---------------------------------------------------------


def offline_first(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    kind = p["visit_kind"]
    rows = list(_scoped(conn, q, scope, [*p["diagnosis"], *([kind[0]] if kind else [])]))
    due = scope.as_of - timedelta(days=p["due_days"])
    persons = sorted({r["person"] for r in rows if r["person"]})
    offline: dict[str, list[tuple[datetime, set[str]]]] = {}
    for ds, fields in p["offline"].items():
        cols = "".join(f", {q.text('o', f)}" for f in fields)
        sql = f"SELECT o.person_id, o.event_time{cols} FROM records o WHERE o.dataset = :ods AND o.person_id IN :values"
        for row in _select_in(conn, sql, persons, ods=ds):
            codes = {str(c)[:p["chars"]].upper() for c in row[2:] if c}
            offline.setdefault(row[0], []).append((as_datetime(row[1]), codes))
    for r in rows:
        if kind and r[kind[0]] == kind[1]:
            yield _hit(r, "SV_FIRST_VISIT_ONLINE", kind[0], rule)
            continue
        diagnosis = next((r[n] for n in p["diagnosis"] if r[n]), None)
        if not diagnosis:
            continue  # no condition named: the completeness rule reports it
        wanted, earliest = str(diagnosis)[:p["chars"]].upper(), r["time"] - timedelta(days=p["days"])
        if as_datetime(r["received"]) > due:
            continue  # the offline visit may still be on its way (another hospital's T+1 upload)
        if not any(earliest <= t <= r["time"] and wanted in codes for t, codes in offline.get(r["person"], ())):
            yield _hit(r, "SV_NO_OFFLINE_DIAGNOSIS", p["diagnosis"][0], rule, days=p["days"], diagnosis=diagnosis)


# --- drugs, children, review ------------------------------------------------------------------


def restricted_code(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    for r in _scoped(conn, q, scope, [p["field"], p["name_field"]]):
        code = r[p["field"]]
        if code is not None and str(code) in p["codes"]:
            yield _hit(r, "SV_RESTRICTED_DRUG", p["field"], rule, category=p["labels"].get(str(code), str(code)),
                       drug=r[p["name_field"]] or "")


def _age(r: dict[str, Any], birth: str | None, age: str | None) -> float | None:
    born = _dt(r.get(birth)) if birth else None
    if born:
        return (r["time"] - born).days / 365.25
    value = r.get(age) if age else None
    return float(value) if value not in (None, "") else None


def child_guardian(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    names = [n for n, _ in p["needs"]] + [n for n in (p["birth"], p["age"]) if n]
    for r in _scoped(conn, q, scope, names):
        age = _age(r, p["birth"], p["age"])
        if age is None or age >= p["under"]:
            continue
        missing = [label for n, label in p["needs"] if not r[n]]
        if missing:
            yield _hit(r, "SV_CHILD_WITHOUT_GUARDIAN", p["needs"][0][0], rule, age=int(age), missing="、".join(missing))


def review_order(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    for r in _scoped(conn, q, scope, ["prescription_time", "reviewer_id", "review_time", "dispense_time"]):
        missing = [label for n, label in (("reviewer_id", "审方药师"), ("review_time", "审核时间")) if not r[n]]
        if missing:
            yield _hit(r, "SV_NOT_REVIEWED", "review_time", rule, missing="、".join(missing))
            continue
        prescribed, reviewed, dispensed = (_dt(r[n]) for n in ("prescription_time", "review_time", "dispense_time"))
        if reviewed and ((prescribed and reviewed < prescribed) or (dispensed and dispensed < reviewed)):
            yield _hit(r, "SV_REVIEW_ORDER", "review_time", rule, review=_show(reviewed), prescribed=_show(prescribed),
                       dispensed=_show(dispensed))


def _show(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "（无）"


# --- the practitioner (执业资质) -------------------------------------------------------------------


def practitioner(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    rows = list(_scoped(conn, q, scope, [p["field"]]))
    ids = sorted({str(r[p["field"]]) for r in rows if r[p["field"]]})
    register: dict[str, list[dict[str, Any]]] = {}
    fields = ["practitioner_id", "registered_time", "deregistered_time", "licence_valid_to", "first_licence_date",
              "practice_org_codes", "practitioner_name"]
    cols = ", ".join(q.text("o", f) for f in fields)
    sql = f"SELECT o.org_code, {cols} FROM records o WHERE o.dataset = :pds AND {q.text('o', 'practitioner_id')} IN :values"
    for row in _select_in(conn, sql, ids, pds=PRACTITIONER):
        e = dict(zip(fields, row[1:]))
        register.setdefault(str(row[1]), []).append({  # dates parsed once, not per consultation
            "org": row[0], "from": _dt(e["registered_time"]) or datetime.max,
            "until": _dt(e["deregistered_time"]) or datetime.max, "valid_to": _dt(e["licence_valid_to"]),
            "first": _dt(e["first_licence_date"]), "orgs": _codes(e["practice_org_codes"])})
    for r in rows:
        pid = r[p["field"]]
        if not pid:
            continue
        when, entries = r["time"], register.get(str(pid), [])
        day = when.date()
        valid = [e for e in entries if e["from"] <= when < e["until"]]
        show = {"practitioner": pid, "when": f"{when:%Y-%m-%d}"}
        if not valid:
            yield _hit(r, "SV_PRACTITIONER_UNREGISTERED", p["field"], rule, **show)
            continue
        e = next((e for e in valid if e["org"] == scope.org_code), valid[0])
        valid_to = e["valid_to"]
        if valid_to and valid_to.date() < day:
            yield _hit(r, "SV_LICENCE_EXPIRED", p["field"], rule, valid_to=f"{valid_to:%Y-%m-%d}", **show)
        first = e["first"]
        if first and _add_years(first.date(), p["years"]) > day:
            yield _hit(r, "SV_PRACTICE_YEARS", p["field"], rule, first=f"{first:%Y-%m-%d}", years=p["years"], **show)
        if scope.org_code not in e["orgs"]:
            yield _hit(r, "SV_OUTSIDE_REGISTERED_ORG", p["field"], rule, **show)


def _codes(value: Any) -> set[str]:
    return {c.strip() for c in str(value or "").replace("；", ";").split(";") if c.strip()}


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


# --- the prescription and its consultation ----------------------------------------------------------


def _with_consultation(conn: Connection, q: Sql, scope: Scope, extra: list[str]) -> Iterator[dict[str, Any]]:
    """Prescription item rows with their consultation's doctor and start (None when not stored)."""
    fields = ["consultation_no", "practitioner_id", "prescription_time", *extra]
    if scope.rows is not None:
        yield from _with_consultation_in_memory(conn, q, scope, fields)
        return
    cols = "".join(f", {q.text('r', n)} AS f_{n}" for n in fields)
    sql = (f"SELECT r.id, r.record_key, r.event_time, r.received_at{cols}, c.record_key AS c_key, "
           f"{q.text('c', 'practitioner_id')} AS c_doctor, {q.text('c', 'start_time')} AS c_start FROM records r "
           f"LEFT JOIN records c ON c.dataset = :cds AND c.org_code = r.org_code "
           f"AND c.record_key = {q.text('r', 'consultation_no')} WHERE {scope.where()}")
    for row in _rows(conn, sql, scope.bind(cds=CONSULTATION)):
        m = row._mapping
        yield {"id": row[0], "key": row[1], "time": as_datetime(row[2]), "received": as_datetime(row[3]),
               **{n: m[f"f_{n}"] for n in fields}, "c_key": m["c_key"], "c_doctor": m["c_doctor"], "c_start": m["c_start"]}


def _with_consultation_in_memory(conn: Connection, q: Sql, scope: Scope, fields: list[str]) -> Iterator[dict[str, Any]]:
    rows = [{**r, "received": as_datetime(r["received"])} for r in _scoped(conn, q, scope, fields)]
    nos = sorted({str(r["consultation_no"]) for r in rows if r["consultation_no"]})
    sql = (f"SELECT c.record_key, {q.text('c', 'practitioner_id')}, {q.text('c', 'start_time')} FROM records c "
           f"WHERE c.record_key IN :values AND c.dataset = :cds AND c.org_code = :org")  # natural key index
    found = {row[0]: (row[1], row[2]) for row in _select_in(conn, sql, nos, cds=CONSULTATION, org=scope.org_code)}
    for r in rows:
        no = str(r["consultation_no"]) if r["consultation_no"] else None
        doctor, start = found.get(no, (None, None)) if no else (None, None)
        yield {**r, "c_key": no if no in found else None, "c_doctor": doctor, "c_start": start}


def signature(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    for r in _with_consultation(conn, q, scope, ["esign_ref", "esign_practitioner_id"]):
        if not r["esign_ref"]:
            yield _hit(r, "SV_UNSIGNED", "esign_ref", rule)
            continue
        signer = r["esign_practitioner_id"] or r["practitioner_id"]
        if r["c_key"] is not None and r["c_doctor"] and str(signer) != str(r["c_doctor"]):
            yield _hit(r, "SV_SIGNER_MISMATCH", "esign_practitioner_id", rule, signer=signer, consultant=r["c_doctor"])


def after_consultation(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    due = scope.as_of - timedelta(days=rule.params["due_days"])
    for r in _with_consultation(conn, q, scope, []):
        if r["c_key"] is None:
            if r["consultation_no"] and r["received"] < due:  # its consultation may still be on its way
                yield _hit(r, "SV_NO_CONSULTATION", "consultation_no", rule, value=r["consultation_no"])
            continue
        prescribed, started = _dt(r["prescription_time"]), _dt(r["c_start"])
        if prescribed and started and prescribed < started:
            yield _hit(r, "SV_PRESCRIPTION_BEFORE_CONSULTATION", "prescription_time", rule,
                       prescribed=_show(prescribed), started=_show(started))


# --- the consultation record and volume ---------------------------------------------------------------


def record_complete(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    names = [n for n, _ in p["fields"]] + [n for n, _ in p["true_fields"]]
    for r in _scoped(conn, q, scope, names):
        missing = [label for n, label in p["fields"] if r[n] in (None, "")]
        missing += [label for n, label in p["true_fields"] if r[n] not in (True, 1, "true")]
        if missing:
            yield _hit(r, "SV_RECORD_INCOMPLETE", None, rule, missing="、".join(missing))


def volume_per_hour(conn: Connection, q: Sql, scope: Scope, rule: RuleInstance) -> Iterator[Hit]:
    p = rule.params
    hours: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    for r in _scoped(conn, q, scope, [p["field"]]):
        if r[p["field"]]:
            hours.setdefault((str(r[p["field"]]), r["time"].replace(minute=0, second=0, microsecond=0)), []).append(r)
    for (pid, hour), rows in hours.items():
        if len(rows) > p["limit"]:
            rows.sort(key=lambda r: (r["time"], r["id"]))
            for r in rows[p["limit"]:]:  # the consultations beyond the limit
                yield _hit(r, "SV_VOLUME_ANOMALY", p["field"], rule, practitioner=pid, hour=f"{hour:%Y-%m-%d %H}:00",
                           count=len(rows), limit=p["limit"])


CHECKS: dict[str, Callable[[Connection, Sql, Scope, RuleInstance], Iterator[Hit]]] = {
    "offline_first": offline_first, "restricted_code": restricted_code, "child_guardian": child_guardian,
    "review_order": review_order, "practitioner": practitioner, "signature": signature,
    "after_consultation": after_consultation, "record_complete": record_complete, "volume_per_hour": volume_per_hour,
}

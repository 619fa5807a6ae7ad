"""EMPI services (患者主索引服务): find, identifiers, golden record, review queue, merge / unmerge /
split / link / reject. The API and the CLI are thin layers over these functions.

Every change runs in one transaction under the EMPI lock, writes an ``empi_events`` row with
what it moved (records, identifiers) and the golden records before, and can be undone by
:func:`undo`, which writes its own event. Records follow their person (``records.person_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, tuple_, update

from phip.errors import PhipError
from phip.privacy import mask_kind
from phip.standard.catalog import load_standard
from phip.standard.validate import platform_now
from phip.store.models import Institution, Person, PersonIdentifier, Record

from . import chain, golden, identity_guard, review_queue
from .features import GOLDEN_FIELDS, block_keys, match_row, record_demographics
from .identifiers import KIND_LABELS, normalize_id_number, record_identifiers
from .model import Model
from .resolver import load_active_model, new_person_id
from .store import blocks_to_persons, chunks, insert_persons, load_persons, lock_exclusive, replace_blocks
from .tables import EmpiBlock, EmpiEvent, EmpiReview


class EmpiError(PhipError):
    """A request the EMPI refuses; ``code`` is stable, ``message`` Chinese for the operator.
    ``status`` is the HTTP status the API answers with (``phip.api.errors.HTTP_STATUS`` reads
    it): one class's refusals span 400/403/404/409, and the CLI shares the class."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None):
        super().__init__(code, message, field)
        self.status = status


# --- masking ------------------------------------------------------------------------------------


# Names, ID numbers, phones and cards are masked unless the reader may see them (phip.privacy:
# one rule per kind; a patient id is the institution's, not a personal identifier).


def _public(person: dict[str, Any], unmasked: bool) -> dict[str, Any]:
    out = {f: person.get(f) for f in GOLDEN_FIELDS}
    if out.get("birth_date"):
        out["birth_date"] = out["birth_date"].isoformat()
    if not unmasked:
        for field in ("name", "id_no", "phone"):
            out[field] = mask_kind(field, out.get(field))
    return out


# --- reading --------------------------------------------------------------------------------------


def current_id(conn: Connection, person_id: str) -> str:
    """Follow merges to the surviving person (a merged id keeps working for readers)."""
    seen = set()
    pid = person_id
    while pid not in seen:
        seen.add(pid)
        row = conn.execute(select(Person.status, Person.merged_into).where(Person.id == pid)).first()
        if row is None:
            raise EmpiError("PERSON_NOT_FOUND", f"居民“{person_id}”不存在", 404, "person_id")
        if row.status != "merged" or not row.merged_into:
            return pid
        pid = row.merged_into
    return pid


def golden_record(engine: Engine, person_id: str, unmasked: bool = False) -> dict[str, Any]:
    """The person's golden record: per field the value, and its source (institution, data set, time)."""
    with engine.connect() as conn:
        pid = current_id(conn, person_id)
        person = load_persons(conn, [pid])[pid]
        records = conn.execute(select(func.count()).select_from(Record).where(Record.person_id == pid)).scalar_one()
    values = _public(person, unmasked)
    sources = person.get("sources") or {}
    return {
        "person_id": pid, "requested_id": person_id, "status": person["status"], "records": records,
        "fields": {f: {"value": values[f], "source": sources.get(f)} for f in GOLDEN_FIELDS},
    }


def identifiers(engine: Engine, person_id: str, unmasked: bool = False) -> dict[str, Any]:
    """PIX-like: every identifier of a person, across institutions."""
    pi = PersonIdentifier.__table__
    with engine.connect() as conn:
        pid = current_id(conn, person_id)
        rows = conn.execute(select(pi.c.kind, pi.c.scope, pi.c.value, pi.c.created_at)
                            .where(pi.c.person_id == pid).order_by(pi.c.kind, pi.c.scope, pi.c.value)).all()
    return {"person_id": pid, "identifiers": [
        {"kind": k, "label": KIND_LABELS.get(k, k), "scope": s or None,
         "value": v if unmasked else mask_kind(k, v), "registered_at": at.isoformat(sep=" ")}
        for k, s, v, at in rows
    ]}


XREF_KINDS = ("id_no", "health_card", "insurance", "doc")
_XREF_FORBIDDEN = "只能查询本机构患者所属的居民：该患者不是贵机构的患者，或平台没有该患者"


def xref(engine: Engine, *, org: str | None = None, patient_id: str | None = None, kind: str | None = None,
         value: str | None = None, scope: str | None = None, viewer: str | None = None,
         unmasked: bool = False) -> dict[str, Any]:
    """Cross-reference lookup (PIX query, IHE ITI-9; WS/T 448 人员查询): the person an identifier
    names and every local patient id linked to it, in every institution.

    Asked by an institution's patient id (``org`` + ``patient_id``) or by a province-wide
    identifier (``kind`` + ``value``; ``scope`` = the document type for ``doc``). ``viewer`` is the
    asking institution (its push-API key): it sees only persons it has records or a patient id of.
    For such a person the answer is what a PIX manager answers, all domains' ids: the asking
    system needs them to fetch the person's history from the others. A person it has no part in
    is refused with 403 whether or not it exists, so a key cannot probe other hospitals' patients.
    """
    if org and patient_id:
        key = ("patient_id", org.strip(), patient_id.strip())
    elif kind and value:
        if kind not in XREF_KINDS:
            raise EmpiError("BAD_KIND", f"标识类别“{kind}”无效，应为 {' / '.join(XREF_KINDS)}", 400, "kind")
        if kind == "id_no":
            id18 = normalize_id_number(value)
            if id18 is None:
                raise EmpiError("BAD_ID_NO", "身份证号码无效（GB 11643 校验未通过）", 400, "value")
            key = ("id_no", "", id18)
        else:
            key = (kind, (scope or "").strip() if kind == "doc" else "", value.strip().upper() if kind == "doc" else value.strip())
    else:
        raise EmpiError("BAD_QUERY", "请提供机构代码加院内患者ID，或标识类别加标识值", 400)
    pi, rec = PersonIdentifier.__table__, Record.__table__
    with engine.connect() as conn:
        found = conn.execute(select(pi.c.person_id).where(pi.c.kind == key[0], pi.c.scope == key[1],
                                                          pi.c.value == key[2])).scalar()
        pid = current_id(conn, found) if found else None
        visible = pid is not None and (viewer is None or conn.execute(select(pi.c.value).where(
            pi.c.person_id == pid, pi.c.kind == "patient_id", pi.c.scope == viewer).limit(1)).first() is not None
            or conn.execute(select(rec.c.id).where(rec.c.person_id == pid, rec.c.org_code == viewer).limit(1)).first() is not None)
        if not visible:
            if viewer is not None and not (key[0] == "patient_id" and key[1] == viewer):
                raise EmpiError("XREF_FORBIDDEN", _XREF_FORBIDDEN, 403)
            raise EmpiError("PATIENT_NOT_FOUND", "平台没有该患者（尚未上传过该患者的记录）", 404,
                            "patient_id" if key[0] == "patient_id" else "value")
        rows = conn.execute(select(pi.c.kind, pi.c.scope, pi.c.value).where(pi.c.person_id == pid)
                            .order_by(pi.c.kind, pi.c.scope, pi.c.value)).all()
        names = dict(conn.execute(select(Institution.code, Institution.name).where(
            Institution.code.in_({s for k, s, _ in rows if k == "patient_id"}))).all())
    return {
        "person_id": pid,
        "local_ids": [{"org": s, "org_name": names.get(s), "patient_id": v} for k, s, v in rows if k == "patient_id"],
        "identifiers": [{"kind": k, "label": KIND_LABELS.get(k, k), "scope": s or None,
                         "value": v if unmasked else mask_kind(k, v)}
                        for k, s, v in rows if k != "patient_id"],
    }


def find(engine: Engine, *, id_no: str | None = None, name: str | None = None, birth_date: Any = None,
         phone: str | None = None, sex: str | None = None, limit: int = 20, unmasked: bool = False) -> list[dict[str, Any]]:
    """PDQ-like search by demographics: an ID number exactly; otherwise candidates from the index
    (name + birth date, phone) ranked by the model's match weight against the query."""
    if not (id_no or phone or (name and birth_date)):
        raise EmpiError("BAD_QUERY", "请提供身份证号码、电话号码，或姓名加出生日期", 400)
    with engine.connect() as conn:
        if id_no:
            id18 = normalize_id_number(id_no)
            if id18 is None:
                raise EmpiError("BAD_ID_NO", "身份证号码无效（GB 11643 校验未通过）", 400, "id_no")
            pid = conn.execute(select(PersonIdentifier.person_id).where(
                PersonIdentifier.value == id18, PersonIdentifier.kind == "id_no", PersonIdentifier.scope == "")).scalar()
            if pid is None:
                return []
            person = load_persons(conn, [pid])[pid]
            return [{"person_id": pid, "match_probability": 1.0, "match_weight": None, **_public(person, unmasked)}]
        query = match_row(name, sex, birth_date, None, phone, None)
        keys = block_keys(query)
        stored = blocks_to_persons(conn, keys)
        persons = load_persons(conn, {p for ps in stored.values() for p in ps})
        model = load_active_model(conn)
    hits = []
    for pid, person in persons.items():
        if person["status"] != "active" or not person["match"]:
            continue
        weight, prob = model.score(query, person["match"])
        hits.append({"person_id": pid, "match_probability": round(prob, 6), "match_weight": round(weight, 2),
                     **_public(person, unmasked)})
    hits.sort(key=lambda h: -h["match_weight"])
    return hits[:limit]


def events(engine: Engine, person_id: str) -> list[dict[str, Any]]:
    e = EmpiEvent.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(e).where(or_(e.c.person_id == person_id, e.c.other_id == person_id))
                            .order_by(e.c.id)).mappings().all()
    return [{k: (v.isoformat(sep=" ") if isinstance(v, datetime) else v) for k, v in r.items() if k != "detail"}
            | {"records_moved": len((r["detail"] or {}).get("records", [])),
               "identifiers_moved": len((r["detail"] or {}).get("identifiers", []))} for r in rows]


def reviews(engine: Engine, status: str = "pending", limit: int = 50, unmasked: bool = False) -> list[dict[str, Any]]:
    """The review queue with the evidence field by field (match weights) and both golden records."""
    r = EmpiReview.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(r).where(r.c.status == status).order_by(r.c.created_at, r.c.id).limit(limit)).mappings().all()
        persons = load_persons(conn, {x["person_id"] for x in rows} | {x["candidate_id"] for x in rows})
    out = []
    for row in rows:
        item = {k: (v.isoformat(sep=" ") if isinstance(v, datetime) else v) for k, v in row.items()}
        evidence = item.get("evidence") or []
        if not unmasked:
            for ev in evidence:
                if ev.get("field") in ("name", "id_no", "phone"):
                    ev["left"], ev["right"] = mask_kind(ev["field"], ev.get("left")), mask_kind(ev["field"], ev.get("right"))
        item["person"] = _public(persons[row["person_id"]], unmasked) if row["person_id"] in persons else None
        item["candidate"] = _public(persons[row["candidate_id"]], unmasked) if row["candidate_id"] in persons else None
        out.append(item)
    return out


def review_count(engine: Engine, status: str = "pending") -> int:
    """How many review items have ``status`` (the queue's total, beside the page shown)."""
    r = EmpiReview.__table__
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(r).where(r.c.status == status)).scalar_one()


# --- changing -------------------------------------------------------------------------------------


def _snapshot(person: dict[str, Any]) -> dict[str, Any]:
    snap = {f: person.get(f) for f in GOLDEN_FIELDS}
    if snap.get("birth_date"):
        snap["birth_date"] = snap["birth_date"].isoformat()
    return {**snap, "sources": person.get("sources") or {}}


def _values(snapshot: dict[str, Any]) -> dict[str, Any]:
    from datetime import date

    values = {f: snapshot.get(f) for f in GOLDEN_FIELDS}
    if isinstance(values.get("birth_date"), str):
        values["birth_date"] = date.fromisoformat(values["birth_date"])
    return values


def _write_golden(conn: Connection, pid: str, values: dict[str, Any], sources: dict[str, Any], now: datetime,
                  status: str = "active", merged_into: str | None = None) -> None:
    columns, keys = golden.person_row(values)
    conn.execute(update(Person).where(Person.id == pid).values(
        **columns, sources=sources, status=status, merged_into=merged_into, updated_at=now))
    replace_blocks(conn, {pid: keys if status == "active" else []})


def _event(conn: Connection, action: str, actor: str, reason: str | None, person_id: str | None,
           other_id: str | None, detail: dict[str, Any], now: datetime, review_id: int | None = None,
           reverts: int | None = None) -> int:
    values = {"action": action, "at": now, "actor": actor, "reason": reason, "person_id": person_id,
              "other_id": other_id, "review_id": review_id, "reverts": reverts, "detail": detail}
    chain.seal(conn, [values])
    result = conn.execute(insert(EmpiEvent).values(**values).returning(EmpiEvent.id))
    event_id = result.scalar_one()
    if reverts is not None:
        conn.execute(update(EmpiEvent).where(EmpiEvent.id == reverts).values(reverted_by=event_id))
    return event_id


def _active_pair(conn: Connection, survivor: str, retired: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if survivor == retired:
        raise EmpiError("SAME_PERSON", "不能把居民与其自身合并", 400)
    persons = load_persons(conn, [survivor, retired])
    for pid in (survivor, retired):
        if pid not in persons:
            raise EmpiError("PERSON_NOT_FOUND", f"居民“{pid}”不存在", 404)
        if persons[pid]["status"] != "active":
            raise EmpiError("PERSON_MERGED", f"居民“{pid}”已被合并，请对合并后的居民操作", 409)
    holds = identity_guard.held(conn, [survivor, retired])
    if kinds := identity_guard.clash(holds[survivor], holds[retired]):
        raise EmpiError(*identity_guard.refusal(kinds), 409)
    return persons[survivor], persons[retired]


def merge_in(conn: Connection, survivor: str, retired: str, actor: str, reason: str | None, now: datetime,
             action: str = "merge", review_id: int | None = None) -> int:
    """Merge ``retired`` into ``survivor`` inside an open transaction (caller holds the lock)."""
    keep, gone = _active_pair(conn, survivor, retired)
    pi, rec = PersonIdentifier.__table__, Record.__table__
    moved_ids = [list(r) for r in conn.execute(
        select(pi.c.kind, pi.c.scope, pi.c.value).where(pi.c.person_id == retired))]
    moved_records = [r[0] for r in conn.execute(select(rec.c.id).where(rec.c.person_id == retired))]
    conn.execute(update(pi).where(pi.c.person_id == retired).values(person_id=survivor))
    conn.execute(update(rec).where(rec.c.person_id == retired).values(person_id=survivor))
    values, sources = golden.combine(({f: keep.get(f) for f in GOLDEN_FIELDS}, keep.get("sources") or {}),
                                     ({f: gone.get(f) for f in GOLDEN_FIELDS}, gone.get("sources") or {}))
    _write_golden(conn, survivor, values, sources, now)
    _write_golden(conn, retired, {f: gone.get(f) for f in GOLDEN_FIELDS}, gone.get("sources") or {}, now,
                  status="merged", merged_into=survivor)
    # reviews between the two are resolved, those naming the retired person now name the survivor
    review_queue.follow_merges(conn, {retired: survivor}, actor, now, load_active_model(conn))
    detail = {"identifiers": moved_ids, "records": moved_records,
              "before": {"survivor": _snapshot(keep), "retired": _snapshot(gone)}}
    return _event(conn, action, actor, reason, survivor, retired, detail, now, review_id)


def merge(engine: Engine, survivor: str, retired: str, actor: str, reason: str | None = None) -> int:
    """Merge two persons (合并): records and identifiers of ``retired`` follow to ``survivor``."""
    now = platform_now()
    with engine.begin() as conn:
        lock_exclusive(conn)
        return merge_in(conn, survivor, retired, actor, reason, now)


def _unmerge_in(conn: Connection, event: dict[str, Any], actor: str, reason: str | None, now: datetime) -> int:
    survivor, retired, detail = event["person_id"], event["other_id"], event["detail"] or {}
    state = load_persons(conn, [survivor, retired])
    if state.get(retired, {}).get("merged_into") != survivor or state[retired]["status"] != "merged":
        raise EmpiError("NOT_MERGED", "该合并已被后续操作改变，无法撤销", 409)
    if state[survivor]["status"] != "active":
        raise EmpiError("PERSON_MERGED", f"居民“{survivor}”已再次被合并，请先撤销后一次合并", 409)
    pi, rec = PersonIdentifier.__table__, Record.__table__
    keys = [tuple(k) for k in detail.get("identifiers", [])]
    for chunk in chunks(keys):
        conn.execute(update(pi).where(pi.c.person_id == survivor,
                                      tuple_(pi.c.kind, pi.c.scope, pi.c.value).in_(chunk)).values(person_id=retired))
    for chunk in chunks(detail.get("records", [])):
        conn.execute(update(rec).where(rec.c.person_id == survivor, rec.c.id.in_(chunk)).values(person_id=retired))
    before = detail.get("before", {})
    for pid, snap in ((survivor, before.get("survivor")), (retired, before.get("retired"))):
        if snap is not None:
            _write_golden(conn, pid, _values(snap), snap.get("sources") or {}, now)
    # moving records back cannot join identifiers; checked all the same (one guard on every path)
    if bad := identity_guard.violations(conn, [survivor, retired]):
        raise EmpiError(*identity_guard.refusal(next(iter(bad.values()))), 409)
    return _event(conn, "unmerge", actor, reason, survivor, retired,
                  {"identifiers": detail.get("identifiers", []), "records": detail.get("records", [])}, now,
                  reverts=event["id"])


def undo(engine: Engine, event_id: int, actor: str, reason: str | None = None) -> int:
    """Reverse a merge / link (拆分还原) or a split (重新合并); the undo is itself an audited event."""
    now = platform_now()
    with engine.begin() as conn:
        lock_exclusive(conn)
        e = EmpiEvent.__table__
        event = conn.execute(select(e).where(e.c.id == event_id)).mappings().first()
        if event is None:
            raise EmpiError("EVENT_NOT_FOUND", f"操作记录“{event_id}”不存在", 404)
        if event["reverted_by"] is not None:
            raise EmpiError("ALREADY_UNDONE", f"操作记录“{event_id}”已被撤销（撤销记录 {event['reverted_by']}）", 409)
        if event["action"] in ("merge", "link", "relink"):
            return _unmerge_in(conn, dict(event), actor, reason, now)
        if event["action"] == "split":
            new_id = merge_in(conn, event["person_id"], event["other_id"], actor, reason, now, action="unsplit")
            conn.execute(update(e).where(e.c.id == new_id).values(reverts=event_id))
            conn.execute(update(e).where(e.c.id == event_id).values(reverted_by=new_id))
            return new_id
        raise EmpiError("NOT_REVERSIBLE", f"“{event['action']}”操作无需撤销", 400)


def split(engine: Engine, person_id: str, record_ids: Sequence[int], actor: str, reason: str | None = None) -> tuple[str, int]:
    """Split records off a person into a new person (拆分). Identifiers stated only by the moved
    records go with them; the new person's golden record is built from those records."""
    if not record_ids:
        raise EmpiError("NO_RECORDS", "请选择要拆分出去的记录", 400, "record_ids")
    now = platform_now()
    std = load_standard()
    rec, pi = Record.__table__, PersonIdentifier.__table__
    with engine.begin() as conn:
        lock_exclusive(conn)
        persons = load_persons(conn, [person_id])
        if person_id not in persons or persons[person_id]["status"] != "active":
            raise EmpiError("PERSON_NOT_FOUND", f"居民“{person_id}”不存在或已被合并", 404)
        rows = conn.execute(select(rec.c.id, rec.c.org_code, rec.c.dataset, rec.c.event_time, rec.c.payload)
                            .where(rec.c.person_id == person_id)).all()
        wanted = set(record_ids)
        moving = [r for r in rows if r.id in wanted]
        if len(moving) != len(wanted):
            raise EmpiError("RECORD_NOT_OF_PERSON", "所选记录不全属于该居民", 400, "record_ids")
        if len(moving) == len(rows):
            raise EmpiError("SPLIT_ALL", "不能把居民的全部记录都拆分出去", 400, "record_ids")

        def ids_of(rs: Sequence[Any]) -> set[tuple[str, str, str]]:
            return {k for r in rs for k in record_identifiers(r.org_code, std.dataset(r.dataset), _typed(std, r))}

        stay = ids_of([r for r in rows if r.id not in wanted])
        owned = {tuple(k) for k in conn.execute(select(pi.c.kind, pi.c.scope, pi.c.value).where(pi.c.person_id == person_id))}
        move_ids = sorted((ids_of(moving) - stay) & owned)
        new_id = new_person_id()
        values: dict[str, Any] = {}
        sources: dict[str, Any] = {}
        for r in sorted(moving, key=lambda r: r.event_time or datetime.min):
            ds = std.dataset(r.dataset)
            values, sources, _ = golden.survive(values, sources, record_demographics(ds, _typed(std, r)),
                                                golden.source_of(r.org_code, r.dataset, r.event_time))
        columns, keys = golden.person_row(values)
        insert_persons(conn, [{"id": new_id, "created_at": now, "updated_at": now, "status": "active",
                               "merged_into": None, **columns, "sources": sources}], {new_id: keys})
        for chunk in chunks(move_ids):
            conn.execute(update(pi).where(pi.c.person_id == person_id,
                                          tuple_(pi.c.kind, pi.c.scope, pi.c.value).in_(chunk)).values(person_id=new_id))
        for chunk in chunks(sorted(wanted)):
            conn.execute(update(rec).where(rec.c.id.in_(chunk)).values(person_id=new_id))
        event_id = _event(conn, "split", actor, reason, person_id, new_id,
                          {"records": sorted(wanted), "identifiers": [list(k) for k in move_ids],
                           "before": {"survivor": _snapshot(persons[person_id])}}, now)
        return new_id, event_id


def _typed(std: Any, row: Any) -> dict[str, Any]:
    """A stored payload with its dates parsed back (JSON keeps them as text)."""
    from datetime import date

    payload = dict(row.payload)
    ds = std.dataset(row.dataset)
    born = ds.person.get("birth_date")
    if born and isinstance(payload.get(born), str):
        try:
            payload[born] = date.fromisoformat(payload[born][:10])
        except ValueError:
            payload.pop(born)
    return payload


def decide(engine: Engine, review_id: int, decision: str, actor: str, note: str | None = None) -> dict[str, Any]:
    """Act on a review item: ``link`` (the two are one person: merge the newer into the existing)
    or ``reject`` (different persons; the pair is not proposed again)."""
    if decision not in ("link", "reject"):
        raise EmpiError("BAD_DECISION", "审核结论只能是 link（关联）或 reject（不是同一人）", 400, "decision")
    now = platform_now()
    r = EmpiReview.__table__
    with engine.begin() as conn:
        lock_exclusive(conn)
        item = conn.execute(select(r).where(r.c.id == review_id)).mappings().first()
        if item is None:
            raise EmpiError("REVIEW_NOT_FOUND", f"审核项“{review_id}”不存在", 404)
        if item["status"] != "pending":
            raise EmpiError("REVIEW_DECIDED", f"审核项“{review_id}”已处理（{item['status']}）", 409)
        event_id = None
        if decision == "link":
            survivor, retired = current_id(conn, item["candidate_id"]), current_id(conn, item["person_id"])
            if survivor != retired:
                event_id = merge_in(conn, survivor, retired, actor, note, now, action="link", review_id=review_id)
            status = "linked"
        else:
            event_id = _event(conn, "reject", actor, note, item["candidate_id"], item["person_id"], {}, now, review_id)
            status = "rejected"
        conn.execute(update(r).where(r.c.id == review_id).values(status=status, decided_at=now, decided_by=actor, note=note))
    return {"review_id": review_id, "status": status, "event_id": event_id}


def model(engine: Engine) -> Model:
    with engine.connect() as conn:
        return load_active_model(conn)


__all__ = ["EmpiError", "decide", "events", "find", "golden_record", "identifiers", "merge", "model",
           "reviews", "split", "undo", "EmpiBlock"]

"""EMPI reads (患者主索引查询): find, identifiers, golden record, cross-reference, events and
the review queue. The API and the CLI are thin layers over these functions; identifiers are
masked unless the caller says the reader may see them (phip.privacy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from phip.privacy import mask_kind
from phip.store.models import Institution, Person, PersonIdentifier, Record

from .errors import EmpiError
from .features import GOLDEN_FIELDS, block_keys, match_row
from .identifiers import KIND_LABELS, normalize_id_number
from .model import Model
from .resolver import load_active_model
from .store import blocks_to_persons, load_persons
from .tables import EmpiEvent, EmpiReview

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


def current_ids(conn: Connection, person_ids: set[str]) -> dict[str, str]:
    """:func:`current_id` of many persons, one query per merge hop instead of one per person;
    an unknown id maps to itself (an event may name a person no reader can see)."""
    parent: dict[str, str | None] = {}
    frontier = set(person_ids)
    while frontier:
        rows = conn.execute(select(Person.id, Person.status, Person.merged_into).where(Person.id.in_(frontier))).all()
        parent.update({p: None for p in frontier})
        parent.update({r.id: r.merged_into if r.status == "merged" and r.merged_into else None for r in rows})
        frontier = {m for m in parent.values() if m and m not in parent}

    def follow(pid: str) -> str:
        seen = set()
        while parent.get(pid) and pid not in seen:
            seen.add(pid)
            pid = parent[pid]  # type: ignore[assignment]
        return pid

    return {p: follow(p) for p in person_ids}


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


#: what each EMPI event means to a hospital keeping its patient → platform person mapping
NOTICE_LABELS = {"merge": "合并", "link": "审核后合并", "relink": "重新匹配后合并", "unsplit": "撤销拆分",
                 "split": "拆分", "unmerge": "撤销合并"}
NOTICE_SCAN = 1000  # events looked at per call, matching or not: a poll costs at most this


def notifications(engine: Engine, org: str, after: int = 0, limit: int = 100) -> dict[str, Any]:
    """个人信息合并通知 (WS/T 448 §6.1, the PIX update notification of IHE ITI-10 as a feed): the
    EMPI events after event ``after`` that changed a person ``org`` has records or patient IDs
    of, oldest first, with ``org``'s own patient IDs of the persons now holding them. A hospital
    polls with the ``next_after`` of the previous answer; events of other hospitals' patients
    are skipped and never shown, but the cursor moves past them."""
    e, pi, rec = EmpiEvent.__table__, PersonIdentifier.__table__, Record.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(e.c.id, e.c.action, e.c.at, e.c.person_id, e.c.other_id)
                            .where(e.c.id > after, e.c.action.in_(list(NOTICE_LABELS)))
                            .order_by(e.c.id).limit(NOTICE_SCAN)).all()
        named = {p for r in rows for p in (r.person_id, r.other_id) if p}
        now_held = current_ids(conn, named)
        held = set(now_held.values())
        patient_ids: dict[str, list[str]] = {}
        for person, value in conn.execute(select(pi.c.person_id, pi.c.value).where(
                pi.c.kind == "patient_id", pi.c.scope == org, pi.c.person_id.in_(held))):
            patient_ids.setdefault(person, []).append(value)
        with_records = set(conn.execute(select(rec.c.person_id).distinct().where(
            rec.c.org_code == org, rec.c.person_id.in_(held))).scalars())
    out, scanned = [], after
    for r in rows:
        if len(out) == limit:
            break
        scanned = r.id
        persons = [now_held[p] for p in (r.person_id, r.other_id) if p]
        if not any(p in with_records or p in patient_ids for p in persons):
            continue
        out.append({"id": r.id, "action": r.action, "action_label": NOTICE_LABELS[r.action],
                    "at": r.at.isoformat(sep=" "), "person_id": r.person_id, "other_id": r.other_id,
                    "now": [{"person_id": p, "patient_ids": sorted(patient_ids.get(p, []))}
                            for p in dict.fromkeys(persons)]})
    return {"notifications": out, "next_after": scanned, "more": len(rows) == NOTICE_SCAN or len(out) == limit}


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


def model(engine: Engine) -> Model:
    with engine.connect() as conn:
        return load_active_model(conn)


"""EMPI edits (患者主索引变更): merge / unmerge / split / link / reject, each in one
transaction under the EMPI lock. Every change writes an ``empi_events`` row with what it moved
(records, identifiers) and the golden records before, carried into the audit trail
(phip.empi.trail) in the same transaction, and can be undone by :func:`undo`, which writes its
own event. Records follow their person (``records.person_id``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, tuple_, update

from phip.standard.catalog import load_standard
from phip.standard.validate import platform_now
from phip.store.models import Person, PersonIdentifier, Record

from . import golden, identity_guard, review_queue, trail
from .errors import EmpiError
from .features import GOLDEN_FIELDS, record_demographics
from .identifiers import record_identifiers
from .reads import current_id
from .resolver import load_active_model, new_person_id
from .store import chunks, insert_persons, load_persons, lock_exclusive, replace_blocks
from .tables import EmpiEvent, EmpiReview

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
    """Write the event (and ``reverted_by`` on the one it reverts), both carried into the trail."""
    values = {"action": action, "at": now, "actor": actor, "reason": reason, "person_id": person_id,
              "other_id": other_id, "review_id": review_id, "reverts": reverts, "detail": detail}
    event_id = conn.execute(insert(EmpiEvent).values(**values).returning(EmpiEvent.id)).scalar_one()
    if reverts is not None:
        conn.execute(update(EmpiEvent).where(EmpiEvent.id == reverts).values(reverted_by=event_id))
    trail.record(conn, [event_id], reverted=[reverts] if reverts is not None else [])
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
             action: str = "merge", review_id: int | None = None, reverts: int | None = None) -> int:
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
    return _event(conn, action, actor, reason, survivor, retired, detail, now, review_id, reverts)


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
            return merge_in(conn, event["person_id"], event["other_id"], actor, reason, now, action="unsplit",
                            reverts=event_id)
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


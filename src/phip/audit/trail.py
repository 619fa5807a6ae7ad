"""Appending to the trail (写入审计日志).

An event is appended inside the caller's transaction, so it commits or rolls back with the
change it records. Appends are serialised (PostgreSQL: a transaction-scoped advisory lock;
SQLite: ``BEGIN IMMEDIATE`` already holds the write lock), which makes ``seq`` dense and the
chain linear. After the transaction commits, the anchor file takes the new head: the commit is
seen by connection events (``commit`` marks the head, a failed commit drops it) and the anchor
is written when the connection goes back to the pool.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, Engine, event, insert, select, text
from sqlalchemy.pool import Pool

from phip.privacy import mask_text

from . import anchor, mac
from .actor import Actor
from .tables import AuditEvent

log = logging.getLogger("phip.audit")
_TZ = ZoneInfo("Asia/Shanghai")  # the platform's wall clock, as phip.standard.validate.platform_now
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_LOCK_KEY = 0x41554454  # "AUDT"
_PENDING, _COMMITTING = "phip_audit_pending", "phip_audit_committing"
_table = AuditEvent.__table__
_head = select(_table.c.seq, _table.c.mac).order_by(_table.c.seq.desc()).limit(1)


#: ``detail`` keys whose values are digests, never shown as text: a hex run can look like a phone
DIGEST_KEYS = frozenset({"digest", "legacy_hash"})


def _masked(value: Any) -> Any:
    """``detail`` as JSON stores it (round-tripped), with every ID-number and phone run masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(k): v if k in DIGEST_KEYS else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def append(conn: Connection, actor: Actor, action: str, *, person_id: str | None = None,
           authorization: str | None = None, target: str | None = None,
           detail: Mapping[str, Any] | None = None, flagged: bool = False) -> int:
    """Append one event inside the caller's transaction (serialised, chained); returns its seq."""
    return append_many(conn, [(actor, action, {"person_id": person_id, "authorization": authorization,
                                                "target": target, "detail": detail, "flagged": flagged})])[0]


def append_many(conn: Connection, events: Sequence[tuple[Actor, str, Mapping[str, Any]]]) -> list[int]:
    """Append events (actor, action, keyword arguments of :func:`append`) in order, in one
    insert: a bulk change (a relink of thousands of merges) takes the lock and reads the head once."""
    if not events:
        return []
    key = mac.load_key()
    lock(conn)
    last = conn.execute(_head).first()
    seq, previous = (last.seq, last.mac) if last else (0, mac.GENESIS)
    mine = conn.info.get(_PENDING)
    if last is not None and (mine is None or mine.seq != seq):
        _advance(anchor.Head(seq, previous, seq))  # committed: we hold the append lock
    now = datetime.now(_TZ).replace(tzinfo=None)
    rows = []
    for actor, action, kw in events:
        seq += 1
        detail, target = kw.get("detail"), kw.get("target")
        if detail is not None:
            detail = _masked(orjson.loads(orjson.dumps(detail, option=orjson.OPT_NON_STR_KEYS)))
        row = {"seq": seq, "at": kw.get("at") or now, "username": actor.username, "role": actor.role,
               "org_code": actor.org_code, "department": actor.department, "address": actor.address,
               "action": action, "person_id": kw.get("person_id"), "authorization": kw.get("authorization"),
               "target": mask_text(target) if target is not None else None, "detail": detail,
               "flagged": bool(kw.get("flagged"))}
        row["mac"] = previous = mac.link(key, previous, row)
        rows.append(row)
    conn.execute(insert(AuditEvent), rows)
    conn.info[_PENDING] = anchor.Head(seq, previous, seq)
    return [r["seq"] for r in rows]


def lock(conn: Connection) -> None:
    """Take the append lock until the transaction ends (SQLite: BEGIN IMMEDIATE holds it)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"k": _LOCK_KEY})


def log_event(engine: Engine, actor: Actor, action: str, **kwargs: Any) -> int:
    """append() in a transaction of its own (for reads)."""
    with engine.begin() as conn:
        return append(conn, actor, action, **kwargs)


def _advance(head: anchor.Head) -> None:
    try:
        anchor.advance(head)
    except OSError:  # the anchor lags (verify then checks less), the recorded action stands
        log.exception("audit anchor %s not written", anchor.anchor_path())


def _info(conn: Connection) -> dict[Any, Any] | None:
    """The pooled connection's info, or None when the connection is gone (invalidated: the
    listeners below must never turn a lost connection into another error)."""
    if conn.closed or conn.invalidated:
        return None
    try:
        return conn.info
    except Exception:  # noqa: BLE001 - an invalid transaction has no usable info
        return None


@event.listens_for(Engine, "commit")
def _on_commit(conn: Connection) -> None:
    if (info := _info(conn)) is not None and (head := info.pop(_PENDING, None)) is not None:
        info[_COMMITTING] = head


@event.listens_for(Engine, "rollback")
def _on_rollback(conn: Connection) -> None:
    if (info := _info(conn)) is not None:
        info.pop(_PENDING, None)
        info.pop(_COMMITTING, None)


@event.listens_for(Engine, "rollback_savepoint")
def _on_rollback_savepoint(conn: Connection, name: str, context: Any) -> None:
    if (info := _info(conn)) is not None:
        info.pop(_PENDING, None)  # anchoring less than was written is safe; more is not


@event.listens_for(Engine, "handle_error")
def _on_error(context: Any) -> None:
    if context.connection is not None and (info := _info(context.connection)) is not None:
        info.pop(_COMMITTING, None)


@event.listens_for(Pool, "checkin")
def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    if record is not None and (head := record.info.pop(_COMMITTING, None)) is not None:
        _advance(head)


def log_reads(engine: Engine, actor: Actor, action: str, person_ids: Iterable[str | None], **kwargs: Any) -> list[int]:
    """A read that showed several persons (a search, a page of findings): one event per person,
    so each resident's access log lists it; one event without a person when none was shown."""
    ids: list[str | None] = list(dict.fromkeys(p for p in person_ids if p)) or [None]
    with engine.begin() as conn:
        return append_many(conn, [(actor, action, {**kwargs, "person_id": p}) for p in ids])

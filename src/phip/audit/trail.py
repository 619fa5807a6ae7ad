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
from collections.abc import Mapping
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


def _masked(value: Any) -> Any:
    """``detail`` as JSON stores it (round-tripped), with every ID-number and phone run masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def append(conn: Connection, actor: Actor, action: str, *, person_id: str | None = None,
           authorization: str | None = None, target: str | None = None,
           detail: Mapping[str, Any] | None = None, flagged: bool = False) -> int:
    """Append one event inside the caller's transaction (serialised, chained); returns its seq."""
    key = mac.load_key()
    lock(conn)
    last = conn.execute(_head).first()
    prev_seq, prev_mac = (last.seq, last.mac) if last else (0, mac.GENESIS)
    mine = conn.info.get(_PENDING)
    if last is not None and (mine is None or mine.seq != prev_seq):
        _advance(anchor.Head(prev_seq, prev_mac, prev_seq))  # committed: we hold the append lock
    if detail is not None:
        detail = _masked(orjson.loads(orjson.dumps(detail, option=orjson.OPT_NON_STR_KEYS)))
    row = {"seq": prev_seq + 1, "at": datetime.now(_TZ).replace(tzinfo=None), "username": actor.username,
           "role": actor.role, "org_code": actor.org_code, "department": actor.department,
           "address": actor.address, "action": action, "person_id": person_id,
           "authorization": authorization, "target": mask_text(target) if target is not None else None,
           "detail": detail, "flagged": bool(flagged)}
    row["mac"] = mac.link(key, prev_mac, row)
    conn.execute(insert(AuditEvent).values(**row))
    conn.info[_PENDING] = anchor.Head(row["seq"], row["mac"], row["seq"])
    return row["seq"]


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


@event.listens_for(Engine, "commit")
def _on_commit(conn: Connection) -> None:
    if (head := conn.info.pop(_PENDING, None)) is not None:
        conn.info[_COMMITTING] = head


@event.listens_for(Engine, "rollback")
def _on_rollback(conn: Connection) -> None:
    conn.info.pop(_PENDING, None)
    conn.info.pop(_COMMITTING, None)


@event.listens_for(Engine, "rollback_savepoint")
def _on_rollback_savepoint(conn: Connection, name: str, context: Any) -> None:
    conn.info.pop(_PENDING, None)  # anchoring less than was written is safe; more is not


@event.listens_for(Engine, "handle_error")
def _on_error(context: Any) -> None:
    try:
        context.connection.info.pop(_COMMITTING, None)
    except Exception:  # noqa: BLE001 - no connection, or an invalidated one: nothing to anchor
        pass


@event.listens_for(Pool, "checkin")
def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    if record is not None and (head := record.info.pop(_COMMITTING, None)) is not None:
        _advance(head)

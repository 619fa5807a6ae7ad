"""Reading the trail: the auditor's search and review queue, and a resident's "who read my
record" list (谁看过我的档案). A review is an event of its own (``audit.review``) naming the
reviewed ``seq`` in ``target``; rows are never updated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, String, and_, exists, select

from .actor import Actor
from .errors import AuditError
from .tables import AuditEvent
from .trail import append, lock

REVIEW = "audit.review"
#: verdict → label on the auditor's page
VERDICTS = {"appropriate": "合规", "inappropriate": "违规"}
_t = AuditEvent.__table__


def _rows(engine: Engine, query: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def search(engine: Engine, *, person_id: str | None = None, username: str | None = None,
           org_code: str | None = None, action_prefix: str | None = None, flagged: bool | None = None,
           since: datetime | None = None, until: datetime | None = None, limit: int = 100,
           offset: int = 0) -> list[dict[str, Any]]:
    """Events matching every filter given, newest first; ``until`` is exclusive."""
    q = select(_t)
    for column, value in (("person_id", person_id), ("username", username), ("org_code", org_code),
                          ("flagged", flagged)):
        if value is not None:
            q = q.where(_t.c[column] == value)
    if action_prefix:
        q = q.where(_t.c.action.startswith(action_prefix, autoescape=True))
    if since is not None:
        q = q.where(_t.c.at >= since)
    if until is not None:
        q = q.where(_t.c.at < until)
    return _rows(engine, q.order_by(_t.c.seq.desc()).limit(limit).offset(offset))


def _review_of(event: Any) -> Any:
    return and_(event.c.action == REVIEW, event.c.target == "audit:" + _t.c.seq.cast(String))


def pending_reviews(engine: Engine, limit: int = 200) -> list[dict[str, Any]]:
    """Flagged events (break-the-glass reads…) no auditor has reviewed yet, oldest first."""
    r = _t.alias("r")
    q = (select(_t).where(_t.c.flagged.is_(True), _t.c.action != REVIEW, ~exists().where(_review_of(r)))
         .order_by(_t.c.seq).limit(limit))
    return _rows(engine, q)


def review(engine: Engine, auditor: Actor, seq: int, verdict: str, note: str | None = None) -> int:
    """Record the auditor's verdict on flagged event ``seq``; returns the review event's seq."""
    if auditor.role != "auditor":
        raise AuditError("AUDIT_FORBIDDEN", "只有审计员可以审核调阅记录")
    if verdict not in VERDICTS:
        raise AuditError("BAD_VERDICT", f"审核结论“{verdict}”无效，应为：{'、'.join(VERDICTS)}", "verdict")
    with engine.begin() as conn:
        lock(conn)  # two auditors cannot both review one event
        event = conn.execute(select(_t).where(_t.c.seq == seq)).mappings().first()
        if event is None:
            raise AuditError("AUDIT_EVENT_NOT_FOUND", f"审计记录 {seq} 不存在", "seq")
        if not event["flagged"] or event["action"] == REVIEW:
            raise AuditError("AUDIT_NOT_FLAGGED", f"审计记录 {seq} 无需审核", "seq")
        done = conn.execute(select(_t.c.seq).where(_t.c.action == REVIEW, _t.c.target == f"audit:{seq}")).first()
        if done is not None:
            raise AuditError("AUDIT_ALREADY_REVIEWED", f"审计记录 {seq} 已由记录 {done.seq} 审核", "seq")
        return append(conn, auditor, REVIEW, person_id=event["person_id"], target=f"audit:{seq}",
                      detail={"verdict": verdict, "note": note})


def for_person(engine: Engine, person_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """Who read or changed this person's record, newest first (the resident's own access log)."""
    q = (select(_t.c.seq, _t.c.at, _t.c.username, _t.c.role, _t.c.org_code, _t.c.department, _t.c.action,
                _t.c.authorization, _t.c.target, _t.c.flagged)
         .where(_t.c.person_id == person_id, _t.c.action != REVIEW).order_by(_t.c.seq.desc()).limit(limit))
    return _rows(engine, q)

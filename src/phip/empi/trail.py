"""The EMPI's changes in the one audit trail (phip.audit): every ``empi_events`` row is
carried by a trail event (``empi.<action>``, target ``empi_event:<id>``) holding an SM3
digest of ALL its columns. Setting ``reverted_by`` later appends ``empi.event.reverted`` with
the new digest. ``verify`` checks the trail, then that each row matches the newest digest the
trail holds for it: an edited, deleted or unaudited row is named by its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from phip.audit import Actor
from phip.audit.mac import digest as sm3_digest
from phip.audit.tables import AuditEvent
from phip.audit.trail import append_many
from phip.audit.verify import Verdict as TrailVerdict
from phip.audit.verify import verify as verify_trail

from .tables import EmpiEvent

COLUMNS = ("id", "action", "at", "actor", "reason", "person_id", "other_id", "review_id", "reverts", "reverted_by",
           "detail")
TARGET = "empi_event:"
REVERTED = "empi.event.reverted"
#: actors that are processes, not persons (phip.empi.relink's default)
SYSTEM_ACTORS = frozenset({"relink", "system"})


def digest(row: Mapping[str, Any]) -> str:
    return sm3_digest({c: row.get(c) for c in COLUMNS})


def actor_of(name: str) -> Actor:
    return Actor(name, "system" if name in SYSTEM_ACTORS else "operator")


def _trail_event(row: Mapping[str, Any], reverted: bool = False, by: str | None = None,
                 **kw: Any) -> tuple[Actor, str, dict[str, Any]]:
    detail = {"digest": digest(row), "other_id": row["other_id"], "reverts": row["reverts"],
              "reverted_by": row["reverted_by"], "review_id": row["review_id"], **kw.pop("detail", {})}
    action = REVERTED if reverted else f"empi.{row['action']}"
    return actor_of(by or row["actor"]), action, {"person_id": row["person_id"], "target": f"{TARGET}{row['id']}",
                                            "detail": detail, **kw}


def _rows(conn: Connection, ids: Iterable[int]) -> list[Mapping[str, Any]]:
    e = EmpiEvent.__table__
    if not (ids := list(ids)):
        return []
    return list(conn.execute(select(*[e.c[c] for c in COLUMNS]).where(e.c.id.in_(ids)).order_by(e.c.id)).mappings())


def record(conn: Connection, ids: Iterable[int], reverted: Iterable[int] = ()) -> None:
    """Append trail events for new EMPI events ``ids`` and for ``reverted`` ones (their
    ``reverted_by`` just set), as the rows stand now, inside the change's transaction."""
    new, old = _rows(conn, sorted(set(ids))), _rows(conn, sorted(set(reverted)))
    by = {r["id"]: r["actor"] for r in new}  # a reverted event is changed by whoever undid it
    events = [_trail_event(r) for r in new]
    events += [_trail_event(r, reverted=True, by=by.get(r["reverted_by"], r["actor"])) for r in old]
    append_many(conn, events)


def carry(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Carry events written before the trail into it, in id order (migration 0010): the
    event's own time, and its old SHA-256 ``hash`` kept in the detail for reference."""
    events = [_trail_event(r, detail={"carried": True, "legacy_hash": r.get("hash")}, at=r["at"]) for r in rows]
    append_many(conn, events)
    return len(events)


@dataclass
class Verdict:
    trail: TrailVerdict
    checked: int = 0  # empi_events rows found matching their trail event
    code: str | None = None
    message: str | None = None
    event_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.trail.ok and self.code is None


def verify(engine: Engine) -> Verdict:
    """The trail's own check, then every ``empi_events`` row against its newest trail digest."""
    verdict = Verdict(trail=verify_trail(engine))
    if not verdict.trail.ok:
        return verdict
    a, e = AuditEvent.__table__, EmpiEvent.__table__
    expected: dict[int, str] = {}
    with engine.connect() as conn:
        trail = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            select(a.c.target, a.c.detail).where(a.c.target.startswith(TARGET)).order_by(a.c.seq))
        for target, detail in trail:
            expected[int(target[len(TARGET):])] = (detail or {}).get("digest")
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            select(*[e.c[c] for c in COLUMNS]).order_by(e.c.id))
        for row in rows.mappings():
            want = expected.pop(row["id"], None)
            if want is None:
                verdict.code, verdict.event_id = "EMPI_EVENT_UNAUDITED", row["id"]
                verdict.message = f"操作记录 {row['id']} 不在审计日志中（绕过平台写入）"
                return verdict
            if want != digest(row):
                verdict.code, verdict.event_id = "EMPI_EVENT_ALTERED", row["id"]
                verdict.message = f"操作记录 {row['id']} 与审计日志中的摘要不符（被修改）"
                return verdict
            verdict.checked += 1
    if expected:
        verdict.code, verdict.event_id = "EMPI_EVENT_DELETED", min(expected)
        verdict.message = f"操作记录 {min(expected)} 已被删除（审计日志中有它，表中没有）"
    return verdict

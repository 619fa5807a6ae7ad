"""The one call accounts and sharing make into the audit trail (审计留痕): the session's user
as the trail's :class:`~phip.audit.Actor`, appended in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from phip.audit import SYSTEM, Actor, append

from .sessions import SessionInfo


def actor_of(who: SessionInfo | None, address: str | None = None) -> Actor:
    if who is None:
        return Actor(SYSTEM.username, SYSTEM.role, address=address)
    return Actor(who.username, who.role, who.org_code, who.department, address)


def audit(conn: Connection, who: SessionInfo | None, action: str, *, address: str | None = None,
          person_id: str | None = None, authorization: int | None = None, target: str | None = None,
          detail: dict[str, Any] | None = None, flagged: bool = False) -> int:
    """Append an event in the caller's transaction; returns its sequence number."""
    return append(conn, actor_of(who, address), action, person_id=person_id,
                  authorization=None if authorization is None else str(authorization), target=target,
                  detail=detail, flagged=flagged)

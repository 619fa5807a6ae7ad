"""The one call accounts and sharing make into the audit trail (审计留痕)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from .sessions import SessionInfo


def audit(conn: Connection, who: SessionInfo | None, action: str, *, address: str | None = None,
          person_id: str | None = None, authorization: int | None = None, target: str | None = None,
          detail: dict[str, Any] | None = None, flagged: bool = False) -> None:
    """Append an event in the caller's transaction (phip.audit once merged)."""
    return None

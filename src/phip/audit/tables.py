"""The audit trail table (审计日志): append-only, one dense ``seq`` per event, each row's
``mac`` chaining it to the previous one (phip.audit.mac)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, Document


class AuditEvent(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    org_code: Mapped[str | None] = mapped_column(String(32))
    department: Mapped[str | None] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(String(32))
    authorization: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict | None] = mapped_column(Document)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    #: HMAC-SM3 of the previous row's mac and this row's every column (phip.audit.mac)
    mac: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_person", "person_id", "seq"),
        Index("ix_audit_events_username", "username", "seq"),
        Index("ix_audit_events_org", "org_code", "seq"),
        Index("ix_audit_events_target", "target"),
        Index("ix_audit_events_flagged", "flagged", "seq"),
    )


#: The columns the MAC covers, in the canonical document: every column but ``mac`` itself.
COLUMNS = tuple(c.name for c in AuditEvent.__table__.columns if c.name != "mac")

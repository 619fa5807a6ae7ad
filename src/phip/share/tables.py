"""Sharing tables: the authorizations (授权) a reader's access rests on, and the one-time
authorization codes residents hand out at a visit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId


class ShareAuthorization(Base):
    """One authorization: consent (授权同意), code (授权码) or break-the-glass (紧急调阅).

    Scope: ``source_orgs`` (whose records; NULL all), ``categories`` (NULL all) and who reads:
    ``reader_orgs`` (NULL any institution) and, for break-the-glass, the one ``reader_user``.
    Checked on every request; revoking sets ``revoked_at`` and access ends at once."""

    __tablename__ = "share_authorizations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(12))  # consent | code | break_glass
    source_orgs: Mapped[list | None] = mapped_column(JSON)
    categories: Mapped[list | None] = mapped_column(JSON)
    reader_orgs: Mapped[list | None] = mapped_column(JSON)
    reader_user: Mapped[str | None] = mapped_column(String(50))
    granted_by: Mapped[str] = mapped_column(String(50))
    reason_code: Mapped[str | None] = mapped_column(String(20))
    reason_text: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(50))

    __table_args__ = (Index("ix_share_authorizations_person", "person_id", "expires_at"),)


class ShareCode(Base):
    """A one-time authorization code (6 digits, 10 minutes, single use), stored salted and hashed."""

    __tablename__ = "share_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(100))
    source_orgs: Mapped[list | None] = mapped_column(JSON)
    categories: Mapped[list | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    used_by: Mapped[str | None] = mapped_column(String(50))
    authorization_id: Mapped[int | None] = mapped_column(BigId)
    failures: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_share_codes_person", "person_id", "expires_at"),)

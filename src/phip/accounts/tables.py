"""Accounts (账户) of every role and their sessions, declared on the shared metadata.

One ``users`` table for operators, regional readers, clinicians, residents and auditors: a
regional reader (区域卫健委) names its city or county code; a clinician names its institution
and department; a resident names only the EMPI person it is (``person_id``): the
ID number stays with the EMPI, which already holds it, so the account stores nothing more.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId


class User(Base):
    """A person who logs in. Passwords are argon2id hashes (argon2-cffi)."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(50), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(50))
    role: Mapped[str] = mapped_column(String(20))  # operator | regional | clinician | resident | auditor
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    org_code: Mapped[str | None] = mapped_column(String(32))  # clinician: the institution (机构)
    department: Mapped[str | None] = mapped_column(String(50))  # clinician: the department (科室)
    person_id: Mapped[str | None] = mapped_column(String(32), unique=True)  # resident: the EMPI person
    region_code: Mapped[str | None] = mapped_column(String(6))  # regional: the city or county it reads (GB/T 2260)


class WebSession(Base):
    """A login session. Only the SHA-256 of the cookie token is stored; the CSRF token is per session."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(50), ForeignKey("users.username"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class AccountCode(Base):
    """A one-time code sent to a resident to set the password on first use (首次设置密码).
    Stored as a salted SHA-256; single use; a few wrong tries spend it."""

    __tablename__ = "account_codes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_account_codes_person", "person_id", "created_at"),)

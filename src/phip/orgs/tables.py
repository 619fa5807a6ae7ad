"""Register tables, declared on the shared metadata (gathered by :mod:`phip.schema`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId


class InstitutionChange(Base):
    """One changed field of one institution (机构变更记录): who, when, old and new value.
    ``action`` is add | update | close | reopen | import | reply."""

    __tablename__ = "institution_changes"
    __table_args__ = (Index("ix_institution_changes_org", "org_code", "changed_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_code: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    changed_by: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(10))
    field: Mapped[str] = mapped_column(String(30))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)

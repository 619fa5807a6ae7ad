"""The city platform's outbox (发往省平台的待发记录), declared on the shared metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId


class OutboxRow(Base):
    """One accepted record version waiting for (or done with) the province. Written in the
    batch's own transaction, so a record is stored and queued together or not at all; sent in
    id order, marked sent only on the province's receipt. ``findings`` set: the province
    refused it (kept for the city's operator)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_code: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(40))
    record_key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)  # the city's version: the province skips ones it has
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    tried_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    findings: Mapped[Any | None] = mapped_column(JSON)

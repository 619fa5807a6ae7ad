"""EMPI tables (declared on the store's Base; imported at the end of phip.store.models).

* ``empi_blocks`` — the candidate index: one row per (blocking key, person); a real-time
  lookup is one ``key IN (…)`` query on the primary key.
* ``empi_reviews`` — the review queue (人工审核队列): a pair of persons with the evidence.
* ``empi_events`` — every identity change, with what is needed to undo it; each row is
  carried by an event of the audit trail (phip.empi.trail).
* ``empi_models`` — trained models (Splink JSON) and their thresholds; one is active.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId, Document, key_text


class EmpiBlock(Base):
    __tablename__ = "empi_blocks"
    key: Mapped[str] = mapped_column(key_text(96), primary_key=True)
    person_id: Mapped[str] = mapped_column(key_text(32), primary_key=True)

    __table_args__ = (Index("ix_empi_blocks_person", "person_id"),)


class EmpiReview(Base):
    __tablename__ = "empi_reviews"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # possible_match | id_conflict
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | linked | rejected | merged
    pair_key: Mapped[str] = mapped_column(String(80), unique=True)  # kind:min:max — one item per pair
    person_id: Mapped[str] = mapped_column(String(32), index=True)  # the newer person (the record's)
    candidate_id: Mapped[str] = mapped_column(String(32), index=True)  # the existing person
    probability: Mapped[float | None] = mapped_column(Float)
    weight: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[list | None] = mapped_column(Document)
    org_code: Mapped[str | None] = mapped_column(String(32))
    dataset: Mapped[str | None] = mapped_column(String(40))
    record_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_empi_reviews_status_created", "status", "created_at"),)


class EmpiEvent(Base):
    """Append-only: an undo is a new event that names the one it reverts."""

    __tablename__ = "empi_events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(20))  # merge | unmerge | split | link | reject | relink
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))
    person_id: Mapped[str | None] = mapped_column(String(32), index=True)  # survivor / source
    other_id: Mapped[str | None] = mapped_column(String(32), index=True)  # retired / new person
    review_id: Mapped[int | None] = mapped_column(BigId)
    reverts: Mapped[int | None] = mapped_column(BigId)
    reverted_by: Mapped[int | None] = mapped_column(BigId)
    detail: Mapped[dict | None] = mapped_column(Document)


class EmpiModel(Base):
    __tablename__ = "empi_models"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    trained_on: Mapped[str] = mapped_column(String(200))
    persons: Mapped[int] = mapped_column(Integer)
    link_threshold: Mapped[float] = mapped_column(Float)
    review_threshold: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict] = mapped_column(Document)

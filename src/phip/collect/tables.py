"""Tables of pull collection on the platform store (never on a source).

* ``collect_sources``: per source, the lease (who is running it, until when) and the schedule
  state (next run, consecutive failures, last error). The lease is what keeps two workers off
  the same source.
* ``collect_cursors``: per source and job, the watermark — the highest cursor value whose
  batch the pipeline has committed.
* ``collect_runs``: one row per job per run, with its counts and error: what
  ``phip collect status`` shows.
* ``collect_chunks``: per source and job in change-detection mode (``change_detection:
  checksum``), one row per key range (chunk) of the source table: its lower key bound, and the
  row count and checksum the source computed for it before the platform last read it. Written
  only after that read's records are committed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId


class CollectSource(Base):
    __tablename__ = "collect_sources"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(32))
    lease_holder: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CollectCursor(Base):
    __tablename__ = "collect_cursors"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # time | id
    value: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CollectRun(Base):
    __tablename__ = "collect_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    job: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(40))
    holder: Mapped[str] = mapped_column(String(120))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12))  # running | ok | failed | interrupted
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    rows_read: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    warnings: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    cursor_from: Mapped[str | None] = mapped_column(String(64))
    cursor_to: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(1000))
    # incremental | full | backfill (first run, or --backfill: history loaded as history) | checksum
    mode: Mapped[str | None] = mapped_column(String(12))
    chunks: Mapped[int | None] = mapped_column(Integer)  # checksum mode: chunks compared …
    chunks_changed: Mapped[int | None] = mapped_column(Integer)  # … and re-read

    __table_args__ = (Index("ix_collect_runs_source_job", "source", "job", "id"),)


class CollectChunk(Base):
    """One key range of a change-detection job: ``[lo, hi)``; the first chunk's
    ``lo`` is ``""`` (no lower bound), the last has no upper bound (``hi`` NULL); each row keeps both bounds. ``lo`` holds the key as
    JSON (a list: one value per key column)."""

    __tablename__ = "collect_chunks"
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    lo: Mapped[str] = mapped_column(String(200), primary_key=True)
    hi: Mapped[str | None] = mapped_column(String(200))  # the upper bound, excluded; None: none
    rows: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(40))
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

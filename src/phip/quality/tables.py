"""Quality tables, declared on the shared metadata (imported at the end of store/models.py).

A run (``quality_runs``) analyses one institution over a range of event days. Its findings
(``quality_findings``) and scores (``quality_scores``) replace those of earlier runs for the
same institution, data set and days, in the same transaction per data set, so a run killed
half-way leaves every data set either fully old or fully new: never doubled, never missing.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId


class QualityRun(Base):
    """One analysis run (质控分析) of an institution; ``finished_at`` marks it complete."""

    __tablename__ = "quality_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(32), index=True)
    dataset: Mapped[str | None] = mapped_column(String(40))  # None: every data set
    day_from: Mapped[date] = mapped_column(Date)
    day_to: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    records: Mapped[int] = mapped_column(Integer, default=0)
    findings: Mapped[int] = mapped_column(Integer, default=0)
    # set on the last run of a pass over the analysis windows (phip.quality.window), once all
    # its runs finished: the event days of batches received before it have been analysed
    received_until: Mapped[datetime | None] = mapped_column(DateTime)


class QualityFinding(Base):
    """A rule's finding about one stored record (or, for share rules, about a data set-day)."""

    __tablename__ = "quality_findings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32))
    org_code: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)  # event day of the record
    record_id: Mapped[int | None] = mapped_column(BigId)
    record_key: Mapped[str | None] = mapped_column(String(200))
    rule_id: Mapped[str] = mapped_column(String(60))
    code: Mapped[str] = mapped_column(String(40))
    dimension: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    field: Mapped[str | None] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(String(500))
    detail: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_quality_findings_scope", "org_code", "dataset", "day"),
        Index("ix_quality_findings_org_created", "org_code", "created_at"),
        Index("ix_quality_findings_record", "record_key"),
    )


class QualityScore(Base):
    """Score of one dimension for institution × data set × event day: 100 × (1 − failed/checked)."""

    __tablename__ = "quality_scores"
    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    checked: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float] = mapped_column(Float)

"""Report tables, declared on the shared metadata (imported at the end of store/models.py)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from phip.store.models import Base, BigId, EventDaily, IngestDaily

# A period report filters the counters by day across every institution: without these the
# primary keys (institution first) make it read every counter row ever kept.
Index("ix_ingest_daily_day", IngestDaily.day)
Index("ix_event_daily_day", EventDaily.day)


class MeasureDaily(Base):
    """Counter kept by the pipeline: institution × measure × day (e.g. discharges by discharge
    day, hypertension visits). Measures are data (reports/data/measures.yaml)."""

    __tablename__ = "measure_daily"
    __table_args__ = (Index("ix_measure_daily_day", "day"),)
    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    measure: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportedFigure(Base):
    """What an institution reported to the statistics system (卫生统计直报) for a period: the
    denominator of the upload rate. NULL means "not reported", 0 means "reported zero"."""

    __tablename__ = "reported_figures"
    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    period_end: Mapped[date] = mapped_column(Date)
    outpatient_visits: Mapped[int | None] = mapped_column(BigInteger)
    discharges: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(DateTime)


class RegionContact(Base):
    """Part one of the reply form (对接工作回执): the region's health commission contacts."""

    __tablename__ = "region_contacts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    name: Mapped[str] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(50))
    office_phone: Mapped[str | None] = mapped_column(String(30))
    mobile: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class AnalysedMark(Base):
    """Onboarding stage three (数据分析): set when a quality run of the institution completes."""

    __tablename__ = "onboarding_analysed"
    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_analysed_at: Mapped[datetime] = mapped_column(DateTime)
    last_analysed_at: Mapped[datetime] = mapped_column(DateTime)
    last_run_id: Mapped[str] = mapped_column(String(32))
    runs: Mapped[int] = mapped_column(Integer, default=1)

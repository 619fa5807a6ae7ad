"""Resident health-record figures (健康档案上传量: 基本信息 / 高血压 / 糖尿病) per institution and
period, from the extension data sets of the standard, for the upload statistics.

- 基本信息: resident basic-information records (``resident_profile``) whose information date
  (建档或信息更新日期时间, the data set's event time) falls in the period;
- 高血压: hypertension follow-ups (``hypertension_followup``) dated in the period plus
  hypertension management enrolments (``chronic_disease_enrolment`` with disease 1) enrolled in
  the period;
- 糖尿病: the same for type-2 diabetes (disease 2).

Counted from counters only (``event_daily`` and ``measure_daily``), never from ``records``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select

from phip.store.models import EventDaily

from .period import Period
from .tables import MeasureDaily

BASIC_DATASETS = ("resident_profile",)
#: figure -> (follow-up data sets counted in event_daily, enrolment measures in measure_daily)
CHRONIC_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hypertension": (("hypertension_followup",), ("hypertension_enrolment",)),
    "diabetes": (("diabetes_followup",), ("diabetes_enrolment",)),
}


@dataclass(frozen=True)
class HealthRecordCounts:
    basic: int = 0
    hypertension: int = 0
    diabetes: int = 0


def _sum(conn: Connection, table, key_col, keys: Iterable[str], period: Period,  # noqa: ANN001
         orgs: tuple[str, ...] | None) -> dict[str, int]:
    stmt = select(table.org_code, func.sum(table.records)).where(
        table.day >= period.start, table.day <= period.end, key_col.in_(tuple(keys)))
    if orgs is not None:
        stmt = stmt.where(table.org_code.in_(orgs))
    return {org: int(n or 0) for org, n in conn.execute(stmt.group_by(table.org_code))}


def health_record_counts(engine: Engine, period: Period, org_codes: Iterable[str] | None = None) -> dict[str, HealthRecordCounts]:
    """Per institution code: the 基本信息 / 高血压 / 糖尿病 figures of the period (institutions
    without any are absent; read a missing one as zeros)."""
    orgs = tuple(org_codes) if org_codes is not None else None
    with engine.connect() as conn:
        basic = _sum(conn, EventDaily, EventDaily.dataset, BASIC_DATASETS, period, orgs)
        chronic: dict[str, dict[str, int]] = {}
        for figure, (datasets, measures) in CHRONIC_SOURCES.items():
            counts = _sum(conn, EventDaily, EventDaily.dataset, datasets, period, orgs)
            for org, n in _sum(conn, MeasureDaily, MeasureDaily.measure, measures, period, orgs).items():
                counts[org] = counts.get(org, 0) + n
            chronic[figure] = counts
    codes = set(basic) | set(chronic["hypertension"]) | set(chronic["diabetes"])
    return {c: HealthRecordCounts(basic.get(c, 0), chronic["hypertension"].get(c, 0), chronic["diabetes"].get(c, 0))
            for c in sorted(codes)}

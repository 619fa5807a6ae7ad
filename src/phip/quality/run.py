"""Analysis runs (质控分析): read stored records of one institution, write findings and scores.

A run covers one institution, all data sets (or one), and a window of event days. For each
data set it executes every rule instance, then — in ONE transaction — replaces the findings
and scores of that institution × data set × days. So a run killed half-way leaves each data
set either as the previous run left it or fully re-analysed, and running again repairs it:
no duplicate and no gap. When every data set is done the run is marked finished and the
institution reaches the onboarding stage "data analysed" (数据分析：完成).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import Date, Engine, delete, func, insert, select, update

from phip.reports.tables import AnalysedMark
from phip.standard.catalog import load_standard
from phip.standard.validate import platform_now
from phip.store.models import Institution, Record
from phip.store.sql import bulk_insert, lock_key

from .checks import CHECKS, Hit, Scope, Sql
from .supervision_checks import CHECKS as SUPERVISION_CHECKS
from .rules import RuleSet, load_rules

ALL_CHECKS = {**CHECKS, **SUPERVISION_CHECKS}
from .tables import QualityFinding, QualityRun, QualityScore


@dataclass
class RunResult:
    run_id: str
    org_code: str
    day_from: date
    day_to: date
    records: int = 0
    findings: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


def _message(rules: RuleSet, hit: Hit) -> str:
    return rules.codes[hit.code].message.format(**hit.params)[:500]


def datasets_with_records(engine: Engine, org_code: str, start: datetime, end: datetime) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(Record.dataset).where(Record.org_code == org_code, Record.event_time >= start, Record.event_time < end)
            .group_by(Record.dataset)
        ).scalars())


def connection_time(engine: Engine, org_code: str) -> datetime | None:
    """When the institution counts as connected (接入) for timeliness: the later of its docking
    start date (对接开始时间, from the reply form) and the day of its first upload (the onboarding
    stage "data uploading"); None when neither is known. Events before it are history: they
    could not have been sent on time, whenever they arrive (a back-fill), so QC_LATE_UPLOAD
    judges only events from that day on."""
    with engine.connect() as conn:
        row = conn.execute(select(Institution.docking_start, Institution.first_upload_at)
                           .where(Institution.code == org_code)).first()
    if row is None:
        return None
    days = [d for d in (row.docking_start, row.first_upload_at.date() if row.first_upload_at else None) if d]
    return datetime.combine(max(days), time()) if days else None


def analyse(
    engine: Engine, org_code: str, day_from: date, day_to: date, *, dataset: str | None = None,
    as_of: datetime | None = None, rules: RuleSet | None = None,
    on_dataset: Callable[[str, int], None] | None = None, mark: bool = True,
) -> RunResult:
    """Analyse ``org_code``'s records with event days in [day_from, day_to].

    A run replaces only its rule set's findings (by code) and scores (by dimension), so the
    supervision set (``load_supervision_rules``) and quality run side by side on one data set;
    ``mark=False`` leaves the onboarding stage "data analysed" alone."""
    only_covered = rules is not None  # another rule set: only the data sets it has rules for
    rules = rules or load_rules()
    std = load_standard()
    as_of = as_of or platform_now()
    start, end = datetime.combine(day_from, time()), datetime.combine(day_to + timedelta(days=1), time())
    run = RunResult(uuid.uuid4().hex, org_code, day_from, day_to)
    codes = [std.dataset(dataset).code] if dataset else datasets_with_records(engine, org_code, start, end)
    if only_covered:
        codes = [ds for ds in codes if rules.for_dataset(ds)]
        if not codes:
            return run  # nothing this rule set reads: no run recorded
    with engine.begin() as conn:
        conn.execute(insert(QualityRun), [{"id": run.run_id, "org_code": org_code, "dataset": dataset, "day_from": day_from,
                                           "day_to": day_to, "started_at": platform_now(), "records": 0, "findings": 0}])
    sql = Sql(engine.dialect.name)
    connected = connection_time(engine, org_code)
    for ds in codes:
        scope = Scope(org_code, ds, start, end, as_of, connected)
        with engine.begin() as conn:
            lock_key(conn, f"quality/{org_code}/{ds}")  # two runs of one institution (worker and CLI) replace in turn
            hits: list[Hit] = []
            for rule in rules.for_dataset(ds):
                hits.extend(ALL_CHECKS[rule.type](conn, sql, scope, rule))
            day_expr = func.date(Record.event_time) if engine.dialect.name == "sqlite" else func.cast(Record.event_time, Date)
            per_day = dict(conn.execute(
                select(day_expr, func.count())
                .where(Record.org_code == org_code, Record.dataset == ds, Record.event_time >= start, Record.event_time < end)
                .group_by(day_expr)
            ).all())
            checked = {_as_date(d): n for d, n in per_day.items()}
            _replace(conn, rules, run, scope, hits, checked, day_from, day_to)
        run.records += sum(checked.values())
        run.findings += len(hits)
        for h in hits:
            run.by_code[h.code] = run.by_code.get(h.code, 0) + 1
        if on_dataset:
            on_dataset(ds, len(hits))
    finished = platform_now()
    with engine.begin() as conn:
        conn.execute(update(QualityRun).where(QualityRun.id == run.run_id)
                     .values(finished_at=finished, records=run.records, findings=run.findings))
        if mark:
            _mark_analysed(conn, org_code, run.run_id, finished)
    return run


def _replace(conn, rules: RuleSet, run: RunResult, scope: Scope, hits: list[Hit],  # noqa: ANN001
             checked: dict[date, int], day_from: date, day_to: date) -> None:
    where = (QualityFinding.org_code == scope.org_code, QualityFinding.dataset == scope.dataset,
             QualityFinding.day >= day_from, QualityFinding.day <= day_to, QualityFinding.code.in_(list(rules.codes)))
    conn.execute(delete(QualityFinding).where(*where))
    conn.execute(delete(QualityScore).where(QualityScore.org_code == scope.org_code, QualityScore.dataset == scope.dataset,
                                            QualityScore.day >= day_from, QualityScore.day <= day_to,
                                            QualityScore.dimension.in_(list(rules.dimensions))))
    failed: dict[tuple[date, str], set] = {}
    for h in hits:
        failed.setdefault((h.event_time.date(), rules.codes[h.code].dimension), set()).add(h.record_id or h.record_key)
    bulk_insert(conn, QualityFinding.__table__, finding_rows(rules, run.run_id, scope, hits))
    scores = []
    for day, n in sorted(checked.items()):
        for dim in rules.dimensions_of(scope.dataset):
            bad = len(failed.get((day, dim), ()))
            scores.append({"org_code": scope.org_code, "dataset": scope.dataset, "day": day, "dimension": dim,
                           "checked": n, "failed": bad, "score": round(100.0 * (1 - bad / n), 2) if n else 100.0})
    if scores:
        conn.execute(insert(QualityScore), scores)


def finding_rows(rules: RuleSet, run_id: str, scope: Scope, hits: list[Hit]) -> list[dict[str, object]]:
    """``quality_findings`` rows of ``hits`` (a run's, or a batch's as it arrives)."""
    now = platform_now()
    return [{"run_id": run_id, "org_code": scope.org_code, "dataset": scope.dataset, "day": h.event_time.date(),
             "record_id": h.record_id, "record_key": h.record_key, "rule_id": _rule_of(rules, scope.dataset, h.code),
             "code": h.code, "dimension": rules.codes[h.code].dimension, "severity": rules.codes[h.code].severity,
             "field": h.field, "message": _message(rules, h),
             "detail": {k: v for k, v in h.params.items() if k != "label"} or None, "created_at": now}
            for h in hits]


def _rule_of(rules: RuleSet, dataset: str, code: str) -> str:
    return next((r.rule_id for r in rules.for_dataset(dataset) if code in r.codes), "")


def _mark_analysed(conn, org_code: str, run_id: str, at: datetime) -> None:  # noqa: ANN001
    lock_key(conn, f"analysed/{org_code}")
    if conn.execute(select(AnalysedMark.org_code).where(AnalysedMark.org_code == org_code)).first():
        conn.execute(update(AnalysedMark).where(AnalysedMark.org_code == org_code)
                     .values(last_analysed_at=at, last_run_id=run_id, runs=AnalysedMark.runs + 1))
    else:
        conn.execute(insert(AnalysedMark), [{"org_code": org_code, "first_analysed_at": at, "last_analysed_at": at,
                                             "last_run_id": run_id, "runs": 1}])


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])

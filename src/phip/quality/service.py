"""Read side of quality control for the dashboard, the CLI and the feedback API: scores,
top findings and the findings browser. Examples are read from the stored record and masked
(names, ID numbers, phones) before they leave this module."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, desc, func, select

from phip.standard.catalog import load_standard
from phip.store.models import Institution, Record, RejectedRecord
from phip.privacy import PERSON_FIELD_MASKS

from .rules import load_rules, load_supervision_rules
from .tables import QualityFinding, QualityScore


@dataclass
class FindingView:
    id: int
    org_code: str
    dataset: str
    dataset_name: str
    day: date
    record_key: str | None
    code: str
    dimension: str
    dimension_name: str
    severity: str
    field: str | None
    message: str
    created_at: datetime
    example: dict[str, str]
    org_name: str = ""  # the institution's name: users read names, codes are beside them
    code_name: str = ""  # the finding code's Chinese name (问题名称)


def _example(standard, dataset: str, payload: dict[str, Any] | None, role: str) -> dict[str, str]:  # noqa: ANN001
    if not payload:
        return {}
    person = standard.dataset(dataset).person
    out = {}
    for person_role, label in (("name", "姓名"), ("id_no", "证件号码"), ("phone", "电话")):
        if person_role in person and payload.get(person[person_role]):
            out[label] = PERSON_FIELD_MASKS[person_role](payload[person[person_role]], role)
    return out


def find(
    engine: Engine, *, org_code: str | None = None, dataset: str | None = None, dimension: str | None = None,
    code: str | None = None, since: datetime | None = None, day_from: date | None = None, day_to: date | None = None,
    page: int = 1, size: int = 50, role: str = "operator", examples: bool = True,
    within: Collection[str] | None = None,
) -> tuple[list[FindingView], int]:
    """A page of findings, newest first, with masked examples; and the total count. ``within``
    keeps a regional reader's institutions only (:func:`phip.orgs.service.region_orgs`)."""
    f = QualityFinding
    where = []
    if org_code:
        where.append(f.org_code == org_code)
    if within is not None:
        where.append(f.org_code.in_(within))
    if dataset:
        where.append(f.dataset == dataset)
    if dimension:
        where.append(f.dimension == dimension)
    if code:
        where.append(f.code == code)
    if since:
        where.append(f.created_at >= since)
    if day_from:
        where.append(f.day >= day_from)
    if day_to:
        where.append(f.day <= day_to)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(f).where(*where)).scalar_one()
        rows = conn.execute(select(f.__table__).where(*where).order_by(desc(f.day), f.id).limit(size).offset((page - 1) * size)).all()
        payloads: dict[int, dict] = {}
        ids = [r.record_id for r in rows if r.record_id is not None]
        if examples and ids:
            payloads = dict(conn.execute(select(Record.id, Record.payload).where(Record.id.in_(ids))).all())
        orgs = dict(conn.execute(select(Institution.code, Institution.name)
                                 .where(Institution.code.in_({r.org_code for r in rows}))).all()) if rows else {}
    std, codes, dimensions = load_standard(), code_names(), dimension_names()
    views = [FindingView(r.id, r.org_code, r.dataset, std.dataset(r.dataset).name, r.day, r.record_key, r.code, r.dimension,
                         dimensions.get(r.dimension, r.dimension), r.severity, r.field, r.message, r.created_at,
                         _example(std, r.dataset, payloads.get(r.record_id), role), orgs.get(r.org_code, r.org_code),
                         codes.get(r.code, r.code)) for r in rows]
    return views, total


@cache  # the rule files are read once per process (load_rules is cached too)
def code_names() -> dict[str, str]:
    """Every finding code of the quality and supervision rule sets with its Chinese name."""
    return {c.code: c.name for rules in (load_rules(), load_supervision_rules()) for c in rules.codes.values()}


@cache
def dimension_names() -> dict[str, str]:
    return {**load_rules().dimensions, **load_supervision_rules().dimensions}


def top_findings(engine: Engine, org_code: str, limit: int = 10, role: str = "operator") -> list[dict[str, Any]]:
    """The most frequent finding codes of an institution, each with one masked example."""
    f = QualityFinding
    with engine.connect() as conn:
        counts = conn.execute(
            select(f.dataset, f.code, f.dimension, func.count(), func.min(f.id)).where(f.org_code == org_code)
            .group_by(f.dataset, f.code, f.dimension).order_by(desc(func.count())).limit(limit)
        ).all()
    out = []
    for ds, code, dim, n, first_id in counts:
        views, _ = find(engine, org_code=org_code, dataset=ds, code=code, size=1, role=role)
        example = views[0] if views else None
        # supervision findings (dimension 监管合规) sit beside quality ones on an internet hospital
        out.append({"dataset": ds, "dataset_name": load_standard().dataset(ds).name, "code": code,
                    "code_name": code_names().get(code, code), "dimension": dimension_names().get(dim, dim), "count": n,
                    "message": example.message if example else "", "record_key": example.record_key if example else "",
                    "example": example.example if example else {}})
    return out


def dataset_scores(engine: Engine, org_code: str, day_from: date, day_to: date) -> list[dict[str, Any]]:
    """Per data set: records checked and a score per dimension over the window (weighted by
    records), the open rejections last seen in the window, and the overall score.

    A rejected record was never stored, so no rule could check it; it counts as a record that
    failed every dimension: overall = mean of the dimension scores × checked ÷ (checked +
    rejected). ``acceptance`` (接收率) = 100 × checked ÷ (checked + rejected). A data set with
    open rejections and nothing stored scores 0 (see docs/quality-and-reports.md)."""
    s = QualityScore
    r = RejectedRecord
    with engine.connect() as conn:
        rows = conn.execute(
            select(s.dataset, s.dimension, func.sum(s.checked), func.sum(s.failed))
            .where(s.org_code == org_code, s.day >= day_from, s.day <= day_to).group_by(s.dataset, s.dimension)
        ).all()
        rejected = dict(conn.execute(
            select(r.dataset, func.count())
            .where(r.org_code == org_code, r.resolved_at.is_(None), r.last_seen >= datetime.combine(day_from, time()),
                   r.last_seen < datetime.combine(day_to + timedelta(days=1), time()))
            .group_by(r.dataset)
        ).all())
    std = load_standard()
    table: dict[str, dict[str, Any]] = {}

    def entry_of(ds: str) -> dict[str, Any]:
        return table.setdefault(ds, {"dataset": ds, "name": std.dataset(ds).label, "checked": 0, "scores": {}})

    for ds, dim, checked, failed in rows:
        entry = entry_of(ds)
        entry["checked"] = max(entry["checked"], int(checked or 0))
        entry["scores"][dim] = round(100.0 * (1 - (failed or 0) / checked), 2) if checked else None
    for ds in rejected:
        entry_of(ds)
    for entry in table.values():
        vals = [v for v in entry["scores"].values() if v is not None]
        bad = int(rejected.get(entry["dataset"], 0))
        seen = entry["checked"] + bad
        entry["rejected"] = bad
        entry["acceptance"] = round(100.0 * entry["checked"] / seen, 2) if seen else None
        if vals:
            entry["overall"] = round(sum(vals) / len(vals) * entry["checked"] / seen, 2)
        else:
            entry["overall"] = 0.0 if bad else None
    order = {d.code: d.number for d in std.datasets}
    return sorted(table.values(), key=lambda e: order[e["dataset"]])


def feedback(engine: Engine, org_code: str, since: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Quality findings as the feedback API gives them to the institution (its own data: no masking
    needed, and no payload is repeated — the record key identifies the record)."""
    views, _ = find(engine, org_code=org_code, since=since, size=limit, examples=False)
    return [{"found_at": v.created_at.isoformat(sep=" "), "dataset": v.dataset, "record_key": v.record_key,
             "day": v.day.isoformat(), "code": v.code, "dimension": v.dimension, "severity": v.severity,
             "field": v.field, "message": v.message} for v in views]

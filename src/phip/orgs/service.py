"""Institutions (医疗机构): registration from the seed, lookup by code or name.

Their onboarding status (对接进度) lives in :mod:`phip.reports.onboarding`.

The demo register (``data/institutions.csv``) holds the 66 institutions of the docking notice
(attachment 1), the 14 中省直 hospitals and the business and external systems of the weekly
report (seed 000). Values no source gives (codes, grades, docking methods …) are placeholders,
listed per row in its ``placeholder`` column and shown as such; operators replace them through
the register (:mod:`phip.orgs.register`) or the reply form (attachment 3).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, insert, or_, select

from phip.standard.validate import platform_now
from phip.store.models import Institution

from . import register

SEED = Path(__file__).parent / "data" / "institutions.csv"

#: the register's words for the docking methods, and the blank a seed row may have
METHOD_LABELS = {**register.METHOD_LABELS, None: "未确定", "": "未确定"}


def seed_institutions(engine: Engine, path: Path = SEED) -> int:
    """Insert the seed institutions that are not registered yet; returns how many were added."""
    return register_from_csv(engine, path)


def register_from_csv(engine: Engine, path: Path, **defaults: str) -> int:
    """Register the institutions or systems of a CSV table (a column per ``institutions``
    column) whose code is not registered yet, active, with ``defaults``; returns how many."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    now = platform_now()
    with engine.begin() as conn:
        known = set(conn.execute(select(Institution.code)).scalars())
        new = [{**{k: (v or None) for k, v in r.items() if k}, "kind": r.get("kind") or "hospital",
                "network_status": r.get("network_status") or "pending", **defaults, "status": "active", "created_at": now}
               for r in rows if r["code"] not in known]
        if new:
            conn.execute(insert(Institution), new)
    return len(new)


@dataclass(frozen=True)
class InstitutionRow:
    code: str
    name: str
    region_code: str
    region_name: str
    level: str | None
    docking_method: str | None
    network_status: str
    status: str
    first_upload_at: datetime | None
    kind: str = "hospital"
    affiliation: str | None = None
    placeholder: str | None = None
    category: str | None = None  # 机构类别 (WS 218), orgs/data/categories.csv


_ROW = select(
    Institution.code, Institution.name, Institution.region_code, Institution.region_name, Institution.level,
    Institution.docking_method, Institution.network_status, Institution.status, Institution.first_upload_at,
    Institution.kind, Institution.affiliation, Institution.placeholder, Institution.category,
)


def list_institutions(engine: Engine) -> list[InstitutionRow]:
    with engine.connect() as conn:
        rows = conn.execute(_ROW.order_by(Institution.region_code, Institution.name)).all()
    return [InstitutionRow(*r) for r in rows]


def find_institution(engine: Engine, ref: str, *, partial: bool = True) -> InstitutionRow | None:
    """Find by code or by (unique part of) name, as operators type either; ``partial=False``
    for a command that changes the institution: its code or whole name only."""
    ref = ref.strip()
    if not ref:
        return None
    with engine.connect() as conn:
        exact = conn.execute(_ROW.where(or_(Institution.code == ref.upper(), Institution.name == ref))).first()
        if exact is not None:
            return InstitutionRow(*exact)
        if not partial:
            return None
        matches = conn.execute(_ROW.where(Institution.name.contains(ref, autoescape=True)).limit(2)).all()
    return InstitutionRow(*matches[0]) if len(matches) == 1 else None


def count_institutions(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Institution)).scalar_one()


def region_orgs(engine: Engine, region_code: str) -> frozenset[str]:
    """Codes of the institutions inside a region (辖区): its city (``region_code``) or its
    district/county (``county_code``) is the code. A regional reader's pages pass this set down
    to every service, so a page cannot show what lies outside it."""
    with engine.connect() as conn:
        return frozenset(conn.execute(select(Institution.code).where(
            or_(Institution.region_code == region_code, Institution.county_code == region_code))).scalars())


def register_regions(engine: Engine, path: Path = SEED) -> set[str]:
    """The city and district/county codes institutions are registered under, in the store and
    in the demo register: the codes a regional account may be given."""
    with engine.connect() as conn:
        codes = {c for row in conn.execute(select(Institution.region_code, Institution.county_code)) for c in row if c}
    with path.open(encoding="utf-8", newline="") as f:
        codes |= {r[k] for r in csv.DictReader(f) for k in ("region_code", "county_code") if r.get(k)}
    return {c for c in codes if not c.endswith("0000")}  # the province (its systems' code) is no region

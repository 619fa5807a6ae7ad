"""Supervision figures (互联网医院监管统计): what the dashboard, the monthly XLSX report and
``phip supervision report`` show — per internet hospital and in total, appointments,
consultations, prescriptions and their reviewed share, and the supervision findings by rule
with their trend and masked examples. Read from stored records and ``quality_findings``.

``within`` (a set of institution codes, :func:`phip.orgs.service.region_orgs`) limits every
figure to a regional reader's internet hospitals; None is the whole province.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from sqlalchemy import Engine, func, select, text

from phip.privacy import mask_text
from phip.standard.workbook import save_workbook
from phip.store.models import Institution, Record

from .checks import Sql
from .rules import load_supervision_rules
from .tables import QualityFinding

INTERNET_DATASETS = ("internet_hospital", "online_practitioner", "online_appointment", "online_consultation",
                     "e_prescription", "online_chronic_followup", "online_complaint")


@dataclass
class HospitalFigures:
    code: str
    name: str
    appointments: int = 0
    consultations: int = 0
    prescriptions: int = 0
    reviewed: int = 0
    violations: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def reviewed_share(self) -> float | None:
        return round(100.0 * self.reviewed / self.prescriptions, 1) if self.prescriptions else None


@dataclass
class Summary:
    start: date
    end: date  # inclusive
    hospitals: list[HospitalFigures]
    rules: list[tuple[str, str, str]]  # (rule id, article, description)
    trend: dict[str, dict[str, int]]  # rule id -> day -> findings

    @property
    def total(self) -> HospitalFigures:
        t = HospitalFigures("*", "合计")
        for h in self.hospitals:
            for k in ("appointments", "consultations", "prescriptions", "reviewed", "violations"):
                setattr(t, k, getattr(t, k) + getattr(h, k))
            for r, n in h.by_rule.items():
                t.by_rule[r] = t.by_rule.get(r, 0) + n
        return t


#: the rule's short Chinese title, shown beside its id
RULE_TITLES = {
    "sv_no_online_first_visit": "首诊不得线上", "sv_no_restricted_drug": "禁止线上开具特殊管理药品",
    "sv_child_guardian": "6岁以下儿童须监护人和陪伴医师", "sv_pharmacist_review": "处方须药师审核且顺序正确",
    "sv_practitioner_licensed": "执业人员资质与备案", "sv_signed_by_consultant": "处方由接诊医师签名",
    "sv_prescription_after_consultation": "先问诊后开方", "sv_consultation_complete": "问诊记录完整",
    "sv_volume_per_hour": "接诊量异常",
}


def internet_hospitals(engine: Engine, within: Collection[str] | None = None) -> list[tuple[str, str]]:
    """Institutions that sent internet-hospital data, with their names."""
    with engine.connect() as conn:
        codes = set(conn.execute(select(Record.org_code).where(Record.dataset.in_(INTERNET_DATASETS))
                                 .group_by(Record.org_code)).scalars())
        if within is not None:
            codes &= set(within)
        names = dict(conn.execute(select(Institution.code, Institution.name).where(Institution.code.in_(codes))).all())
    return sorted((c, names.get(c, c)) for c in codes)


def rule_list() -> list[tuple[str, str, str]]:
    seen: dict[str, tuple[str, str, str]] = {}
    for r in load_supervision_rules().instances:
        seen.setdefault(r.rule_id, (r.rule_id, r.params["article"], RULE_TITLES.get(r.rule_id, r.rule_id)))
    return list(seen.values())


def summary(engine: Engine, start: date, end: date, org: str | None = None, rule: str | None = None, *,
            within: Collection[str] | None = None) -> Summary:
    t0, t1 = datetime.combine(start, time()), datetime.combine(end + timedelta(days=1), time())
    q = Sql(engine.dialect.name)
    hospitals = [HospitalFigures(c, n) for c, n in internet_hospitals(engine, within) if org in (None, "", c)]
    trend: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for h in hospitals:
            binds = {"org": h.code, "t0": t0, "t1": t1}
            count = ("SELECT COUNT(*) FROM records r WHERE r.org_code = :org AND r.dataset = :ds "
                     "AND r.event_time >= :t0 AND r.event_time < :t1")
            h.appointments = conn.execute(text(count), {**binds, "ds": "online_appointment"}).scalar_one()
            h.consultations = conn.execute(text(count), {**binds, "ds": "online_consultation"}).scalar_one()
            rx = q.text("r", "prescription_no")
            h.prescriptions, h.reviewed = conn.execute(text(
                f"SELECT COUNT(DISTINCT {rx}), COUNT(DISTINCT CASE WHEN NOT {q.empty('r', 'review_time')} "
                f"AND NOT {q.empty('r', 'reviewer_id')} THEN {rx} END) FROM records r WHERE r.org_code = :org "
                f"AND r.dataset = 'e_prescription' AND r.event_time >= :t0 AND r.event_time < :t1"), binds).one()
            f = QualityFinding
            query = (select(f.rule_id, f.day, func.count()).where(f.org_code == h.code, f.code.like("SV\\_%", escape="\\"),
                                                                   f.day >= start, f.day <= end)
                     .group_by(f.rule_id, f.day))
            if rule:
                query = query.where(f.rule_id == rule)
            for rid, day, n in conn.execute(query):
                h.by_rule[rid] = h.by_rule.get(rid, 0) + n
                h.violations += n
                d = str(day)[:10]
                trend.setdefault(rid, {})[d] = trend.setdefault(rid, {}).get(d, 0) + n
    return Summary(start, end, hospitals, rule_list(), trend)


def examples(engine: Engine, start: date, end: date, *, org: str | None = None, rule: str | None = None,
             limit: int = 20, role: str = "operator", within: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Findings to look at, newest first; every text masked for the reader's role."""
    f = QualityFinding
    query = (select(f.org_code, f.dataset, f.day, f.record_key, f.rule_id, f.code, f.message)
             .where(f.code.like("SV\\_%", escape="\\"), f.day >= start, f.day <= end)
             .order_by(f.day.desc(), f.id.desc()).limit(limit))
    if org:
        query = query.where(f.org_code == org)
    if within is not None:
        query = query.where(f.org_code.in_(within))
    if rule:
        query = query.where(f.rule_id == rule)
    with engine.connect() as conn:
        return [{"org_code": r.org_code, "dataset": r.dataset, "day": str(r.day)[:10], "record_key": mask_text(r.record_key, role),
                 "rule_id": r.rule_id, "code": r.code, "message": mask_text(r.message, role)} for r in conn.execute(query)]


def week_figures(engine: Engine, week_end: date, *, within: Collection[str] | None = None) -> dict[str, Any]:
    """Seed 000's figures (网上预约挂号、在线问诊人次) for the week ending ``week_end`` and to date."""
    start = week_end - timedelta(days=6)
    t0, t1 = datetime.combine(start, time()), datetime.combine(week_end + timedelta(days=1), time())
    out: dict[str, Any] = {"start": start.isoformat(), "end": week_end.isoformat(),
                           "hospitals": len(internet_hospitals(engine, within))}
    scope = [] if within is None else [Record.org_code.in_(within)]
    with engine.connect() as conn:
        for key, ds in (("appointments", "online_appointment"), ("consultations", "online_consultation")):
            base = select(func.count()).select_from(Record).where(Record.dataset == ds, Record.event_time < t1, *scope)
            out[key] = conn.execute(base.where(Record.event_time >= t0)).scalar_one()
            out[key + "_to_date"] = conn.execute(base).scalar_one()
    return out


def monthly_xlsx(engine: Engine, start: date, end: date, org: str | None = None, rule: str | None = None, *,
                 within: Collection[str] | None = None, role: str = "operator") -> bytes:
    """The monthly supervision report (互联网医院监管月报) as an XLSX workbook."""
    s = summary(engine, start, end, org, rule, within=within)
    wb = Workbook()
    ws = wb.active
    ws.title = "概况"
    ws.append([f"互联网医院监管月报 {start.isoformat()} 至 {end.isoformat()}"])
    ws.append(["机构代码", "互联网医院", "预约人次", "问诊人次", "处方张数", "已审核处方", "审核率(%)", "违规条数"])
    for h in [*s.hospitals, s.total]:
        ws.append([h.code, h.name, h.appointments, h.consultations, h.prescriptions, h.reviewed, h.reviewed_share,
                   h.violations])
    by_rule = wb.create_sheet("违规按规则")
    by_rule.append(["规则", "规则名称", "依据条款", *[h.name for h in s.hospitals], "合计"])
    total = s.total
    for rid, article, title in s.rules:
        by_rule.append([rid, title, article, *[h.by_rule.get(rid, 0) for h in s.hospitals], total.by_rule.get(rid, 0)])
    detail = wb.create_sheet("违规示例")
    detail.append(["机构代码", "数据集", "业务日期", "记录主键", "规则", "代码", "说明"])
    for e in examples(engine, start, end, org=org, rule=rule, limit=500, role=role, within=within):
        detail.append([e["org_code"], e["dataset"], e["day"], e["record_key"], e["rule_id"], e["code"], e["message"]])
    buf = BytesIO()
    save_workbook(wb, buf)
    return buf.getvalue()

"""Onboarding status (对接进度) as in the Jilin weekly report: per institution, business system
and external system, three stages — network connected (set by operators), data uploading
(the first accepted record, kept by the pipeline) and data analysed (a completed quality run).
Also the reply form (对接工作回执, attachment 3): contact, docking method and start date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine, select, update

from phip.orgs.service import find_institution, register_from_csv
from phip.store.models import Institution

from .period import PeriodError, _bound
from .sheet import SheetError, read_sheet
from .tables import AnalysedMark

SYSTEMS = Path(__file__).parent / "data" / "systems.csv"
KIND_LABELS = {"hospital": "医疗机构", "business_system": "业务系统", "external_system": "外部系统"}
NETWORK = {"connected": "已联通", "pending": "待联通"}
METHODS = {"push": "接口对接", "pull": "数据采集"}
METHOD_WORDS = {"接口对接": "push", "接口": "push", "push": "push", "推送": "push",
                "数据采集": "pull", "采集": "pull", "pull": "pull", "数据库只读": "pull"}


@dataclass
class Status:
    code: str
    name: str
    kind: str
    region_name: str
    network: str  # connected | pending
    uploading: bool
    analysed: bool | None  # None: not applicable (systems are not analysed)
    first_upload_at: datetime | None
    last_analysed_at: datetime | None
    docking_method: str | None
    contact_name: str | None
    contact_title: str | None
    contact_phone: str | None
    docking_start: date | None
    status: str
    region_code: str | None = None
    level: str | None = None

    @property
    def labels(self) -> dict[str, str]:
        """The three cells of the Jilin table."""
        return {"network": NETWORK.get(self.network, self.network),
                "upload": "实现" if self.uploading else "待实现",
                "analysis": "—" if self.analysed is None else ("完成" if self.analysed else "待完成")}


def onboarding_status(engine: Engine, kind: str | None = None) -> list[Status]:
    i, a = Institution, AnalysedMark
    stmt = (select(i.code, i.name, i.kind, i.region_name, i.network_status, i.first_upload_at, a.last_analysed_at,
                   i.docking_method, i.contact_name, i.contact_title, i.contact_phone, i.docking_start, i.status,
                   i.region_code, i.level)
            .outerjoin(a, a.org_code == i.code).order_by(i.kind, i.region_code, i.name))
    if kind:
        stmt = stmt.where(i.kind == kind)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    out = []
    for r in rows:
        out.append(Status(r.code, r.name, r.kind, r.region_name, r.network_status, r.first_upload_at is not None,
                          None if r.kind != "hospital" else r.last_analysed_at is not None, r.first_upload_at,
                          r.last_analysed_at, r.docking_method, r.contact_name, r.contact_title, r.contact_phone,
                          r.docking_start, r.status, r.region_code, r.level))
    return out


def summary(statuses: list[Status]) -> dict[str, int]:
    """Counts for the overview cards: 14 connected, 11 uploading, 9 analysed …"""
    return {
        "total": len(statuses),
        "connected": sum(s.network == "connected" for s in statuses),
        "uploading": sum(s.uploading for s in statuses),
        "analysed": sum(bool(s.analysed) for s in statuses),
    }


def set_network(engine: Engine, org_code: str, status: str) -> bool:
    if status not in NETWORK:
        raise ValueError(f"网络状态应为 {'/'.join(NETWORK)}")
    with engine.begin() as conn:
        return conn.execute(update(Institution).where(Institution.code == org_code).values(network_status=status)).rowcount == 1


def seed_systems(engine: Engine, path: Path = SYSTEMS) -> int:
    """Register the business and external systems of the Jilin table (idempotent)."""
    return register_from_csv(engine, path)


REPLY_ALIASES = {
    "institution": ("医疗机构名称", "医疗机构", "机构名称", "机构代码"),
    "contact_name": ("对接工作负责人", "负责人", "联系人", "对接工作联系人"),
    "contact_title": ("职务",),
    "contact_phone": ("手机号", "手机", "联系电话", "电话"),
    "docking_method": ("对接方式",),
    "docking_start": ("对接开始时间", "开始时间", "对接时间"),
}


def import_reply(engine: Engine, path: Path) -> int:
    """Read the institutions part of the reply form (回执); all rows or none."""
    rows = read_sheet(path, REPLY_ALIASES, ("institution", "contact_name", "docking_method"))
    updates = []
    for n, r in rows:
        ref = r.get("institution")
        if ref is None or str(ref).strip() in ("例",) or str(ref).startswith("长春市XX"):
            continue  # the form's example row
        inst = find_institution(engine, str(ref))
        if inst is None:
            raise SheetError("UNKNOWN_ORG", f"第{n}行医疗机构“{ref}”未登记或名称不唯一")
        method_text = str(r.get("docking_method") or "").strip()
        method = METHOD_WORDS.get(method_text)
        if method is None:
            raise SheetError("BAD_METHOD", f"第{n}行对接方式“{method_text}”应为“接口对接”或“数据采集”")
        start = None
        if r.get("docking_start") is not None:
            try:
                start = _bound(str(r["docking_start"])[:10], False)
            except PeriodError:
                raise SheetError("BAD_DATE", f"第{n}行对接开始时间“{r['docking_start']}”不是有效日期（如 2021.5.6）") from None
        phone = str(r["contact_phone"]).strip() if r.get("contact_phone") is not None else None
        updates.append((inst.code, {"contact_name": str(r["contact_name"])[:50], "contact_title": (str(r.get("contact_title") or "") or None),
                                    "contact_phone": phone[:20] if phone else None, "docking_method": method,
                                    "docking_start": start}))
    with engine.begin() as conn:
        for code, values in updates:
            conn.execute(update(Institution).where(Institution.code == code).values(**values))
    return len(updates)

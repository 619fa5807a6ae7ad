"""Onboarding status (对接进度) as in the Jilin weekly report (seed 000): per institution,
business system and external system, three stages, derived from evidence where there is some:

- 网络联通: 已联通 when a push or a pull (a batch from the API, a collection or a forward;
  the demo's batches stand in for pushes) arrived in the last ``PHIP_ONBOARDING_DAYS`` days;
  without such evidence, the operators' setting (``institutions.network_status``);
- 数据上传: 实现 while data arrives (a stored record in the last N days), 中断 with the date
  once N days pass without data, 待实现 before the first; a business system counts only
  the data sets that carry its data (``data/system_datasets.csv``), and one with no such
  data set says so rather than ever showing 实现;
- 数据分析: 完成 once a quality run of the institution has completed.

The reply form (对接工作回执, attachment 3) is read by :mod:`phip.reports.reply_form`."""

from __future__ import annotations

import csv
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, func, select

from phip.config import get_settings
from phip.orgs.keys import city_platforms
from phip.orgs.register import METHOD_LABELS, RegisterError, update_network
from phip.orgs.service import seed_institutions
from phip.standard.catalog import load_standard
from phip.standard.validate import platform_now
from phip.store.models import Batch, IngestDaily, Institution

from .tables import AnalysedMark

SYSTEM_DATASETS = Path(__file__).parent / "data" / "system_datasets.csv"
KIND_LABELS = {"hospital": "医疗机构", "business_system": "业务系统", "external_system": "外部系统"}
NETWORK = {"connected": "已联通", "pending": "待联通"}
METHODS = METHOD_LABELS  # the register's words
#: Batch sources that prove the link: a push (api), a pull (collect), a city platform's forward;
#: the demo's generated batches stand in for pushes. A file an operator imports proves nothing.
LINK_SOURCES = ("api", "collect", "forward", "demo")
FORWARD = "forward"  # phip.federation.province.CITY_SOURCE (a sibling: not imported)
PROVINCIAL = ("10", "20")  # 隶属关系 中央, 省属: the 中省直 hospitals of the weekly report


@dataclass(frozen=True)
class SystemData:
    """The data sets that carry a business system's data; ``missing`` those the standard lacks."""

    datasets: tuple[str, ...]
    missing: tuple[str, ...]
    note: str


@cache
def system_datasets(path: Path = SYSTEM_DATASETS) -> dict[str, SystemData]:
    known = {d.code for d in load_standard().datasets}
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for r in rows:
        wanted = tuple(d for d in (r["datasets"] or "").split(";") if d)
        out[r["code"]] = SystemData(tuple(d for d in wanted if d in known), tuple(d for d in wanted if d not in known), r["note"])
    return out


@dataclass
class Status:
    code: str
    name: str
    kind: str
    region_name: str
    network: str  # connected | pending: the evidence if any, else the operators' setting
    uploading: bool  # 数据上传 实现 now
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
    network_set: str = "pending"  # the operators' setting
    link_at: datetime | None = None  # the last push or pull within the window: the evidence
    last_data: date | None = None  # the last day data arrived
    interrupted: bool = False
    no_dataset: bool = False  # a system none of whose data sets the platform has
    affiliation: str | None = None
    placeholder: set[str] = field(default_factory=set)
    #: the city platform (its region name) the last push came through; "" when the last came
    #: straight to this platform; None without a push or pull in the window
    via: str | None = None

    @property
    def route(self) -> str:
        """上报途径 on a province: 直报省平台, or 经市平台（长春市） when the data come through a city."""
        if self.via is None:
            return "—"
        return f"经市平台（{self.via}）" if self.via else "直报省平台"

    @property
    def labels(self) -> dict[str, str]:
        """The three cells of the Jilin table."""
        if self.uploading:
            upload = "实现"
        elif self.interrupted and self.last_data:
            upload = f"中断（{self.last_data + timedelta(days=1):%Y-%m-%d}起）"
        elif self.no_dataset:
            upload = "待实现（无承载数据集）"
        else:
            upload = "待实现"
        return {"network": NETWORK.get(self.network, self.network), "upload": upload,
                "analysis": "—" if self.analysed is None else ("完成" if self.analysed else "待完成")}

    @property
    def network_basis(self) -> str:
        """Why the network cell says what it says (shown beside it)."""
        if self.link_at is not None:
            return f"依据：{self.link_at:%Y-%m-%d %H:%M} 收到数据"
        return "人工设置（近期无推送或采集）"


def _evidence(engine: Engine, now: datetime, days: int) -> tuple[dict[str, tuple[datetime, str | None]],
                                                                dict[str, dict[str, date]]]:
    """The last push/pull per institution within the window, with the city platform it came
    through (``source_ref`` of a forward, else None); the last day with data per institution
    and data set (the counters, never the records)."""
    stored = IngestDaily.accepted + IngestDaily.updated + IngestDaily.unchanged
    links: dict[str, tuple[datetime, str | None]] = {}
    with engine.connect() as conn:
        for org, source, ref, at in conn.execute(
                select(Batch.org_code, Batch.source, Batch.source_ref, func.max(Batch.received_at))
                .where(Batch.received_at >= now - timedelta(days=days), Batch.source.in_(LINK_SOURCES),
                       Batch.accepted + Batch.updated + Batch.unchanged + Batch.rejected > 0)
                .group_by(Batch.org_code, Batch.source, Batch.source_ref)):
            if org not in links or at > links[org][0]:
                links[org] = (at, ref if source == FORWARD else None)
        last: dict[str, dict[str, date]] = {}
        for org, dataset, day in conn.execute(select(IngestDaily.org_code, IngestDaily.dataset, func.max(IngestDaily.day))
                                              .where(stored > 0).group_by(IngestDaily.org_code, IngestDaily.dataset)):
            last.setdefault(org, {})[dataset] = day
    return links, last


def onboarding_status(engine: Engine, kind: str | None = None, *, now: datetime | None = None,
                      days: int | None = None, within: Collection[str] | None = None) -> list[Status]:
    """Every registered institution and system (of ``kind``); ``within`` keeps a regional
    reader's institutions only (:func:`phip.orgs.service.region_orgs`)."""
    now = now or platform_now()
    days = days or get_settings().onboarding_window
    i, a = Institution, AnalysedMark
    stmt = (select(i.code, i.name, i.kind, i.region_name, i.network_status, i.first_upload_at, a.last_analysed_at,
                   i.docking_method, i.contact_name, i.contact_title, i.contact_phone, i.docking_start, i.status,
                   i.region_code, i.level, i.affiliation, i.placeholder)
            .outerjoin(a, a.org_code == i.code).order_by(i.kind, i.region_code, i.name))
    if kind:
        stmt = stmt.where(i.kind == kind)
    if within is not None:
        stmt = stmt.where(i.code.in_(within))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    links, last = _evidence(engine, now, days)
    cities = city_platforms(engine)
    systems = system_datasets()
    cutoff = now.date() - timedelta(days=days - 1)
    out = []
    for r in rows:
        by_dataset = last.get(r.code, {})
        carried = systems.get(r.code)
        if r.kind != "hospital" and carried is not None:
            by_dataset = {d: day for d, day in by_dataset.items() if d in carried.datasets}
        last_day = max(by_dataset.values(), default=None)
        link_at, via = links.get(r.code, (None, None))
        uploading = last_day is not None and last_day >= cutoff
        out.append(Status(
            r.code, r.name, r.kind, r.region_name, "connected" if link_at else r.network_status, uploading,
            None if r.kind != "hospital" else r.last_analysed_at is not None, r.first_upload_at, r.last_analysed_at,
            r.docking_method, r.contact_name, r.contact_title, r.contact_phone, r.docking_start, r.status, r.region_code,
            r.level, network_set=r.network_status, link_at=link_at, last_data=last_day,
            interrupted=last_day is not None and not uploading,
            no_dataset=r.kind != "hospital" and (carried is None or not carried.datasets),
            affiliation=r.affiliation, placeholder={p for p in (r.placeholder or "").split(";") if p},
            via=None if link_at is None else (cities[via][1] if via in cities else via or "")))
    return out


def summary(statuses: list[Status]) -> dict[str, int]:
    """Counts for the overview cards: 14 connected, 11 uploading, 9 analysed …"""
    return {
        "total": len(statuses),
        "connected": sum(s.network == "connected" for s in statuses),
        "uploading": sum(s.uploading for s in statuses),
        "analysed": sum(bool(s.analysed) for s in statuses),
    }


def set_network(engine: Engine, org_code: str, status: str, by: str = "operator") -> bool:
    """The operators' setting, used where no push or pull proves the link; kept in the history."""
    if status not in NETWORK:
        raise ValueError("网络状态应为 " + "/".join(NETWORK))
    try:
        update_network(engine, org_code, status, by)
    except RegisterError:
        return False
    return True


def seed_systems(engine: Engine) -> int:
    """Register the demo register's rows not registered yet (the systems are in it now)."""
    return seed_institutions(engine)

"""The mutual-recognition report (检查检验结果互认情况): per institution or region, how often a
patient came with a result of another institution still recognisable, how often it was used
(已互认) and how often the item was done again (重复检查检验), and what that saved or cost.

Counted per item (a blood routine is four items). At institution B, during the period:
- an opportunity (互认机会) is a result of another institution, usable when the patient was at
  B (a visit, or a result ordered at B) — once per B, person, item and earlier result;
- repeated (重复) counts B's results that repeat such a result (the QC_REPEAT_TEST findings);
- recognised (已互认) are the opportunities B did not repeat.
Costs: an item's price at B is the median unit price of its charge items in fee_detail there
(else across the province); an item with no charge found counts as 费用未知. Unlike the upload
statistics, this report reads the stored lab, exam, visit and fee records of the persons
concerned (``phip.recognition``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from statistics import median
from typing import Literal

from sqlalchemy import Connection, Engine, select

from phip.recognition.catalog import Catalog, Item, load_catalog, normalise
from phip.recognition.repeats import by_person, usable_before
from phip.recognition.results import Eqa, Result, results_of
from phip.store.models import Institution, Record

from .period import Period

Level = Literal["region", "institution"]
VISITS = ("outpatient_visit", "inpatient_visit")

#: (key, Chinese header) — the column order of the export and the terminal table.
COLUMNS: list[tuple[str, str]] = [
    ("opportunities", "互认机会（项）"),
    ("recognised", "已互认（项）"),
    ("repeated", "重复检查检验（项）"),
    ("rate", "互认率"),
    ("saved_cost", "节约费用（元）"),
    ("repeat_cost", "重复费用（元）"),
    ("unpriced", "费用未知（项）"),
]


@dataclass
class Row:
    key: str
    name: str
    region_name: str = ""
    opportunities: int = 0
    recognised: int = 0
    repeated: int = 0
    saved_cost: float = 0.0
    repeat_cost: float = 0.0
    unpriced: int = 0

    @property
    def rate(self) -> float | None:
        """Share of opportunities used (None: no opportunity)."""
        return self.recognised / self.opportunities if self.opportunities else None

    def value(self, key: str) -> object:
        v = getattr(self, key)
        return round(v, 2) if isinstance(v, float) else v

    def add(self, other: Row) -> None:
        for k in ("opportunities", "recognised", "repeated", "saved_cost", "repeat_cost", "unpriced"):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class Report:
    period: Period
    level: Level
    rows: list[Row]
    total: Row
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        what = "各地区" if self.level == "region" else "各医疗机构"
        return f"{what}检查检验结果互认情况（{self.period.label}）"


def _chunks(values: list[str], size: int = 1000) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


class Prices:
    """Median unit prices of catalogued items from fee_detail: per institution, else province-wide."""

    def __init__(self, conn: Connection, person_ids: list[str], start: datetime, end: datetime, catalog: Catalog):
        self.catalog = catalog
        wanted: dict[str, set[str]] = defaultdict(set)  # normalised charge code/name -> fee keys
        for key, names in catalog.fees.items():
            for n in names:
                wanted[n].add(key)
        by_org: dict[tuple[str, str], list[float]] = defaultdict(list)
        everywhere: dict[str, list[float]] = defaultdict(list)
        for chunk in _chunks(person_ids):
            rows = conn.execute(select(Record.org_code, Record.payload).where(
                Record.dataset == "fee_detail", Record.event_time >= start, Record.event_time < end,
                Record.person_id.in_(chunk)))
            for org, p in rows:
                p = p or {}
                if p.get("refund_flag") in (True, "true", 1) or p.get("unit_price") in (None, ""):
                    continue
                keys = wanted.get(normalise(p.get("charge_item_local_code"))) or wanted.get(normalise(p.get("charge_item_name")))
                for k in keys or ():
                    by_org[(org, k)].append(float(p["unit_price"]))
                    everywhere[k].append(float(p["unit_price"]))
        self.by_org = {k: median(v) for k, v in by_org.items()}
        self.everywhere = {k: median(v) for k, v in everywhere.items()}

    def of(self, org_code: str, item: Item) -> float | None:
        key = item.code if item.category.dataset == "lab_report" else item.category.code
        price = self.by_org.get((org_code, key))
        return price if price is not None else self.everywhere.get(key)


def _persons_and_visits(conn: Connection, results: list[Result], start: datetime, end: datetime) -> dict[str, list[tuple[str, datetime]]]:
    visits: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for chunk in _chunks(sorted({r.person_id for r in results})):
        rows = conn.execute(select(Record.person_id, Record.org_code, Record.event_time).where(
            Record.dataset.in_(VISITS), Record.event_time >= start, Record.event_time < end,
            Record.person_id.in_(chunk)))
        for pid, org, when in rows:
            visits[pid].append((org, when))
    return visits


def _tally(results: list[Result], visits: dict[str, list[tuple[str, datetime]]], eqa: Eqa, prices: Prices,
           start: datetime, end: datetime) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for pid, history in by_person(results).items():
        presence = [*visits.get(pid, ()), *((r.org_code, r.ordered_at) for r in history)]
        items = {r.item.code: r.item for r in history}
        chances: dict[tuple[str, str, int], Item] = {}
        for org, at in presence:
            if not start <= at < end:
                continue
            for code, item in items.items():
                earlier = usable_before(history, org, code, at, eqa)
                if earlier is not None:
                    chances[(org, code, earlier.record_id)] = item
        repeated_keys = set()
        for r in history:
            if r.time < start or r.time >= end:
                continue
            earlier = usable_before(history, r.org_code, r.item.code, r.ordered_at, eqa)
            if earlier is None:
                continue
            repeated_keys.add((r.org_code, r.item.code, earlier.record_id))
            row = rows.setdefault(r.org_code, Row(r.org_code, r.org_code))
            row.repeated += 1
            price = prices.of(r.org_code, r.item)
            row.repeat_cost += price or 0.0
            row.unpriced += price is None
        for key, item in chances.items():
            row = rows.setdefault(key[0], Row(key[0], key[0]))
            row.opportunities += 1
            if key in repeated_keys:
                continue
            row.recognised += 1
            price = prices.of(key[0], item)
            row.saved_cost += price or 0.0
            row.unpriced += price is None
    return rows


def recognition_report(engine: Engine, period: Period, level: Level = "institution", *,
                       region_code: str | None = None) -> Report:
    catalog = load_catalog()
    start = datetime.combine(period.start, time())
    end = datetime.combine(period.end + timedelta(days=1), time())
    lookback = start - timedelta(days=catalog.longest_window)
    with engine.connect() as conn:
        results = results_of(conn, lookback, end, persons_at=(None, None), scope=(lookback, end), catalog=catalog)
        visits = _persons_and_visits(conn, results, start, end)
        eqa = Eqa.load(conn, [r.org_code for r in results], catalog)
        prices = Prices(conn, sorted({r.person_id for r in results}), lookback, end, catalog)
        inst_q = select(Institution.code, Institution.name, Institution.region_code, Institution.region_name).where(
            Institution.kind == "hospital")
        if region_code:
            inst_q = inst_q.where(Institution.region_code == region_code)
        insts = conn.execute(inst_q.order_by(Institution.region_code, Institution.name)).all()
    tallies = _tally(results, visits, eqa, prices, start, end)
    rows = []
    for code, name, rcode, rname in insts:
        row = tallies.get(code) or Row(code, name)
        row.key, row.name, row.region_name = code, name, rname
        rows.append(row)
    if level == "region":
        regions: dict[str, Row] = {}
        for (code, _, rcode, rname), row in zip(insts, rows, strict=True):
            regions.setdefault(rcode, Row(rcode, rname, rname)).add(row)
        rows = list(regions.values())
    total = Row("", "全省合计" if not region_code else "合计")
    for row in rows:
        total.add(row)
    notes = [f"统计口径：按检验检查项目计；互认期见互认项目目录（{len(catalog.categories)}类，"
             f"{'、'.join(f'{c.name}{c.window_days}天' for c in catalog.categories.values())}）。",
             "节约费用按本机构收费明细中该项目单价的中位数估算（本机构无收费记录时取全省中位数），无收费记录的项目计入“费用未知”。"]
    return Report(period, level, rows, total, notes)


"""Stored lab and exam results as recognisable items, and which of them are still recognisable.

A result is recognisable (可互认) from its report time for its category's window, unless the
institution's external quality assessment (室间质评, data set lab_center) of a lab item failed
(or, with ``eqa_required``, was never passed). Results are read whole (payload included) and
classified in Python: hospitals code items locally, the catalogue maps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from phip.standard.validate import platform_now
from phip.store.models import Record

from .catalog import DATASETS, Catalog, Item, load_catalog

#: fields that say when a result was ordered, first present wins (else the report time)
ORDER_TIME_FIELDS = ("apply_time", "collect_time", "exam_time")


@dataclass(frozen=True)
class Result:
    record_id: int
    record_key: str
    org_code: str
    dataset: str
    person_id: str
    time: datetime  # report time (the record's event time)
    received_at: datetime
    ordered_at: datetime  # when the result was asked for: a repeat is judged from then
    item: Item

    @property
    def expires_at(self) -> datetime:
        return self.time + timedelta(days=self.item.window_days)

    def in_window(self, at: datetime) -> bool:
        return self.time <= at < self.expires_at


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def results_of(conn: Connection, start: datetime, end: datetime, *, person_ids: Iterable[str] | None = None,
               persons_at: tuple[str | None, str | None] | None = None, scope: tuple[datetime, datetime] | None = None,
               catalog: Catalog | None = None) -> list[Result]:
    """Catalogued results with report times in [start, end), of ``person_ids``, or of the persons
    who have a result at institution/data set ``persons_at`` (either may be None: any) in ``scope``."""
    catalog = catalog or load_catalog()
    r = Record
    q = select(r.id, r.record_key, r.org_code, r.dataset, r.person_id, r.event_time, r.received_at, r.payload).where(
        r.dataset.in_(DATASETS), r.event_time >= start, r.event_time < end, r.person_id.is_not(None))
    if person_ids is not None:
        ids = sorted(set(person_ids))
        if not ids:
            return []
        q = q.where(r.person_id.in_(ids))
    if persons_at is not None:
        org, ds = persons_at
        t0, t1 = scope or (start, end)
        who = select(r.person_id).where(r.dataset.in_([ds] if ds else DATASETS), r.event_time >= t0, r.event_time < t1,
                                        r.person_id.is_not(None))
        if org:
            who = who.where(r.org_code == org)
        q = q.where(r.person_id.in_(who.distinct()))
    out = []
    for row in conn.execute(q):
        item = catalog.classify(row.dataset, row.payload or {})
        if item is None:
            continue
        reported = _time(row.event_time)
        ordered = next((t for f in ORDER_TIME_FIELDS if (t := _time((row.payload or {}).get(f)))), reported)
        out.append(Result(row.id, row.record_key, row.org_code, row.dataset, row.person_id, reported,
                          _time(row.received_at), min(ordered, reported), item))
    return out


class Eqa:
    """External quality assessment (室间质评) outcomes per institution and lab item."""

    def __init__(self, rounds: dict[tuple[str, str], list[tuple[date, bool]]], required: bool):
        self.rounds = rounds
        self.required = required

    @classmethod
    def load(cls, conn: Connection, org_codes: Sequence[str], catalog: Catalog | None = None) -> Eqa:
        catalog = catalog or load_catalog()
        rounds: dict[tuple[str, str], list[tuple[date, bool]]] = {}
        if org_codes:
            rows = conn.execute(select(Record.org_code, Record.event_time, Record.payload).where(
                Record.dataset == "lab_center", Record.org_code.in_(sorted(set(org_codes)))))
            for org, when, payload in rows:
                payload = payload or {}
                item = catalog.lab_item(payload.get("item_local_code"), payload.get("item_name"))
                day = _date(payload.get("evaluation_date") or when)
                passed = payload.get("item_pass_flag")
                if item is None or day is None or passed is None:
                    continue
                rounds.setdefault((org, item.code), []).append((day, passed in (True, "true", 1, "1")))
        for v in rounds.values():
            v.sort()
        return cls(rounds, catalog.eqa_required)

    def allows(self, result: Result) -> bool:
        """Whether the institution's quality assessment lets other institutions rely on ``result``."""
        if result.dataset != "lab_report":
            return True
        before = [ok for day, ok in self.rounds.get((result.org_code, result.item.code), ()) if day <= result.time.date()]
        if not before:
            return not self.required
        return before[-1]


def recognizable(engine: Engine, person_ids: Iterable[str], at: datetime | None = None) -> list[Result]:
    """The lab and exam results of a patient (all the person ids of one golden person), from any
    institution, still inside their recognition window at ``at`` (default now), newest first."""
    catalog = load_catalog()
    at = at or platform_now()
    start = at - timedelta(days=catalog.longest_window)
    with engine.connect() as conn:
        found = [r for r in results_of(conn, start, at + timedelta(microseconds=1), person_ids=person_ids, catalog=catalog)
                 if r.in_window(at)]
        eqa = Eqa.load(conn, [r.org_code for r in found], catalog)
    return sorted((r for r in found if eqa.allows(r)), key=lambda r: (r.time, r.record_id), reverse=True)


def report_of(dataset: str, record_key: str) -> str:
    """The report a result belongs to: a lab report holds one record per item (``report_no|item_no``)."""
    return record_key.rsplit("|", 1)[0] if dataset == "lab_report" else record_key


def by_report(results: Iterable[Result]) -> dict[tuple[str, str, str], list[Result]]:
    """Recognisable results per (institution, data set, report), for marking documents 可互认."""
    out: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        out.setdefault((r.org_code, r.dataset, report_of(r.dataset, r.record_key)), []).append(r)
    return out

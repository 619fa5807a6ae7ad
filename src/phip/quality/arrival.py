"""Supervision on arrival (到达即监管): the internet-hospital rules judge each batch as it is
stored, so a violation is on the supervision dashboard and in the feedback API the moment the
record lands, not the next morning.

``SupervisionOnArrival`` is a :class:`phip.ingest.writer.RecordCounter` (wired in
:mod:`phip.runtime`): it runs inside the batch's write transaction on the records the batch
stored or changed, and replaces those records' supervision findings. The nightly run
(:mod:`phip.quality.window`) judges the whole window again and replaces them by event day, which
also covers what one batch cannot see: a window of other records (``on_arrival: false``, e.g.
consultations per hour) or a companion that arrives later (a prescription's consultation).
A check that fails is logged and rolled back to a savepoint; the batch stays stored and the
nightly run catches up.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from phip.ingest.keys import record_key
from phip.standard.catalog import DataSet
from phip.standard.validate import platform_now
from phip.store.models import Record
from phip.store.sql import bulk_insert, lock_key, select_in

from .checks import Hit, Scope, Sql, as_datetime
from .rules import RuleInstance, RuleSet, load_supervision_rules
from .run import ALL_CHECKS, finding_rows
from .tables import QualityFinding

log = logging.getLogger("phip.quality")

#: ``quality_findings.run_id`` of findings written as records arrive (no run row: a batch is not a run)
ARRIVAL_RUN = "arrival"
_WHOLE_TIME = (datetime(1900, 1, 1), datetime(9999, 12, 31))
_CHUNK = 500

class SupervisionOnArrival:
    """Judge a batch of an internet hospital's records by the supervision rules that can judge
    one record on its own (``on_arrival``)."""

    def __init__(self, rules: RuleSet | None = None):
        self.rules = rules or load_supervision_rules()
        # asked for every batch of every data set: decided once here
        self.by_dataset: dict[str, list[RuleInstance]] = {}
        for r in self.rules.instances:
            if r.params["on_arrival"]:
                self.by_dataset.setdefault(r.dataset, []).append(r)

    def counts(self, dataset_code: str) -> bool:
        return dataset_code in self.by_dataset

    def count(self, conn: Connection, org_code: str, dataset: DataSet, new: list[dict[str, Any]],
              changed: list[tuple[dict[str, Any] | None, dict[str, Any]]]) -> None:
        payloads = {record_key(dataset, r): r for r in new}
        fresh = set(payloads)  # no finding can name a record key stored for the first time
        payloads.update((record_key(dataset, after), after) for _, after in changed)
        if not payloads:
            return
        try:
            with conn.begin_nested():
                judge(conn, self.rules, self.by_dataset[dataset.code], org_code, dataset.code, sorted(payloads),
                      payloads=payloads, fresh=fresh)
        except Exception:  # noqa: BLE001 - the batch is stored either way; the nightly run judges it again
            log.exception("supervision on arrival failed for %s/%s (%d records); left to the nightly run",
                          org_code, dataset.code, len(payloads))

def judge(conn: Connection, rules: RuleSet, instances: list[RuleInstance], org_code: str, dataset: str,
          keys: list[str], as_of: datetime | None = None, payloads: dict[str, dict[str, Any]] | None = None,
          fresh: Collection[str] = ()) -> list[Hit]:
    """Replace the findings of ``instances`` on the records ``keys`` of ``org_code``/``dataset``.

    ``payloads`` (the batch's records by key) spares reading the payloads back; ``fresh`` keys
    were stored for the first time, so they have no findings to delete."""
    # the nightly run replaces this data set's findings under the same lock: never both at once
    lock_key(conn, f"quality/{org_code}/{dataset}")
    codes = sorted({c for r in instances for c in r.codes})
    sql = Sql(conn.dialect.name)
    hits: list[Hit] = []
    for i in range(0, len(keys), _CHUNK):
        part = tuple(keys[i:i + _CHUNK])
        stale = [k for k in part if k not in fresh]
        if stale:
            conn.execute(delete(QualityFinding).where(
                QualityFinding.record_key.in_(stale), QualityFinding.org_code == org_code,
                QualityFinding.dataset == dataset, QualityFinding.code.in_(codes)))
        rows = _stored(conn, org_code, dataset, part, payloads)
        # judged as of the batch's own receipt time: nothing it names is overdue yet (a
        # prescription's consultation may follow in the next batch)
        received = max((r["received"] for r in rows), default=None)
        scope = Scope(org_code, dataset, *_WHOLE_TIME, as_of or as_datetime(received or platform_now()),
                      keys=part, rows=rows)  # no supervision rule judges timeliness: `connected` stays unset
        found = [h for rule in instances for h in ALL_CHECKS[rule.type](conn, sql, scope, rule)]
        bulk_insert(conn, QualityFinding.__table__, finding_rows(rules, ARRIVAL_RUN, scope, found))
        hits += found
    return hits

def _stored(conn: Connection, org_code: str, dataset: str, keys: tuple[str, ...],
            payloads: dict[str, dict[str, Any]] | None) -> tuple[dict[str, Any], ...]:
    """The records ``keys`` as the checks read them: id, event time, person and receipt time from
    the store (by natural key, as the writer reads its heads), the payload from the batch when it
    has it."""
    columns = _COLUMNS if payloads is not None else (*_COLUMNS, Record.__table__.c.payload)
    out = []
    for row in select_in(conn, columns, Record.__table__.c.record_key, keys):
        if row[1] != org_code or row[2] != dataset or row[4] is None:  # no event time: as the nightly window
            continue
        payload = payloads[row[3]] if payloads is not None else row[7]
        out.append({"id": row[0], "key": row[3], "time": as_datetime(row[4]), "person": row[5], "received": row[6],
                    "payload": payload if isinstance(payload, dict) else {}})
    return tuple(out)

_COLUMNS = tuple(Record.__table__.c[n] for n in (
    "id", "org_code", "dataset", "record_key", "event_time", "person_id", "received_at"))

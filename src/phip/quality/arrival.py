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
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from phip.ingest.keys import record_key
from phip.standard.catalog import DataSet
from phip.standard.validate import platform_now
from phip.store.models import Record
from phip.store.sql import bulk_insert, lock_key

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
        keys = sorted({record_key(dataset, r) for r in new} | {record_key(dataset, after) for _, after in changed})
        if not keys:
            return
        try:
            with conn.begin_nested():
                judge(conn, self.rules, self.by_dataset[dataset.code], org_code, dataset.code, keys)
        except Exception:  # noqa: BLE001 - the batch is stored either way; the nightly run judges it again
            log.exception("supervision on arrival failed for %s/%s (%d records); left to the nightly run",
                          org_code, dataset.code, len(keys))


def judge(conn: Connection, rules: RuleSet, instances: list[RuleInstance], org_code: str, dataset: str,
          keys: list[str], as_of: datetime | None = None) -> list[Hit]:
    """Replace the findings of ``instances`` on the records ``keys`` of ``org_code``/``dataset``."""
    # the nightly run replaces this data set's findings under the same lock: never both at once
    lock_key(conn, f"quality/{org_code}/{dataset}")
    codes = sorted({c for r in instances for c in r.codes})
    sql = Sql(conn.dialect.name)
    hits: list[Hit] = []
    for i in range(0, len(keys), _CHUNK):
        part = tuple(keys[i:i + _CHUNK])
        conn.execute(delete(QualityFinding).where(
            QualityFinding.record_key.in_(part), QualityFinding.org_code == org_code,
            QualityFinding.dataset == dataset, QualityFinding.code.in_(codes)))
        # judged as of the batch's own receipt time: nothing it names is overdue yet (a
        # prescription's consultation may follow in the next batch)
        received = conn.execute(select(func.max(Record.received_at)).where(
            Record.record_key.in_(part), Record.org_code == org_code, Record.dataset == dataset)).scalar()
        scope = Scope(org_code, dataset, *_WHOLE_TIME, as_of or as_datetime(received or platform_now()),
                      keys=part)  # no supervision rule judges timeliness: `connected` stays unset
        found = [h for rule in instances for h in ALL_CHECKS[rule.type](conn, sql, scope, rule)]
        bulk_insert(conn, QualityFinding.__table__, finding_rows(rules, ARRIVAL_RUN, scope, found))
        hits += found
    return hits

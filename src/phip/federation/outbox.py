"""The outbox step (发件箱): registered in the pipeline by :func:`phip.runtime.build_pipeline`
only when an upstream is configured, it queues every record version a batch stores in the
batch's own transaction, so a record is stored and queued together or not at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from phip.ingest.keys import record_key
from phip.standard.catalog import DataSet
from phip.standard.validate import platform_now
from phip.store.models import Record
from phip.store.sql import select_in

from .tables import OutboxRow

_INSERT = insert(OutboxRow.__table__)
_RECORDS = Record.__table__
_HEAD = (_RECORDS.c.record_key, _RECORDS.c.version, _RECORDS.c.org_code, _RECORDS.c.dataset)


class OutboxWriter:
    """A :class:`phip.ingest.writer.RecordCounter`: new records and the new versions of corrected
    ones go to ``outbox`` in the order the batch stored them (a key's versions in order)."""

    def counts(self, dataset_code: str) -> bool:
        return True

    def count(self, conn: Connection, org_code: str, dataset: DataSet, new: list[dict[str, Any]],
              changed: list[tuple[dict[str, Any] | None, dict[str, Any]]]) -> None:
        now = platform_now()
        rows = [{"org_code": org_code, "dataset": dataset.code, "record_key": record_key(dataset, record),
                 "version": 1, "payload": record, "created_at": now, "attempts": 0} for record in new]
        if changed:  # their new version numbers, as the writer just stored them
            updated = [{"org_code": org_code, "dataset": dataset.code, "record_key": record_key(dataset, after),
                        "payload": after, "created_at": now, "attempts": 0} for _, after in changed]
            versions = {key: version for key, version, org, ds in select_in(conn, _HEAD, _RECORDS.c.record_key,
                                                                               [u["record_key"] for u in updated])
                        if org == org_code and ds == dataset.code}
            rows += [{**u, "version": versions[u["record_key"]]} for u in updated]
        if rows:
            conn.execute(_INSERT, rows)

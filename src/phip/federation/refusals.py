"""The province's refusals as the city's own rejections (省平台拒收回传医疗机构): the forwarder
writes each record the province refused into the city's ``rejected_records`` in the same
transaction that marks its outbox row, so the hospital reads it through ``/api/v1/feedback``
and the operator on the institution's rejections page, like the city's own rejections.

Such a row's ``reject_key`` is :data:`PREFIX` + the record key: the city's pipeline resolves a
rejection when a record of that key is accepted at the city, which says nothing about the
province (an unchanged re-push is not even forwarded), so only the forwarder resolves these,
when the province accepts a later version or a re-send of that key."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from phip.ingest.writer import payload_hash
from phip.store.models import RejectedRecord
from phip.store.sql import select_in

#: Marks a rejection the province made, beside the pipeline's record keys and ``#`` + content
#: hash (a natural key starting with it would share the row: not seen in any data set).
PREFIX = "^"
#: Said before the province's own message, so hospital and operator know who refused.
SAID_BY = "省平台拒收："
PLATFORM = "province"

_REJECTED = RejectedRecord.__table__
_COLUMNS = (_REJECTED.c.reject_key, _REJECTED.c.org_code, _REJECTED.c.dataset, _REJECTED.c.id,
            _REJECTED.c.content_hash, _REJECTED.c.resolved_at)


def reject_key(record_key: str) -> str:
    key = PREFIX + record_key
    if len(key) <= 200:
        return key
    return PREFIX + "#" + hashlib.blake2b(record_key.encode(), digest_size=16).hexdigest()


def _said(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The province's code kept, its message prefixed, the finding marked as the province's."""
    return [{"severity": f.get("severity", "error"), "code": f.get("code"), "field": f.get("field"),
             "message": SAID_BY + str(f.get("message", "")), "platform": PLATFORM} for f in findings]


def keep_refusals(conn: Connection, rows: Sequence[Any], refused: dict[int, list[dict[str, Any]]],
                  batch_id: str, now: datetime) -> None:
    """Open (or refresh) a rejection for each refused row; resolve the open province
    rejections of the keys the province accepted in this batch. ``rows``: the outbox rows
    sent (org_code, dataset, record_key, payload), ``refused``: findings by index."""
    if refused:
        wanted = {reject_key(rows[i].record_key): i for i in refused if 0 <= i < len(rows)}
        found = {(key, org, ds): (rid, digest, resolved) for key, org, ds, rid, digest, resolved
                 in select_in(conn, _COLUMNS, _REJECTED.c.reject_key, list(wanted))}
        for key, i in wanted.items():
            row = rows[i]
            digest = payload_hash(row.payload)  # the pipeline's hash of a rejected payload
            values = {"record_key": row.record_key, "content_hash": digest, "findings": _said(refused[i]),
                      "payload": row.payload, "batch_id": batch_id[:32], "idx": i, "last_seen": now,
                      "resolved_at": None, "resolved_batch": None}
            old = found.get((key, row.org_code, row.dataset))
            if old is None:
                conn.execute(insert(_REJECTED).values(org_code=row.org_code, dataset=row.dataset, reject_key=key,
                                                      first_seen=now, times_seen=1, **values))
            elif old[2] is None and old[1] == digest:  # open, same content: refused again
                conn.execute(update(_REJECTED).where(_REJECTED.c.id == old[0])
                             .values(times_seen=_REJECTED.c.times_seen + 1, **values))
            else:
                conn.execute(update(_REJECTED).where(_REJECTED.c.id == old[0])
                             .values(first_seen=now, times_seen=1, **values))
    accepted = [row for i, row in enumerate(rows) if i not in refused]
    if not accepted:
        return
    # Open province rejections of the batch's institutions: few (an index range of
    # ix_rejected_records_open), none in the common batch; then matched to its keys.
    dataset = accepted[0].dataset
    opened = conn.execute(select(_REJECTED.c.id, _REJECTED.c.org_code, _REJECTED.c.reject_key).where(
        _REJECTED.c.org_code.in_({row.org_code for row in accepted}), _REJECTED.c.dataset == dataset,
        _REJECTED.c.resolved_at.is_(None), _REJECTED.c.reject_key.startswith(PREFIX, autoescape=True))).all()
    if not opened:
        return
    keys = {(row.org_code, reject_key(row.record_key)) for row in accepted}
    ids = [rid for rid, org, key in opened if (org, key) in keys]
    if ids:
        conn.execute(update(_REJECTED).where(_REJECTED.c.id.in_(ids))
                     .values(resolved_at=now, resolved_batch=batch_id[:32]))

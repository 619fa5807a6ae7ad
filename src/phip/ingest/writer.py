"""Step three of a batch, inside its one transaction: compare with the stored heads by natural
key and content hash (the key directory ``record_keys``, see ``phip.store.partitions``);
insert new records, version corrected ones (the old head goes to ``record_versions``), skip
unchanged ones; bump the daily counters; store the receipt, its findings and the current
rejections.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Integer, bindparam, insert, select, update

from phip.standard.catalog import DataSet
from phip.standard.checks import MAX_NESTING, nested_too_deep, replace_nul
from phip.standard.findings import finding
from phip.store import models as m
from phip.store.dayranges import pack
from phip.store.sql import allocate_ids, bulk_insert, increment, select_in

from .readers import Unreadable
from .receipt import Receipt, Rejection
from .validation import Good


class RecordCounter(Protocol):
    """A counting step run inside a batch's write transaction on the records it stored.
    Reports registers its measure counters this way (:mod:`phip.runtime`), so ingest never
    imports reports."""

    def counts(self, dataset_code: str) -> bool:
        ...

    def count(self, conn: Connection, org_code: str, dataset: DataSet, new: list[dict[str, Any]],
              changed: list[tuple[dict[str, Any] | None, dict[str, Any]]]) -> None:
        ...


def payload_hash(payload: Any) -> str:
    """Content hash of a rejected record's payload as stored (:func:`_jsonable`): equal rows of
    a re-read, equal hash."""
    return hashlib.blake2b(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()


def _jsonable(raw: Any) -> Any:
    """Rejected payloads are stored as sent; make sure they serialise, and store (U+0000
    shown as U+FFFD: see standard.checks.replace_nul)."""
    if isinstance(raw, Unreadable):
        return {"_unreadable": replace_nul(raw.text)}
    if nested_too_deep(raw):
        return {"_too_deep": f"嵌套超过{MAX_NESTING}层，原文未保存"}
    try:
        text = orjson.dumps(raw)
    except TypeError:
        return {"_unserialisable": repr(raw)[:2000]}
    return replace_nul(raw) if b"\\u0000" in text else raw


def upsert(
    conn: Connection, org_code: str, dataset: DataSet, items: list[Good], receipt: Receipt, now: datetime,
    counters: Sequence[RecordCounter] = (),
) -> list[Rejection]:
    """Insert, version or skip each record (no key twice: see :func:`rounds`), run the counting
    steps on what changed and move the event-day counts; the receipt's counts follow.

    Returns the records refused here: changes to a record whose month is archived (its row
    left the store for a Parquet file, ``phip.store.archive``); the caller takes them out of
    the accepted ones."""
    records = m.Record.__table__
    heads: dict[str, tuple[int, str, int, datetime | None, bool]] = {}
    refused: list[Rejection] = []
    # Only the key goes to the database, so every planner uses the directory's primary key
    # (which `record_key` leads) with or without fresh statistics; the few rows of other
    # institutions or data sets sharing a key are dropped here.
    for key, id_, hash_, version, event, row_org, row_dataset, archived in select_in(
            conn, _HEAD_COLUMNS, _KEYS.c.record_key, [g.key for g in items]):
        if row_org == org_code and row_dataset == dataset.code:
            heads[key] = (id_, hash_, version, event, archived)
    inserts: list[dict[str, Any]] = []
    inserted: list[dict[str, Any]] = []  # the records of `inserts`
    updates: list[dict[str, Any]] = []
    updated: list[tuple[Good, datetime | None]] = []  # the records of `updates`, with their old event times
    day_delta: dict[date, int] = {}
    for g in items:
        head = heads.get(g.key)
        if head is None:
            inserts.append({  # a payload as JSON text (bytes) is stored as it is (store.sql.bulk_insert)
                "org_code": org_code, "dataset": dataset.code, "record_key": g.key, "version": 1,
                "content_hash": g.hash, "person_id": g.person_id, "event_time": g.event_time,
                "received_at": now, "batch_id": receipt.batch_id, "payload": g.document or g.record,
            })
            inserted.append(g.record)
            if g.event_time is not None:
                day = g.event_time.date()
                day_delta[day] = day_delta.get(day, 0) + 1
                receipt.event_days.add(day)
        elif head[1] == g.hash:
            receipt.unchanged += 1
        elif head[4]:
            month = f"{head[3]:%Y-%m}" if head[3] else "—"
            refused.append(Rejection(g.index, g.key, [finding("RECORD_ARCHIVED", None, month=month)], keyed=True))
        else:
            id_, _, version, old_event, _ = head
            updates.append({
                "rid": id_, "key": g.key, "version": version + 1, "content_hash": g.hash, "person_id": g.person_id,
                "event_time": g.event_time, "received_at": now, "batch_id": receipt.batch_id, "payload": g.record,
            })
            updated.append((g, old_event))
    if inserts:
        for row, id_ in zip(inserts, allocate_ids(conn, records, len(inserts))):
            row["id"] = id_
        bulk_insert(conn, records, inserts, typed=True)
        bulk_insert(conn, _KEYS, [{"record_key": r["record_key"], "dataset": r["dataset"], "org_code": r["org_code"],
                                   "record_id": r["id"], "version": 1, "content_hash": r["content_hash"],
                                   "event_time": r["event_time"]} for r in inserts], typed=True)
        receipt.accepted += len(inserts)
    old_payloads: dict[int, dict[str, Any]] = {}
    if updates:
        old_payloads = _supersede(conn, [u["rid"] for u in updates], now)
        if len(old_payloads) < len(updates):
            # A head gone since it was read: its month was archived meanwhile (phip.store.archive
            # is the only thing that removes records). Refused as if read after, not updated
            # into nothing.
            for u, (g, old_event) in zip(updates, updated, strict=True):
                if u["rid"] not in old_payloads:
                    month = f"{old_event:%Y-%m}" if old_event else "—"
                    refused.append(Rejection(g.index, g.key, [finding("RECORD_ARCHIVED", None, month=month)], keyed=True))
            kept = [i for i, u in enumerate(updates) if u["rid"] in old_payloads]
            updates, updated = [updates[i] for i in kept], [updated[i] for i in kept]
        for g, old_event in updated:
            old_day = old_event.date() if old_event else None
            new_day = g.event_time.date() if g.event_time else None
            if new_day is not None:
                receipt.event_days.add(new_day)
            if old_day != new_day:
                if old_day is not None:
                    day_delta[old_day] = day_delta.get(old_day, 0) - 1
                if new_day is not None:
                    day_delta[new_day] = day_delta.get(new_day, 0) + 1
    if updates:
        conn.execute(_UPDATE_HEAD, updates)
        conn.execute(_UPDATE_KEY, [{"k": u["key"], "ds": dataset.code, "org": org_code, "version": u["version"],
                                    "content_hash": u["content_hash"], "event_time": u["event_time"]} for u in updates])
        receipt.updated += len(updates)
    for counter in counters:  # e.g. the report measures beyond event_daily
        if counter.counts(dataset.code):
            counter.count(conn, org_code, dataset, inserted,
                          [(old_payloads.get(u["rid"]), u["payload"]) for u in updates])
    increment(
        conn, m.EventDaily.__table__, ("org_code", "dataset", "day"),
        [{"org_code": org_code, "dataset": dataset.code, "day": d, "records": n} for d, n in sorted(day_delta.items()) if n],
    )
    return refused


def _supersede(conn: Connection, record_ids: list[int], now: datetime) -> dict[int, dict[str, Any]]:
    """Copy the current heads into the version history before they are overwritten;
    returns the old payloads by record id (the measure counters move by them)."""
    records = m.Record.__table__
    cols = ["version", "content_hash", "person_id", "event_time", "received_at", "batch_id", "payload"]
    old = select_in(conn, [records.c.id, *[records.c[c] for c in cols]], records.c.id, record_ids)
    if old:
        conn.execute(_INSERT_VERSION,
                     [{"record_id": row.id, **{c: getattr(row, c) for c in cols}, "superseded_at": now} for row in old])
    return {row.id: row.payload for row in old}


def bookkeep(
    conn: Connection, dataset: DataSet, records: Sequence[Any], good: list[Good],
    warned: list[Good], receipt: Receipt, rejections: list[Rejection], now: datetime, source_ref: str | None,
) -> None:
    """The batch's receipt and its lines, the current rejections and the daily counters."""
    conn.execute(_INSERT_BATCH, [{
        "id": receipt.batch_id, "org_code": receipt.org_code, "dataset": dataset.code, "source": receipt.source,
        "source_ref": source_ref, "received_at": now, "total": receipt.total, "accepted": receipt.accepted,
        "updated": receipt.updated, "unchanged": receipt.unchanged, "rejected": receipt.rejected,
        "warnings": receipt.warnings, "event_days": pack(receipt.event_days),
    }])
    # The receipt's lines (what each batch was told); the payload is kept once, with the
    # current rejection (_keep_rejections), not again with every receipt that repeats it.
    rows = [
        {"batch_id": receipt.batch_id, "org_code": receipt.org_code, "dataset": dataset.code, "idx": r.index,
         "record_key": r.record_key, "rejected": True, "findings": [f.as_dict() for f in r.findings],
         "payload": None, "created_at": now}
        for r in rejections
    ]
    rows += [
        {"batch_id": receipt.batch_id, "org_code": receipt.org_code, "dataset": dataset.code, "idx": g.index,
         "record_key": g.key, "rejected": False, "findings": [f.as_dict() for f in g.warnings],
         "payload": None, "created_at": now}
        for g in warned
    ]
    if rows:
        conn.execute(_INSERT_FINDING, rows)
    new = _keep_rejections(conn, dataset, records, good, receipt, rejections, now)
    increment(conn, m.IngestDaily.__table__, ("org_code", "dataset", "day"), [{
        "org_code": receipt.org_code, "dataset": dataset.code, "day": now.date(), "received": receipt.total,
        "accepted": receipt.accepted, "updated": receipt.updated, "unchanged": receipt.unchanged,
        "rejected": receipt.rejected, "warnings": receipt.warnings, "rejected_new": new,
    }])
    if receipt.accepted or receipt.updated:
        conn.execute(_FIRST_UPLOAD, {"org": receipt.org_code, "now": now})


def _keep_rejections(
    conn: Connection, dataset: DataSet, records: Sequence[Any], good: list[Good], receipt: Receipt,
    rejections: list[Rejection], now: datetime,
) -> int:
    """One current rejection per source row and content (``rejected_records``), in the
    batch's transaction (the stream's lock is held: no other batch of it compares at once).

    A re-read of a rejected row with the same content moves its ``last_seen`` and
    ``times_seen``; another content of the same key replaces it, as does a rejection of a
    key that was resolved; a record of that key accepted (new, corrected or unchanged)
    resolves it. Within the batch the last word on a key counts. Returns how many
    rejections are new (``ingest_daily.rejected_new``)."""
    org = receipt.org_code
    last_good = {g.key: g.index for g in good}
    latest: dict[str, tuple[Rejection, str, Any, int]] = {}  # key: (rejection, hash, payload, times in batch)
    for r in rejections:
        payload = _jsonable(records[r.index])
        digest = payload_hash(payload)
        key = r.record_key if r.keyed and r.record_key else "#" + digest
        if last_good.get(key, -1) > r.index:
            continue  # corrected further on in this very batch
        before = latest.get(key)
        latest[key] = (r, digest, payload, before[3] + 1 if before is not None and before[1] == digest else 1)
    cleared = [k for k in last_good if k not in latest]
    found: dict[str, Any] = {}  # key: (org, data set, id, hash, resolved_at)
    if cleared:
        # The stream's open rejections are few, its accepted keys many: read the open ones
        # (an index range, none at all in the common batch) rather than probe every key,
        # unless there are more of them than keys to clear.
        opened = conn.execute(_OPEN_KEYS, {"org": org, "ds": dataset.code, "n": len(cleared) + 1}).all()
        if len(opened) > len(cleared):
            opened = [(k, *row) for k, *row in select_in(conn, _REJECTED_COLUMNS, _REJECTED.c.reject_key, cleared)
                      if row[0] == org and row[1] == dataset.code and row[4] is None]
        keep = set(cleared)
        found.update((k, tuple(row)) for k, *row in opened if k in keep)
    if not latest and not found:
        return 0  # the common batch: nothing rejected, nothing open to clear
    if latest:
        found.update((key, tuple(row)) for key, *row in select_in(conn, _REJECTED_COLUMNS, _REJECTED.c.reject_key,
                                                                   list(latest))
                     if row[0] == org and row[1] == dataset.code)
    inserts, replaces, again, resolves = [], [], [], []
    for key, (r, digest, payload, times) in latest.items():
        row = found.get(key)
        findings = [f.as_dict() for f in r.findings]
        if row is not None and row[4] is None and row[3] == digest:  # open, same content: seen again
            again.append({"rid": row[2], "n": times, "now": now, "batch": receipt.batch_id, "index": r.index,
                          "findings": findings})
            continue
        values = {"record_key": r.record_key, "content_hash": digest, "findings": findings, "payload": payload,
                  "batch_id": receipt.batch_id, "idx": r.index, "first_seen": now, "last_seen": now,
                  "times_seen": times, "resolved_at": None, "resolved_batch": None}
        if row is None:
            inserts.append({"org_code": org, "dataset": dataset.code, "reject_key": key, **values})
        else:
            replaces.append({"rid": row[2], **values})
    for key in cleared:
        row = found.get(key)
        if row is not None and row[4] is None:
            resolves.append({"rid": row[2], "at": now, "batch": receipt.batch_id})
    for statement, params in ((_INSERT_REJECTED, inserts), (_REPLACE_REJECTED, replaces),
                              (_SEEN_AGAIN, again), (_RESOLVE, resolves)):
        if params:
            conn.execute(statement, params)
    return len(inserts) + len(replaces)


# Statements of every batch, built once: SQLAlchemy cache-keys a new statement object on every
# use (see store.sql.select_in).


_RECORDS = m.Record.__table__
_KEYS = m.RecordKey.__table__
_HEAD_COLUMNS = tuple(_KEYS.c[c] for c in (
    "record_key", "record_id", "content_hash", "version", "event_time", "org_code", "dataset", "archived"))
_UPDATE_KEY = update(_KEYS).where(
    _KEYS.c.record_key == bindparam("k"), _KEYS.c.dataset == bindparam("ds"), _KEYS.c.org_code == bindparam("org")
).values({c: bindparam(c) for c in ("version", "content_hash", "event_time")})
_UPDATE_HEAD = update(_RECORDS).where(_RECORDS.c.id == bindparam("rid")).values(
    {c: bindparam(c) for c in ("version", "content_hash", "person_id", "event_time", "received_at", "batch_id", "payload")}
)
_INSERT_VERSION = insert(m.RecordVersion.__table__)
_INSERT_BATCH = insert(m.Batch.__table__)
_INSERT_FINDING = insert(m.BatchFinding.__table__)
_REJECTED = m.RejectedRecord.__table__
_REJECTED_COLUMNS = tuple(_REJECTED.c[c] for c in ("reject_key", "org_code", "dataset", "id", "content_hash", "resolved_at"))
_OPEN_KEYS = select(*_REJECTED_COLUMNS).where(
    _REJECTED.c.org_code == bindparam("org"), _REJECTED.c.dataset == bindparam("ds"), _REJECTED.c.resolved_at.is_(None)
).limit(bindparam("n", type_=Integer))
_INSERT_REJECTED = insert(_REJECTED)
_REPLACE_REJECTED = update(_REJECTED).where(_REJECTED.c.id == bindparam("rid")).values({c: bindparam(c) for c in (
    "record_key", "content_hash", "findings", "payload", "batch_id", "idx", "first_seen", "last_seen", "times_seen",
    "resolved_at", "resolved_batch")})
_SEEN_AGAIN = update(_REJECTED).where(_REJECTED.c.id == bindparam("rid")).values(
    last_seen=bindparam("now"), times_seen=_REJECTED.c.times_seen + bindparam("n"), batch_id=bindparam("batch"),
    idx=bindparam("index"), findings=bindparam("findings"))
_RESOLVE = update(_REJECTED).where(_REJECTED.c.id == bindparam("rid")).values(
    resolved_at=bindparam("at"), resolved_batch=bindparam("batch"))
_INSTITUTIONS = m.Institution.__table__
_FIRST_UPLOAD = update(_INSTITUTIONS).where(
    _INSTITUTIONS.c.code == bindparam("org"), _INSTITUTIONS.c.first_upload_at.is_(None)
).values(first_upload_at=bindparam("now"))


def rounds(items: Iterable[Good]) -> list[list[Good]]:
    """Split a batch so that no natural key appears twice in one round.

    A batch may carry the same record twice (a correction sent right after the original);
    the n-th occurrence goes to round n, so each becomes its own version, in order.
    """
    rounds: list[list[Good]] = []
    seen: dict[str, int] = {}
    for g in items:
        n = seen.get(g.key, 0)
        seen[g.key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(g)
    return rounds

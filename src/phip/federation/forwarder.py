"""The forwarder (转发): sends the outbox to the province's push API in id order, in batches,
with retries and exponential backoff, and marks rows sent only once the province's receipt is
back. At-least-once delivery plus the province's idempotent upsert store each version once.

Each record goes with the city's record key and version; the province skips a version it
already has (:func:`phip.federation.province.ingest_for_region`), so a batch re-sent after a lost
receipt, or a whole range re-sent by an operator, never stores an old version on top of a newer
one. A batch also holds one version per key, so a re-sent batch finds its versions at the head
even at a province that ignored the versions. Memory is one batch, whatever the backlog.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import DateTime, Engine, and_, case, delete, func, insert, literal, null, select, update

from phip.standard.validate import platform_now
from phip.store.models import Record

from .refusals import keep_refusals
from .tables import OutboxRow

log = logging.getLogger(__name__)

#: Rows read per round and the most sent in one request (the province takes 5000; 2000 keep
#: the per-request cost small, benchmarks/federation.py).
BATCH_SIZE = 2000
#: Backoff after the n-th failure in a row: BACKOFF_BASE · 2ⁿ seconds, at most BACKOFF_CAP, ±20 %.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
TIMEOUT = 60.0

_OUTBOX = OutboxRow.__table__
_PENDING = _OUTBOX.c.sent_at.is_(None)


class SendFailed(Exception):
    """The province did not answer a batch with a receipt (down, 5xx, timeout, refused key)."""


@dataclass
class ForwardResult:
    sent: int = 0
    refused: int = 0
    requests: int = 0
    failures: int = 0
    last_error: str | None = None
    gave_up: bool = False  # stopped after max_failures in a row: a backlog is left


class Forwarder:
    """Sends one city platform's outbox to the province (``base_url``, the city's ``key``)."""

    def __init__(self, engine: Engine, base_url: str, key: str, *, batch_size: int = BATCH_SIZE,
                 timeout: float = TIMEOUT, backoff_base: float = BACKOFF_BASE, backoff_cap: float = BACKOFF_CAP,
                 sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        import httpx  # only a running forwarder sends: `phip federation status` need not load it

        self.http = httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"})
        self._http_error = httpx.HTTPError

    def close(self) -> None:
        self.http.close()

    def next_batch(self) -> list[Any]:
        """The oldest unsent rows of the oldest row's data set, up to the first repeated key."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_OUTBOX.c.id, _OUTBOX.c.dataset, _OUTBOX.c.record_key, _OUTBOX.c.org_code, _OUTBOX.c.version,
                       _OUTBOX.c.payload)
                .where(_PENDING).order_by(_OUTBOX.c.id).limit(self.batch_size)
            ).all()
        if not rows:
            return []
        dataset, keys, batch = rows[0].dataset, set(), []
        for row in rows:
            if row.dataset != dataset:
                continue
            key = (row.org_code, row.record_key)
            if key in keys:
                break
            keys.add(key)
            batch.append(row)
        return batch

    def send(self, rows: list[Any]) -> dict[str, Any]:
        """POST one batch; the province's receipt, or :class:`SendFailed`."""
        url = f"{self.base_url}/api/v1/datasets/{rows[0].dataset}/records"
        body = orjson.dumps({"records": [row.payload for row in rows], "keys": [row.record_key for row in rows],
                             "versions": [row.version for row in rows]})
        try:
            response = self.http.post(url, content=body, headers={"Content-Type": "application/json"})
        except self._http_error as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}"[:400]) from exc
        if response.status_code != 200:
            raise SendFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError as exc:
            raise SendFailed(f"HTTP 200 without a receipt: {response.text[:200]}") from exc

    def mark(self, rows: list[Any], receipt: dict[str, Any]) -> int:
        """Mark the batch sent, keeping the province's findings on the rows it refused (and as
        the hospital's rejections, :mod:`.refusals`); returns how many it refused."""
        now = platform_now()
        refused = {r["index"]: r["findings"] for r in receipt.get("rejections", [])}
        with self.engine.begin() as conn:  # the marks and the hospital's rejections together
            keep_refusals(conn, rows, refused, str(receipt.get("batch_id") or ""), now)
            ok = [row.id for i, row in enumerate(rows) if i not in refused]
            for start in range(0, len(ok), 1000):
                conn.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(ok[start:start + 1000]))
                             .values(sent_at=now, tried_at=now, last_error=None))
            for i, findings in refused.items():
                if 0 <= i < len(rows):
                    conn.execute(update(_OUTBOX).where(_OUTBOX.c.id == rows[i].id)
                                 .values(sent_at=now, tried_at=now, findings=findings))
        return len(refused)

    def failed(self, rows: list[Any], error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_([r.id for r in rows]))
                         .values(attempts=_OUTBOX.c.attempts + 1, tried_at=platform_now(), last_error=error[:500]))

    def backoff(self, failures: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** max(0, failures - 1))
        return delay * random.uniform(0.8, 1.2)

    def run(self, *, once: bool = False, max_failures: int | None = None, idle: float = 0.5,
            stop: Callable[[], bool] = lambda: False) -> ForwardResult:
        """Forward until the outbox is empty (``once``) or forever; after a failure wait with
        exponential backoff and try the same batch again. ``max_failures`` in a row ends the run
        (the backlog stays for the next one)."""
        result = ForwardResult()
        streak = 0
        while not stop():
            rows = self.next_batch()
            if not rows:
                if once:
                    break
                self.sleep(idle)
                continue
            try:
                result.requests += 1
                receipt = self.send(rows)
            except SendFailed as exc:
                streak += 1
                result.failures += 1
                result.last_error = str(exc)
                self.failed(rows, str(exc))
                log.warning("forwarding %d rows to %s failed (%d in a row): %s", len(rows), self.base_url, streak, exc)
                if max_failures is not None and streak >= max_failures:
                    result.gave_up = True
                    break
                self.sleep(self.backoff(streak))
                continue
            streak = 0
            refused = self.mark(rows, receipt)
            result.sent += len(rows) - refused
            result.refused += refused
        return result


@dataclass(frozen=True)
class OutboxStatus:
    backlog: int
    oldest_unsent: datetime | None
    sent: int
    refused: int
    last_error: str | None
    last_error_at: datetime | None
    refusals: list[dict[str, Any]]
    sent_last_hour: int = 0  # rows the province took (or refused) in the last hour
    sent_last_minute: int = 0


def outbox_status(engine: Engine, refusals: int = 20) -> OutboxStatus:
    """Backlog, oldest unsent record, last error and the latest refusals of the province."""
    with engine.connect() as conn:
        backlog, oldest = conn.execute(select(func.count(), func.min(_OUTBOX.c.created_at)).where(_PENDING)).one()
        sent = conn.execute(select(func.count()).where(_OUTBOX.c.sent_at.is_not(None), _OUTBOX.c.findings.is_(None))
                            .select_from(_OUTBOX)).scalar_one()
        refused_q = and_(_OUTBOX.c.sent_at.is_not(None), _OUTBOX.c.findings.is_not(None))
        refused = conn.execute(select(func.count()).where(refused_q).select_from(_OUTBOX)).scalar_one()
        error = conn.execute(select(_OUTBOX.c.last_error, _OUTBOX.c.tried_at)
                             .where(_PENDING, _OUTBOX.c.last_error.is_not(None))
                             .order_by(_OUTBOX.c.tried_at.desc()).limit(1)).first()
        now = platform_now()  # the send rate: a range of ix_outbox_pending (sent_at, id)
        hour, minute = conn.execute(select(
            func.count(), func.coalesce(func.sum(case((_OUTBOX.c.sent_at >= now - timedelta(minutes=1), 1), else_=0)), 0))
            .select_from(_OUTBOX).where(_OUTBOX.c.sent_at >= now - timedelta(hours=1))).one()
        latest = conn.execute(select(_OUTBOX.c.org_code, _OUTBOX.c.dataset, _OUTBOX.c.record_key, _OUTBOX.c.findings,
                                     _OUTBOX.c.sent_at).where(refused_q).order_by(_OUTBOX.c.id.desc())
                              .limit(refusals)).all()
    return OutboxStatus(backlog, oldest, sent, refused, error[0] if error else None, error[1] if error else None,
                        [dict(r._mapping) for r in latest], int(hour), int(minute))


def resend(engine: Engine, *, since: datetime | None = None, until: datetime | None = None,
           dataset: str | None = None, org_code: str | None = None) -> int:
    """Queue sent (or refused) rows again, by the time they were queued, data set and
    institution; returns how many. The province skips versions it already has, so a re-send
    stores only what it lacks."""
    conds = [_OUTBOX.c.sent_at.is_not(None)]
    if since is not None:
        conds.append(_OUTBOX.c.created_at >= since)
    if until is not None:
        conds.append(_OUTBOX.c.created_at < until)
    if dataset:
        conds.append(_OUTBOX.c.dataset == dataset)
    if org_code:
        conds.append(_OUTBOX.c.org_code == org_code)
    with engine.begin() as conn:
        # null(): a JSON column stores Python None as the JSON text 'null', which IS NULL misses
        # (the row would count as refused ever after)
        return conn.execute(update(_OUTBOX).where(*conds).values(sent_at=None, findings=null(), attempts=0,
                                                                 last_error=None)).rowcount


def queue_history(engine: Engine, *, dataset: str | None = None, chunk: int = 5000) -> int:
    """Queue the records stored before the upstream was configured (their current versions),
    a chunk per transaction so a long history never sits in memory; returns how many."""
    records, queued, after = Record.__table__, 0, 0
    now = platform_now()
    while True:
        with engine.begin() as conn:
            stmt = select(records.c.id).where(records.c.id > after).order_by(records.c.id).limit(chunk)
            if dataset:
                stmt = stmt.where(records.c.dataset == dataset)
            ids = conn.execute(stmt).scalars().all()
            if not ids:
                return queued
            source = select(records.c.org_code, records.c.dataset, records.c.record_key, records.c.version,
                            records.c.payload, literal(now, DateTime()), literal(0)).where(
                records.c.id >= ids[0], records.c.id <= ids[-1], *([records.c.dataset == dataset] if dataset else []))
            conn.execute(insert(_OUTBOX).from_select(
                ["org_code", "dataset", "record_key", "version", "payload", "created_at", "attempts"],
                source.order_by(records.c.id)))
            queued += len(ids)
            after = ids[-1]


#: Rows deleted per transaction by :func:`purge`: short transactions beside a running forwarder.
PURGE_CHUNK = 5000


def purge(engine: Engine, older_than: timedelta, *, chunk: int = PURGE_CHUNK, now: datetime | None = None) -> int:
    """Delete the rows the province took (sent, no findings) longer than ``older_than`` ago, a
    chunk per transaction; returns how many. Unsent rows are never deleted, nor refused ones:
    ``resend`` needs them once the institution is registered at the province. A purged range
    cannot be re-sent row by row any more: ``queue_history`` queues the current versions."""
    cutoff = (now or platform_now()) - older_than
    done = (_OUTBOX.c.sent_at.is_not(None), _OUTBOX.c.sent_at < cutoff, _OUTBOX.c.findings.is_(None))
    purged = 0
    while True:
        with engine.begin() as conn:
            ids = conn.execute(select(_OUTBOX.c.id).where(*done).order_by(_OUTBOX.c.id).limit(chunk)).scalars().all()
            if not ids:
                return purged
            # the condition again: a row re-queued (resend) since the select stays
            purged += conn.execute(delete(_OUTBOX).where(_OUTBOX.c.id.in_(ids), *done)).rowcount

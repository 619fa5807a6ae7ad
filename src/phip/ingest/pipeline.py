"""The one ingest pipeline: every entry point (push API, file import, pull collection, city
forwarding, the demo) hands batches to :meth:`Pipeline.ingest` and gets a receipt back.

For each batch:

1. validate and normalise every record against the standard (bad records are rejected with
   their findings; good ones go on — each record stands alone);
2. resolve the person of each good record (:mod:`phip.ingest.identity`);
3. in ONE transaction: compare with the stored heads by natural key and content hash; insert
   new records, version corrected ones (the old head is copied to ``record_versions``),
   skip unchanged ones; bump the daily counters; store the receipt and the findings.

Step 3 being one transaction is what makes the pipeline safe to kill: a batch is either
entirely in the store or not at all, and replaying it is harmless because unchanged content
is recognised by its hash. On PostgreSQL an advisory lock per (institution, data set)
serialises concurrent batches of the same stream so the compare-and-write cannot race.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, TypedDict, Unpack

import orjson
from sqlalchemy import Connection, Engine, Integer, bindparam, insert, select, update

from phip.errors import PhipError
from phip.gc_tuning import gc_paused
from phip.standard.catalog import DataSet, Standard, load_standard
from phip.standard.checks import MAX_NESTING, nested_too_deep, replace_nul
from phip.standard.validate import Finding, RecordValidator, finding, platform_now, validator_for
from phip.store import models as m
from phip.store.dayranges import pack
from phip.store.sql import bulk_insert, increment, lock_key, select_in

from . import workers
from .identity import PersonResolver
from .keys import KEY_SEPARATOR, document, record_key
from .readers import Unreadable

#: Batches a stream validates ahead of the one being written: with one, every hiccup of either
#: process stalls the other; two keep both busy (and cost two batches of memory).
STREAM_LOOKAHEAD = 2


class IngestError(PhipError):
    """A batch that cannot enter the pipeline at all (not a record-level problem)."""

    code = "INGEST_ERROR"

    def __init__(self, message: str):
        super().__init__(None, message)


class UnknownInstitution(IngestError):
    code = "UNKNOWN_ORG"


class UnknownDataset(IngestError):
    code = "UNKNOWN_DATASET"


@dataclass(slots=True)
class Rejection:
    index: int
    record_key: str | None
    findings: list[Finding]
    #: ``record_key`` is the natural key as a stored record of it would have it (normalised):
    #: the stored rejection is known by it, and a record of that key accepted later clears it.
    #: Otherwise the key is a best effort for the hospital to read, and the rejection is known
    #: by the content hash of its payload.
    keyed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "record_key": self.record_key, "findings": [f.as_dict() for f in self.findings]}


@dataclass(slots=True)
class Receipt:
    """What the sender is told (回执): one per batch."""

    batch_id: str
    org_code: str
    dataset: str
    source: str
    received_at: datetime
    total: int = 0
    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    # event days of the records this batch stored or changed: kept with the batch so that the
    # quality analysis covers the days that received data, a back-fill's included
    event_days: set[date] = field(default_factory=set)

    def as_dict(self, max_rejections: int | None = None) -> dict[str, Any]:
        shown = self.rejections if max_rejections is None else self.rejections[:max_rejections]
        return {
            "batch_id": self.batch_id,
            "org_code": self.org_code,
            "dataset": self.dataset,
            "source": self.source,
            "received_at": self.received_at.isoformat(sep=" "),
            "counts": {
                "total": self.total, "accepted": self.accepted, "updated": self.updated,
                "unchanged": self.unchanged, "rejected": self.rejected, "warnings": self.warnings,
            },
            "rejections": [r.as_dict() for r in shown],
        }

    def add(self, other: Receipt, keep: int | None = None) -> None:
        """Fold another receipt into this one (a file import is many batches), keeping at most
        ``keep`` rejections in all (every one is stored with its batch either way): a file of
        a million bad rows must not be held in memory to show the first ten."""
        for name in ("total", "accepted", "updated", "unchanged", "rejected", "warnings"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.event_days |= other.event_days
        room = len(other.rejections) if keep is None else max(0, keep - len(self.rejections))
        self.rejections.extend(other.rejections[:room])


def _raw_key(dataset: DataSet, raw: Any) -> str | None:
    """Best-effort key of a rejected record so the hospital can find it."""
    if not isinstance(raw, dict):
        return None
    try:
        parts = [raw[k] for k in dataset.natural_key]
    except KeyError:
        return None
    if any(isinstance(part, dict | list | tuple) for part in parts):
        return None  # a key is a value, never a structure (whose str() may nest without end)
    return replace_nul(KEY_SEPARATOR.join(map(str, parts))[:200])


def _rejected(validator: RecordValidator, dataset: DataSet, index: int, raw: Any, findings: list[Finding]) -> Rejection:
    """A rejection known by the natural key when its fields can be read as a stored record's
    would be (then the corrected record, stored under that key, clears it), else by content."""
    values = validator.natural_key_values(raw)
    if values is not None:
        key = record_key(dataset, values)
        if len(key) <= 200:
            return Rejection(index, key, findings, True)
    return Rejection(index, _raw_key(dataset, raw), findings)


def _payload_hash(payload: Any) -> str:
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


@dataclass(slots=True)
class _Good:
    index: int
    record: dict[str, Any]
    key: str
    hash: str
    event_time: datetime | None
    warnings: list[Finding]
    #: The record as its canonical JSON (see ingest.keys.document) when validated in this process; a
    #: validation process leaves it out (:func:`good_rows`): pickled across, the text
    #: cost more memory and time than serialising the record again.
    document: bytes | None = None
    person_id: str | None = None


def validate_batch(
    standard: Standard, dataset: DataSet, org_code: str, org_name: str, records: Sequence[Any], now: datetime,
    *, documents: bool = True,
) -> tuple[list[_Good], list[Rejection]]:
    """Step one of a batch, with no database: validate and normalise every record, key and hash
    it. Returns (good, rejections); a pure function of its arguments, so it runs the
    same in the writer's process or in a validation process (:mod:`phip.ingest.workers`).

    Person resolution stays with the writer, although its record-only part (identifiers,
    demographics, the golden row a new person would get) needs no database either: computed
    there it costs about 15 µs per record, but its result (some fifty small objects) took
    27 µs to unpickle in the writer, more than it saved (measured on 500,000 pulled visits).

    ``documents``: keep each record's canonical JSON for the writer (:class:`_Good`). A
    validation process does not: it hands back records only, and holding a batch's texts
    until then raised its peak memory from 199 to 232 MiB on 500,000 pulled visits."""
    with gc_paused():
        return _validate_batch(standard, dataset, org_code, org_name, records, now, documents)


def _validate_batch(
    standard: Standard, dataset: DataSet, org_code: str, org_name: str, records: Sequence[Any], now: datetime,
    documents: bool,
) -> tuple[list[_Good], list[Rejection]]:
    validator = validator_for(standard, dataset)
    event_field = dataset.event_time
    good: list[_Good] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(records):
        if isinstance(raw, Unreadable):
            rejections.append(Rejection(index, None, [finding("UNREADABLE", None, reason=raw.reason)]))
            continue
        if isinstance(raw, dict):
            claimed = raw.get("org_code")
            if claimed in (None, ""):
                raw = {**raw, "org_code": org_code}
                if raw.get("org_name") in (None, ""):
                    raw["org_name"] = org_name
            elif claimed != org_code and str(claimed).strip().upper() != org_code:
                rejections.append(_rejected(validator, dataset, index, raw,
                                            [finding("ORG_MISMATCH", "org_code", value=claimed, org=org_code)]))
                continue
        outcome = validator.validate(raw, now)
        if outcome.record is None:
            rejections.append(_rejected(validator, dataset, index, raw, outcome.findings))
            continue
        record = outcome.record
        event = record.get(event_field)
        if event is not None and not isinstance(event, datetime):
            event = datetime(event.year, event.month, event.day)
        text, digest = document(record)
        good.append(_Good(index, record, record_key(dataset, record), digest, event, outcome.findings,
                          text if documents else None))
    return good, rejections


def validate_remote(dataset_code: str, org_code: str, org_name: str, records: Sequence[Any], now: datetime) -> tuple:
    """One batch validated in the validation process (:mod:`.workers`), as it returns it:
    (rows, rejections)."""
    standard = load_standard()
    good, rejections = validate_batch(standard, standard.dataset(dataset_code), org_code, org_name, records, now,
                                      documents=False)
    return good_rows(good), rejections


def good_rows(good: list[_Good]) -> list[tuple]:
    """Validated records as plain tuples, which pickle several times faster than the dataclass."""
    return [(g.index, g.record, g.key, g.hash, g.event_time, g.warnings) for g in good]


def goods(rows: list[tuple]) -> list[_Good]:
    """The pipeline's validated records from the plain tuples a validation process returns."""
    return [_Good(*row) for row in rows]


workers.preload(validate_remote)


def _from_remote(validated: tuple | None) -> tuple[list[_Good], list[Rejection]] | None:
    return None if validated is None else (goods(validated[0]), validated[1])


class RecordCounter(Protocol):
    """A counting step run inside a batch's write transaction on the records it stored.
    Reports registers its measure counters this way (:mod:`phip.runtime`), so ingest never
    imports reports."""

    def counts(self, dataset_code: str) -> bool:
        ...

    def count(self, conn: Connection, org_code: str, dataset: DataSet, new: list[dict[str, Any]],
              changed: list[tuple[dict[str, Any] | None, dict[str, Any]]]) -> None:
        ...


class BatchOptions(TypedDict, total=False):
    """Keyword options of :meth:`Pipeline.ingest`, as :meth:`Pipeline.prepare` defines them."""

    source: str
    source_ref: str | None
    batch_id: str | None
    now: datetime | None
    index_base: int


@dataclass(slots=True)
class Prepared:
    """A validated batch waiting for its transaction (see :meth:`Pipeline.prepare`)."""

    dataset: DataSet
    records: Sequence[Any]
    receipt: Receipt
    good: list[_Good]
    warned: list[_Good]
    stored_rejections: list[Rejection]
    source_ref: str | None


class Pipeline:
    """Validate → normalise → identify → upsert → count. Thread-safe; one per process is enough."""

    def __init__(self, engine: Engine, standard: Standard | None = None, *, resolver: PersonResolver,
                 counters: Sequence[RecordCounter] = ()):
        """Built by :func:`phip.runtime.build_pipeline`, which chooses the resolver and counters."""
        self.engine = engine
        self.standard = standard or load_standard()
        self.resolver = resolver
        self.counters = tuple(counters)
        self._org_names: dict[str, str] = {}

    # -- public -------------------------------------------------------------------------

    def dataset(self, ref: str) -> DataSet:
        try:
            return self.standard.dataset(ref)
        except KeyError:
            raise UnknownDataset(f"数据集“{ref}”不存在，请查阅省平台数据采集标准") from None

    def institution_name(self, org_code: str) -> str:
        if org_code not in self._org_names:
            with self.engine.connect() as conn:
                name = conn.execute(
                    select(m.Institution.name).where(m.Institution.code == org_code)
                ).scalar_one_or_none()
            if name is None:
                raise UnknownInstitution(f"医疗机构“{org_code}”未在省平台登记")
            self._org_names[org_code] = name
        return self._org_names[org_code]

    def validation_process(self) -> ProcessPoolExecutor | None:
        """The validation process (:mod:`phip.ingest.workers`) this pipeline's streams may use:
        None when it is off, or when this pipeline has a standard of its own (the process
        knows only the published one)."""
        return workers.pool() if self.standard is load_standard() else None

    def ingest(self, org_code: str, dataset_ref: str, records: Sequence[Any], **options: Unpack[BatchOptions]) -> Receipt:
        """Run one batch through the pipeline (:meth:`prepare`, then :meth:`commit`)."""
        return self.commit(self.prepare(org_code, dataset_ref, records, **options))

    def ingest_stream(
        self,
        org_code: str,
        dataset_ref: str,
        batches: Iterable[Sequence[Any]],
        *,
        source: str,
        source_ref: str | None = None,
        now: datetime | None = None,
    ) -> Iterator[Receipt]:
        """Ingest a stream of batches of one (institution, data set), yielding their receipts in
        order; rejection indices count from the start of the stream.

        The same two steps as :meth:`ingest`, overlapped: while this process writes batch k in
        its transaction, a validation process (:mod:`phip.ingest.workers`) validates the next
        ones (:data:`STREAM_LOOKAHEAD`) on the other core. Batches still commit one by one, in order, each in its own
        transaction, so the kill-and-resume guarantees of :meth:`ingest` hold unchanged. When
        the source fails, every batch read before the failure is committed and its receipt
        handed back first: a caller that advances a cursor per receipt loses track of nothing.
        """
        dataset = self.dataset(dataset_ref)
        org_name = self.institution_name(org_code)
        now = now or platform_now()
        remote = self.validation_process() is not None
        offset = 0
        source_batches = iter(batches)
        waiting: deque[tuple[Sequence[Any], int, Future | None]] = deque()  # read, being validated, not written

        def prepared(item: tuple[Sequence[Any], int, Future | None]) -> Prepared:
            records, base, future = item
            return self.prepare(org_code, dataset.code, records, source=source, source_ref=source_ref, now=now,
                                index_base=base, validated=_from_remote(workers.result(future)))

        while True:
            try:
                records = next(source_batches, None)
            except BaseException:
                while waiting:
                    yield self.commit(prepared(waiting.popleft()))
                raise
            if records is None:
                break
            future = workers.submit(validate_remote, dataset.code, org_code, org_name, records, now) if remote else None
            waiting.append((records, offset, future))
            offset += len(records)
            if len(waiting) > STREAM_LOOKAHEAD:
                yield self.commit(prepared(waiting.popleft()))  # written here while the next ones are validated there
        while waiting:
            yield self.commit(prepared(waiting.popleft()))

    def prepare(
        self,
        org_code: str,
        dataset_ref: str,
        records: Sequence[Any],
        *,
        source: str = "api",
        source_ref: str | None = None,
        batch_id: str | None = None,
        now: datetime | None = None,
        index_base: int = 0,
        validated: tuple[list[_Good], list[Rejection]] | None = None,
    ) -> Prepared:
        """Step one, without the database: validate and normalise every record, key and hash it
        (:func:`validate_batch`, unless a validation process already did: ``validated``).
        ``index_base`` offsets rejection indices when a caller splits a larger upload into batches."""
        dataset = self.dataset(dataset_ref)
        org_name = self.institution_name(org_code)
        now = now or platform_now()
        receipt = Receipt(batch_id or uuid.uuid4().hex, org_code, dataset.code, source, now, total=len(records))
        if validated is None:
            validated = validate_batch(self.standard, dataset, org_code, org_name, records, now)
        good, stored_rejections = validated
        warned = [g for g in good if g.warnings]
        receipt.rejected = len(stored_rejections)
        receipt.warnings = len(warned)
        receipt.rejections = [Rejection(r.index + index_base, r.record_key, r.findings, r.keyed) for r in stored_rejections]
        return Prepared(dataset, records, receipt, good, warned, stored_rejections, source_ref)

    def commit(self, prepared: Prepared) -> Receipt:
        """Step two, one transaction: resolve persons, upsert, count, store the receipt."""
        dataset, receipt, good = prepared.dataset, prepared.receipt, prepared.good
        org_code, now = receipt.org_code, receipt.received_at
        with gc_paused(), self.engine.begin() as conn:
            lock_key(conn, f"{org_code}/{dataset.code}")
            if good:
                resolution = self.resolver.resolve(conn, org_code, dataset, [g.record for g in good], now)
                for g, person_id in zip(good, resolution.person_ids, strict=True):
                    g.person_id = person_id
                for index, found in resolution.findings.items():
                    if not good[index].warnings:
                        prepared.warned.append(good[index])
                        receipt.warnings += 1
                    good[index].warnings.extend(found)
                for round_ in _rounds(good):
                    self._upsert(conn, org_code, dataset, round_, receipt, now)
            self._bookkeep(
                conn, dataset, prepared.records, good, prepared.warned, receipt, prepared.stored_rejections, now,
                prepared.source_ref,
            )
        return receipt

    # -- steps --------------------------------------------------------------------------

    def _upsert(
        self, conn: Connection, org_code: str, dataset: DataSet, items: list[_Good], receipt: Receipt, now: datetime
    ) -> None:
        records = m.Record.__table__
        heads: dict[str, tuple[int, str, int, datetime | None]] = {}
        # Only the key goes to the database: `record_key` leads the natural-key index, so every
        # planner uses that index, with or without fresh statistics (with `dataset = …` too,
        # PostgreSQL picked the dataset/event index on a freshly loaded table and scanned the
        # whole data set per batch). The few rows of other institutions or data sets sharing
        # a key are dropped here.
        for key, id_, hash_, version, event, row_org, row_dataset in select_in(conn, _HEAD_COLUMNS, records.c.record_key,
                                                                              [g.key for g in items]):
            if row_org == org_code and row_dataset == dataset.code:
                heads[key] = (id_, hash_, version, event)
        inserts: list[dict[str, Any]] = []
        inserted: list[dict[str, Any]] = []  # the records of `inserts`
        updates: list[dict[str, Any]] = []
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
            else:
                id_, _, version, old_event = head
                updates.append({
                    "rid": id_, "version": version + 1, "content_hash": g.hash, "person_id": g.person_id,
                    "event_time": g.event_time, "received_at": now, "batch_id": receipt.batch_id, "payload": g.record,
                })
                old_day = old_event.date() if old_event else None
                new_day = g.event_time.date() if g.event_time else None
                if new_day is not None:
                    receipt.event_days.add(new_day)
                if old_day != new_day:
                    if old_day is not None:
                        day_delta[old_day] = day_delta.get(old_day, 0) - 1
                    if new_day is not None:
                        day_delta[new_day] = day_delta.get(new_day, 0) + 1
        if inserts:
            bulk_insert(conn, records, inserts, typed=True)
            receipt.accepted += len(inserts)
        old_payloads: dict[int, dict[str, Any]] = {}
        if updates:
            old_payloads = self._supersede(conn, [u["rid"] for u in updates], now)
            conn.execute(_UPDATE_HEAD, updates)
            receipt.updated += len(updates)
        for counter in self.counters:  # e.g. the report measures beyond event_daily
            if counter.counts(dataset.code):
                counter.count(conn, org_code, dataset, inserted,
                              [(old_payloads.get(u["rid"]), u["payload"]) for u in updates])
        increment(
            conn, m.EventDaily.__table__, ("org_code", "dataset", "day"),
            [{"org_code": org_code, "dataset": dataset.code, "day": d, "records": n} for d, n in sorted(day_delta.items()) if n],
        )

    @staticmethod
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

    def _bookkeep(
        self, conn: Connection, dataset: DataSet, records: Sequence[Any], good: list[_Good],
        warned: list[_Good], receipt: Receipt, rejections: list[Rejection], now: datetime, source_ref: str | None,
    ) -> None:
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
        new = self._keep_rejections(conn, dataset, records, good, receipt, rejections, now)
        increment(conn, m.IngestDaily.__table__, ("org_code", "dataset", "day"), [{
            "org_code": receipt.org_code, "dataset": dataset.code, "day": now.date(), "received": receipt.total,
            "accepted": receipt.accepted, "updated": receipt.updated, "unchanged": receipt.unchanged,
            "rejected": receipt.rejected, "warnings": receipt.warnings, "rejected_new": new,
        }])
        if receipt.accepted or receipt.updated:
            conn.execute(_FIRST_UPLOAD, {"org": receipt.org_code, "now": now})


    @staticmethod
    def _keep_rejections(
        conn: Connection, dataset: DataSet, records: Sequence[Any], good: list[_Good], receipt: Receipt,
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
            digest = _payload_hash(payload)
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
            # unless there are more of them than keys to clear (measured on PostgreSQL, 1,000-
            # record batches with ten open: 5.4 ms a batch for the probe).
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


# Statements of every batch, built once: building one afresh and letting SQLAlchemy cache-key
# the new object cost about 0.2 ms of the client's CPU per statement (see store.sql.select_in).
_RECORDS = m.Record.__table__
_HEAD_COLUMNS = tuple(_RECORDS.c[c] for c in ("record_key", "id", "content_hash", "version", "event_time", "org_code", "dataset"))
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


def _rounds(items: Iterable[_Good]) -> list[list[_Good]]:
    """Split a batch so that no natural key appears twice in one round.

    A batch may carry the same record twice (a correction sent right after the original);
    the n-th occurrence goes to round n, so each becomes its own version, in order.
    """
    rounds: list[list[_Good]] = []
    seen: dict[str, int] = {}
    for g in items:
        n = seen.get(g.key, 0)
        seen[g.key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(g)
    return rounds

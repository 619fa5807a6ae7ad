"""The one ingest pipeline: every entry point (push API, file import, pull collection, city
forwarding, the demo) hands batches to :class:`Pipeline` and gets a receipt back.

A batch goes through two steps: :meth:`Pipeline.prepare` validates it with no database
(:mod:`.validation`); :meth:`Pipeline.commit` resolves its persons (:mod:`.identity`) and writes
it (:mod:`.writer`) in ONE transaction, so a batch is either entirely in the store or not at
all, and replaying it is harmless (unchanged content is recognised by its hash). On PostgreSQL
an advisory lock per (institution, data set) serialises concurrent batches of one stream.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import Engine, select

from phip.gc_tuning import gc_paused
from phip.standard.catalog import DataSet, Standard, load_standard
from phip.standard.validate import platform_now
from phip.store import models as m
from phip.store.sql import lock_batch

from . import workers
from .errors import IngestError, UnknownDataset, UnknownInstitution
from .identity import PersonResolver
from .receipt import Receipt, Rejection
from .validation import Good, Validated, from_remote, validate_batch, validate_remote
from .writer import RecordCounter, bookkeep, rounds, upsert

__all__ = ["BatchOptions", "IngestError", "Pipeline", "Prepared", "Receipt", "RecordCounter", "Rejection",
           "UnknownDataset", "UnknownInstitution", "Validated"]

#: Batches a stream validates ahead of the one being written: with one, every hiccup of either
#: process stalls the other; two keep both busy (and cost two batches of memory).
STREAM_LOOKAHEAD = 2


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
    good: list[Good]
    warned: list[Good]
    stored_rejections: list[Rejection]
    source_ref: str | None
    index_base: int = 0  # the receipt's indices are the caller's (see prepare)

    def reject(self, rejections: list[Rejection]) -> None:
        """Count rejections in the receipt, their indices the caller's (``index_base``)."""
        self.stored_rejections.extend(rejections)
        self.receipt.rejected += len(rejections)
        self.receipt.rejections += [Rejection(r.index + self.index_base, r.record_key, r.findings, r.keyed) for r in rejections]

    def refuse(self, refused: list[Rejection]) -> None:
        """Records the writer refused after validation (a change to an archived month): rejected
        like the validator's rejections, no longer accepted or warned."""
        gone = {r.index for r in refused}
        self.good = [g for g in self.good if g.index not in gone]
        self.warned[:] = [g for g in self.warned if g.index not in gone]
        self.receipt.warnings = len(self.warned)
        self.reject(refused)


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
        batches: Iterable[Sequence[Any] | Validated],
        *,
        source: str,
        source_ref: str | None = None,
        now: datetime | None = None,
    ) -> Iterator[Receipt]:
        """The one stream driver (file import, pull collection): ingest batches of one
        (institution, data set), yielding their receipts in order; rejection indices count from
        the start of the stream.

        A batch of records is validated by the validation process (:mod:`phip.ingest.workers`)
        :data:`STREAM_LOOKAHEAD` batches ahead of the one this process writes; a
        :class:`Validated` batch (a reader process validated it) is written at once. Batches
        commit one by one, in order, each in its own transaction, so a killed stream keeps whole
        batches and a rerun completes it. When the source fails, every batch read before the
        failure is committed and its receipt handed back first: a caller that advances a cursor
        per receipt loses track of nothing.
        """
        dataset = self.dataset(dataset_ref)
        org_name = self.institution_name(org_code)
        now = now or platform_now()
        remote = self.validation_process() is not None
        offset = 0
        source_batches = iter(batches)
        # read, being validated, not written: (records, index base, future, validated)
        waiting: deque[tuple[Sequence[Any], int, Future | None, tuple | None]] = deque()

        def prepared(item: tuple[Sequence[Any], int, Future | None, tuple | None]) -> Prepared:
            records, base, future, validated = item
            if validated is None:
                validated = from_remote(workers.result(future))
            return self.prepare(org_code, dataset.code, records, source=source, source_ref=source_ref, now=now,
                                index_base=base, validated=validated)

        while True:
            try:
                batch = next(source_batches, None)
            except BaseException:
                while waiting:
                    yield self.commit(prepared(waiting.popleft()))
                raise
            if batch is None:
                break
            if isinstance(batch, Validated):
                waiting.append((batch.records, offset, None, (batch.good, batch.rejections)))
                offset += len(batch.records)
                while waiting:  # nothing left to validate: write now
                    yield self.commit(prepared(waiting.popleft()))
                continue
            future = workers.submit(validate_remote, dataset.code, org_code, org_name, batch, now) if remote else None
            waiting.append((batch, offset, future, None))
            offset += len(batch)
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
        validated: tuple[list[Good], list[Rejection]] | None = None,
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
        good, rejections = validated
        warned = [g for g in good if g.warnings]
        receipt.warnings = len(warned)
        prepared = Prepared(dataset, records, receipt, good, warned, [], source_ref, index_base)
        prepared.reject(rejections)
        return prepared

    def commit(self, prepared: Prepared) -> Receipt:
        """Step two, one transaction: resolve persons, upsert, count, store the receipt."""
        dataset, receipt, good = prepared.dataset, prepared.receipt, prepared.good
        org_code, now = receipt.org_code, receipt.received_at
        with gc_paused(), self.engine.begin() as conn:
            lock_batch(conn, f"{org_code}/{dataset.code}")
            if good:
                resolution = self.resolver.resolve(conn, org_code, dataset, [g.record for g in good], now)
                for g, person_id in zip(good, resolution.person_ids, strict=True):
                    g.person_id = person_id
                for index, found in resolution.findings.items():
                    if not good[index].warnings:
                        prepared.warned.append(good[index])
                        receipt.warnings += 1
                    good[index].warnings.extend(found)
                refused = [r for round_ in rounds(good) for r in upsert(conn, org_code, dataset, round_, receipt,
                                                                          now, self.counters)]
                if refused:  # changes to archived records
                    prepared.refuse(refused)
            bookkeep(
                conn, dataset, prepared.records, prepared.good, prepared.warned, receipt, prepared.stored_rejections, now,
                prepared.source_ref,
            )
        return receipt


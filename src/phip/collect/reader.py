"""Reading a source in the validation process (源库读取进程).

A pull collection fetches each row from the hospital database, maps it to the standard,
validates it and writes it in the platform's transaction. The first three run here, in the
validation process of :mod:`phip.ingest.workers`, a stream per job, and the collector's
process only writes: a reader thread would share the writer's GIL and gain nothing
(docs/performance.md).

The protocol is three calls on that one-process pool, which runs them in order:
:func:`open_stream` (connect, count, execute the query with a server-side cursor),
:func:`next_batch` (fetch, map and validate one batch; None at the end) and
:func:`close_stream`. The collector keeps a few :func:`next_batch` calls in flight, so the
reader works ahead while the collector writes; batches still come back, and are
committed, in order, and a source error arrives after every batch read before it, as
with the in-process reader. Raw rows travel back only for batches with rejections (the
findings keep rejected records as sent).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from phip.gc_tuning import gc_paused
from phip.ingest import workers
from phip.ingest.validation import Validated, goods, validate_remote

from .mapping import Mapping, resolve_url

LOOKAHEAD = 3
_streams: dict[str, tuple[Iterator[Any], Any]] = {}  # in the reader process: stream id -> (batches, engine)
_ids = itertools.count()


@dataclass(slots=True)
class Batch:
    """One batch as the reader hands it over."""

    rows: int  # rows read from the source
    high: Any  # the batch's highest cursor value (None without a cursor)
    records: list[Any] | None  # the mapped records, only when some were rejected
    validated: tuple[list[Any], list[Any]]  # (good rows, rejections) as ingest.validation.validate_remote returns


# -- in the reader process ---------------------------------------------------------------------


def open_stream(stream_id: str, mapping: Mapping, job_key: str, sql: str, count_sql: str, params: dict[str, Any],
                batch_size: int, count: bool, org_name: str, now: datetime, first_row: int = 0) -> int | None:
    """Start reading; returns the row count when asked for (``count``)."""
    from phip.standard.catalog import load_standard

    from .extract import map_batches, read_batches
    from .source import open_source

    close_stream(stream_id)
    standard = load_standard()
    job = mapping.job(job_key)
    dataset = standard.dataset(job.dataset)
    engine = open_source(mapping)
    total: list[int | None] = [None]
    batches = read_batches(mapping, job, dataset, engine, sql, count_sql, params, batch_size, count,
                           on_total=lambda n: total.__setitem__(0, n))

    def produce() -> Iterator[Batch]:
        for n_rows, records, high in map_batches(job, batches, first_row):
            good_rows, rejections = validate_remote(dataset.code, mapping.source.org, org_name, records, now)
            yield Batch(n_rows, high, records if rejections else None, (good_rows, rejections))

    stream = produce()
    _streams[stream_id] = (stream, engine)
    try:
        first = next(stream, None)  # connect, count and execute now: such errors surface on open
    except BaseException:
        close_stream(stream_id)
        raise
    _streams[stream_id] = (itertools.chain([first], stream) if first is not None else iter(()), engine)
    return total[0]


def next_batch(stream_id: str) -> Batch | None:
    """The next batch; None at the end (also for the calls sent ahead past the end)."""
    if stream_id not in _streams:
        return None
    stream, _ = _streams[stream_id]
    try:
        with gc_paused():  # fetch, map and validate: one batch's worth of work
            batch = next(stream, None)
    except BaseException:
        close_stream(stream_id)
        raise
    if batch is None:
        close_stream(stream_id)
    return batch


def close_stream(stream_id: str) -> None:
    entry = _streams.pop(stream_id, None)
    if entry is not None:
        stream, engine = entry
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        engine.dispose()


# -- in the collector's process ----------------------------------------------------------------


def remote_batches(executor: Any, mapping: Mapping, job_key: str, sql: str, count_sql: str, params: dict[str, Any],
                   batch_size: int, count: bool, org_name: str, now: datetime,
                   on_total: Any, first_row: int = 0) -> Iterator[tuple[int, Any, Validated]]:
    """The job's batches read, mapped and validated in the reader process (``executor``,
    :func:`phip.ingest.workers.pool`): (rows, high, the validated batch), in order; raises
    what the reader raised, after the batches read before it."""
    stream_id = f"{os.getpid()}-{next(_ids)}"
    # The reader process was started with this process's environment of that moment: send
    # the URL resolved here and now (credentials stay within the platform's own processes).
    source = mapping.source.model_copy(update={"url": resolve_url(mapping.source)})
    mapping = mapping.model_copy(update={"source": source})
    opened = _submit(executor, open_stream, stream_id, mapping, job_key, sql, count_sql, params, batch_size, count,
                     org_name, now, first_row)
    in_flight: deque[Future] = deque()
    done = False
    try:
        on_total(_result(opened))
        while True:
            while not done and len(in_flight) < LOOKAHEAD:
                in_flight.append(_submit(executor, next_batch, stream_id))
            if not in_flight:
                return
            batch = _result(in_flight.popleft())
            if batch is None:
                done = True
                continue
            good_rows, rejections = batch.validated
            n_records = len(good_rows) + len(rejections)
            # raw records travel back only when some were rejected (their payloads are kept)
            records = batch.records if batch.records is not None else [None] * n_records
            yield batch.rows, batch.high, Validated(records, goods(good_rows), rejections)
    finally:
        if not done:
            for future in in_flight:
                future.cancel()
            try:
                executor.submit(close_stream, stream_id)
            except Exception:  # noqa: BLE001,S110 - the pool is gone, and the stream with it
                pass


def _submit(executor: Any, fn: Any, *args: Any) -> Future:
    from .source import SourceError

    try:
        return executor.submit(fn, *args)
    except Exception as exc:  # noqa: BLE001 - a pool that cannot take work: the retry reads in-process
        workers.give_up(exc, broken=True)
        raise SourceError("源库读取进程不可用，将在本进程重新读取") from None


def _result(future: Future) -> Any:
    """A reader call's result; a dead reader process is a source error (retried, then in-process)."""
    from concurrent.futures.process import BrokenProcessPool

    from .source import SourceError

    try:
        return future.result()
    except BrokenProcessPool as exc:
        workers.give_up(exc, broken=True)
        raise SourceError("源库读取进程异常退出，将在本进程重新读取") from None

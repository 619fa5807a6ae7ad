"""Run a source: extract → map → THE ingest pipeline → advance the cursor.

For each job of the mapping:

1. read the watermark (the highest cursor value already committed) and query the source for
   rows at or after *watermark − overlap*, ordered by the cursor, through a server-side
   cursor (``stream_results`` + ``yield_per``) so memory stays flat whatever the table size;
2. map each batch of rows to records and hand it to :meth:`Pipeline.ingest_stream` — the only way
   a record enters the platform (``source="collect"``);
3. only after the pipeline has committed the batch, in a second transaction: move the
   watermark to the batch's highest cursor value, add the counts to the run, renew the lease.

A kill between 2 and 3 leaves the watermark behind the committed data; the next run re-reads
those rows and the pipeline recognises them by content hash (unchanged), so there is no gap
and no duplicate. The overlap window does the same for rows whose transaction committed on
the source after later rows were read.

Source failures are classified (:mod:`phip.collect.source_errors`). Those that may pass (down,
timeout, connection dropped mid-stream) are retried with exponential backoff, resuming from
the watermark; after the last retry the run is marked failed with a Chinese reason and the
remaining jobs of the source are not attempted. Those that cannot (access denied, a wrong
mapping) fail at once; a login failure also skips the source's other jobs.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from phip.ingest.errors import IngestError
from phip.ingest.pipeline import Pipeline
from phip.ingest.receipt import Receipt
from phip.ingest.validation import Validated
from phip.standard.catalog import DataSet
from phip.standard.validate import platform_now

from . import reader, state
from .extract import map_batches, read_batches
from .guard import ReadOnlyViolation, check_query
from .mapping import Job, Mapping, MappingError
from .source import SourceError, describe_error, open_source

log = logging.getLogger("phip.collect")


class Progress(Protocol):
    def start(self, job: Job, total: int | None) -> None: ...
    def advance(self, job: Job, rows: int) -> None: ...


@dataclass
class JobResult:
    source: str
    job: str
    dataset: str
    run_id: int | None
    status: str  # ok | failed | skipped
    rows_read: int = 0
    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0
    cursor: str | None = None
    error: str | None = None
    code: str | None = None
    mode: str = "incremental"  # incremental | full | backfill | checksum
    event_days: set[date] = field(default_factory=set)  # event days of the records stored or changed
    chunks: int | None = None  # checksum mode: chunks compared …
    chunks_changed: int | None = None  # … and re-read


class _JobFailed(Exception):
    def __init__(self, result: JobResult, source_down: bool):
        super().__init__(result.error)
        self.result = result
        self.source_down = source_down


def build_sql(job: Job, since: Any) -> tuple[str, str, dict[str, Any]]:
    """(query, count query, parameters) for one extraction from ``since`` (None = from the start)."""
    base = job.sql + "\n"  # a query ending in a -- comment must not swallow the ") src" after it
    if job.cursor is None:
        return base, f"SELECT COUNT(*) FROM ({base}) src", {}
    col = job.cursor.column.split(".")[-1]
    where = f" WHERE src.{col} >= :since" if since is not None else ""
    params = {"since": since} if since is not None else {}
    return (f"SELECT * FROM ({base}) src{where} ORDER BY src.{col}",
            f"SELECT COUNT(*) FROM ({base}) src{where}", params)


class Collector:
    """Runs the jobs of a source under its lease. One per process is enough."""

    def __init__(self, engine: Engine, pipeline: Pipeline, holder: str | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.engine = engine
        self.pipeline = pipeline  # built by phip.runtime.build_pipeline
        self.holder = holder or state.new_holder()
        self.sleep = sleep

    def run(self, mapping: Mapping, jobs: Sequence[str] | None = None, *, full: bool = False,
            backfill: bool = False, progress: Progress | None = None, count: bool = False,
            guard: Callable[[], bool] | None = None) -> list[JobResult]:
        """Run the selected jobs (all by default); raises SourceBusy when another holder runs it.
        ``guard`` is asked once the lease is held; False means "nothing to do" (the scheduler's
        second due-check). ``backfill`` (and a job's first run) reads the whole source as
        history (mode ``backfill``); the event days it brings in are analysed on their own
        dates (:mod:`phip.quality.window`)."""
        selected = [mapping.job(j) for j in jobs] if jobs else list(mapping.datasets)
        for job in selected:
            self.pipeline.dataset(job.dataset)  # unknown data set: fail before taking the lease
        self.pipeline.institution_name(mapping.source.org)
        state.acquire_lease(self.engine, mapping.name, mapping.source.org, self.holder)
        results: list[JobResult] = []
        source = None
        try:
            if guard is not None and not guard():
                return results
            source = open_source(mapping)
            down: JobResult | None = None
            for job in selected:
                if down is not None:
                    results.append(JobResult(mapping.name, job.key, job.dataset, None, "skipped",
                                             error=f"数据源不可用，未执行：{down.error}", code=down.code))
                    continue
                try:
                    results.append(self._run_job(mapping, job, source, full, progress, count, backfill))
                except _JobFailed as failed:
                    results.append(failed.result)
                    if failed.source_down:
                        down = failed.result
        finally:
            if source is not None:
                source.dispose()
            state.release_lease(self.engine, mapping.name, self.holder)
        return results

    # -- one job ---------------------------------------------------------------------------

    def _run_job(self, mapping: Mapping, job: Job, source: Engine, full: bool,
                 progress: Progress | None, count: bool, backfill: bool = False) -> JobResult:
        kind = job.cursor.kind if job.cursor else "none"
        with self.engine.connect() as conn:
            stored = state.get_cursor(conn, mapping.name, job.key, kind) if job.cursor else None
        first = not state.has_finished_run(self.engine, mapping.name, job.key)
        if job.change_detection is not None:
            mode = "checksum"
        elif backfill or first:
            mode = "backfill"  # history as history: everything, analysed on its own event days
        else:
            mode = "full" if full else "incremental"
        # --full and --backfill read everything; a first run killed half-way resumes from its watermark
        since = None if full or backfill else stored
        run_id = state.start_run(self.engine, mapping.name, job.key, job.dataset, self.holder, full or mode == "backfill",
                                 since, kind, mode)
        result = JobResult(mapping.name, job.key, job.dataset, run_id, "running", mode=mode,
                           cursor=state.encode_cursor(kind, stored) if stored is not None else None)
        spec = mapping.source
        failures = 0
        high = stored
        while True:
            committed_before = result.rows_read
            try:
                if job.change_detection is not None:
                    from .checksum import run_checksum  # noqa: PLC0415 - the mode's own module

                    run_checksum(self, mapping, job, source, result, progress, full or backfill)
                else:
                    high = self._extract(mapping, job, source, since, high, result, progress, count and failures == 0)
                result.status = "ok"
                state.finish_run(self.engine, run_id, "ok", attempts=failures + 1)
                return result
            except SourceError as exc:
                if exc.driver:  # the driver's own words, for the DBA: in the log, never on a page
                    log.warning("source %s/%s: %s: %s", mapping.name, job.key, exc.code, exc.driver)
                if not exc.retry:  # access denied, a wrong mapping …: the same answer every time
                    return self._fail(result, run_id, exc.message, exc.code, failures + 1, source_down=exc.source_wide)
                if result.rows_read > committed_before:
                    failures = 0  # progress was made: count consecutive failures only
                failures += 1
                if failures > spec.retries:
                    return self._fail(result, run_id, exc.message, exc.code, failures, source_down=True)
                self.sleep(spec.backoff_delta.total_seconds() * 2 ** (failures - 1))
                if high is not None:
                    since = high  # resume from what this run has committed
            except (MappingError, ReadOnlyViolation) as exc:
                return self._fail(result, run_id, exc.message, exc.code, failures + 1)
            except IngestError as exc:
                return self._fail(result, run_id, exc.message, exc.code, failures + 1)
            except state.LeaseLost as exc:
                return self._fail(result, run_id, exc.message, exc.code, failures + 1, source_down=True)
            except SQLAlchemyError as exc:
                # The platform store failed (the source's errors are SourceError): stop this
                # source; the worker retries it on its backoff schedule.
                return self._fail(result, run_id, f"平台数据库错误：{describe_error(exc)}", "PLATFORM_ERROR",
                                  failures + 1, source_down=True)
            except Exception as exc:
                # Neither the source nor the store: a defect of this job's processing. Said as
                # such (not as a database that is down), with the traceback in the log; the
                # source's other jobs still run.
                # Only the exception's type and where it arose: its text may quote a row's value
                # (an ID number), and error texts reach the dashboard and the log.
                log.error("collection job %s/%s failed: %s\n%s", mapping.name, job.key, type(exc).__name__,
                          "".join(traceback.format_tb(exc.__traceback__)))
                return self._fail(result, run_id, f"采集处理出错（{type(exc).__name__}），详情见采集日志", "COLLECT_ERROR",
                                  failures + 1)
            except BaseException:
                state.finish_run(self.engine, run_id, "interrupted", "采集被中断（Ctrl-C 或进程退出）", failures + 1)
                raise

    def _fail(self, result: JobResult, run_id: int, message: str, code: str, attempts: int,
              source_down: bool = False) -> JobResult:
        result.status, result.error, result.code = "failed", f"[{code}] {message}", code
        state.finish_run(self.engine, run_id, "failed", result.error, attempts)
        raise _JobFailed(result, source_down)

    def _extract(self, mapping: Mapping, job: Job, source: Engine, since: Any, high: Any, result: JobResult,
                 progress: Progress | None, count: bool) -> Any:
        cursor = job.cursor
        kind = cursor.kind if cursor else "none"
        start = None
        if cursor is not None and since is not None:
            start = since - cursor.overlap_value
            if source.dialect.name == "sqlite" and isinstance(start, datetime):
                start = start.isoformat(sep=" ")  # SQLite holds times as text
        check_query(job.sql, source.dialect.name, f"数据集{job.key}的查询")  # the mapping's own text, then
        sql, count_sql, params = build_sql(job, start)
        check_query(sql, source.dialect.name, f"数据集{job.key}的查询")  # what is actually sent
        dataset = self.pipeline.dataset(job.dataset)
        batch_size = job.batch_size or mapping.source.batch_size
        ref = f"{mapping.name}/{job.key}#{result.run_id}"

        def on_total(total: int | None) -> None:
            if progress is not None:
                progress.start(job, total)

        for n_rows, batch_high, receipt in self._committed(mapping, job, dataset, source, sql, count_sql, params,
                                                            batch_size, count, on_total, ref, result.rows_read):
            if batch_high is not None and (high is None or batch_high > high):
                high = batch_high
            with self.engine.begin() as conn:  # only now: the pipeline has committed the batch
                state.renew_lease(conn, mapping.name, self.holder)
                if cursor is not None and high is not None:
                    state.set_cursor(conn, mapping.name, job.key, kind, high, result.run_id or 0)
                encoded = state.encode_cursor(kind, high) if high is not None else None
                state.add_to_run(conn, result.run_id or 0, rows=n_rows, receipt=receipt, cursor_to=encoded)
            result.rows_read += n_rows
            for name in ("accepted", "updated", "unchanged", "rejected", "warnings"):
                setattr(result, name, getattr(result, name) + getattr(receipt, name))
            result.event_days |= receipt.event_days
            result.cursor = encoded
            if progress is not None:
                progress.advance(job, n_rows)
        return high

    def _committed(self, mapping: Mapping, job: Job, dataset: DataSet, source: Engine, sql: str, count_sql: str,
                   params: dict[str, Any], batch_size: int, count: bool, on_total: Callable[[int | None], None],
                   ref: str, first_row: int) -> Iterator[tuple[int, Any, Receipt]]:
        """(rows read, the batch's highest cursor value, receipt) per batch, each yielded once the
        pipeline has committed it, in source order.

        Both ways go through :meth:`Pipeline.ingest_stream`: with a reader process
        (:mod:`phip.collect.reader`) the source is fetched, mapped and validated there and this
        process only writes; otherwise a reader thread fetches and maps ahead (:func:`_prefetch`)
        and the stream validates. Row numbers
        (in mapping findings) continue from ``first_row``; rejection indices count from this call."""
        org = mapping.source.org
        pending: deque[tuple[int, Any]] = deque()  # (rows, high) of the batches handed to the pipeline
        executor = self.pipeline.validation_process()
        now = platform_now()

        def validated() -> Iterator[Validated]:
            org_name = self.pipeline.institution_name(org)
            for n_rows, batch_high, batch in reader.remote_batches(
                executor, mapping, job.key, sql, count_sql, params, batch_size, count, org_name, now, on_total, first_row
            ):
                pending.append((n_rows, batch_high))
                yield batch

        def batches() -> Iterator[list[Any]]:
            rows = read_batches(mapping, job, dataset, source, sql, count_sql, params, batch_size, count, on_total)
            for n_rows, records, batch_high in _prefetch(map_batches(job, rows, first_row)):
                pending.append((n_rows, batch_high))
                yield records

        stream = validated() if executor is not None else batches()
        for receipt in self.pipeline.ingest_stream(org, dataset.code, stream, source="collect", source_ref=ref, now=now):
            n_rows, batch_high = pending.popleft()
            yield n_rows, batch_high, receipt


_END = object()


def _prefetch(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Read and map the next batches in a thread while the pipeline writes the current one.

    The source connection lives and dies in that thread; at most ``depth`` batches wait in
    the queue, so memory stays bounded. An exception of the reader (SourceError …) is
    raised here, in the caller, where the retry logic is.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put(item):
                    break
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)
        finally:
            batches.close()  # type: ignore[attr-defined]

    reader = threading.Thread(target=produce, name="phip-collect-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=30)

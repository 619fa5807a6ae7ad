"""Scheduled collection: the ``phip worker`` loop (and the same loop in a service thread).

Each pass also starts the nightly quality analysis when it is due (:mod:`phip.quality.schedule`),
so one kind of background process serves both.

Every pass reloads the mapping files of the sources directory (an edited mapping applies at
the next pass), and for each source with a schedule whose next run is due: takes the lease,
checks again that the run is still due (another worker may have just finished it), runs it
and sets the next run — the schedule's interval after a success, an exponential backoff
(capped at the interval) after a failure. Workers share nothing but the platform database,
so any number can run on any number of machines; the lease keeps them off each other's
sources.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, time, timedelta

from sqlalchemy import Engine

from phip.ingest.errors import IngestError
from phip.ingest.pipeline import Pipeline
from phip.quality.run import RunResult
from phip.quality.schedule import quality_time, run_due
from phip.standard.validate import platform_now
from phip.store import partitions

from . import state
from .mapping import Mapping, all_mappings
from .runner import Collector, JobResult

log = logging.getLogger("phip.collect")


@dataclass
class PassReport:
    ran: dict[str, list[JobResult]] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)
    not_due: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # mapping file → error
    quality: list[RunResult] = field(default_factory=list)  # nightly analyses run in this pass
    partitions: list[str] = field(default_factory=list)  # month partitions created in this pass


def next_after_failure(mapping: Mapping, failures: int) -> timedelta:
    """After the n-th failure in a row: 1, 2, 4 … minutes, never longer than the schedule."""
    interval = mapping.source.interval or timedelta(hours=1)
    return min(interval, timedelta(minutes=2 ** min(max(failures - 1, 0), 16)))


class Worker:
    def __init__(self, engine: Engine, pipeline: Pipeline, holder: str | None = None,
                 quality_at: time | None | str = "env"):
        self.engine = engine
        self.collector = Collector(engine, pipeline, holder)
        # when the nightly quality analysis starts (PHIP_QUALITY_AT by default; None: never)
        self.quality_at: time | None = quality_time() if isinstance(quality_at, str) else quality_at
        self.months_made_on: date | None = None  # the day the months ahead were last made sure of

    @property
    def holder(self) -> str:
        return self.collector.holder

    def run_pass(self, mappings: list[Mapping] | None = None) -> PassReport:
        """One look at every scheduled source; runs those that are due."""
        report = PassReport()
        if mappings is None:
            mappings, bad = all_mappings()
            for path, exc in bad:
                report.broken[str(path)] = exc.message
                log.error("mapping %s unusable: [%s] %s", path, exc.code, exc.message)
        for mapping in mappings:
            if mapping.source.interval is None:
                continue
            if not self._due(mapping):
                report.not_due.append(mapping.name)
                continue
            try:
                results = self._run_if_still_due(mapping)
            except state.SourceBusy as exc:
                report.busy.append(mapping.name)
                log.info("%s", exc.message)
                continue
            except IngestError as exc:  # unknown institution or data set: a mapping to fix
                report.broken[mapping.name] = exc.message
                continue
            if results is None:
                report.not_due.append(mapping.name)
            else:
                report.ran[mapping.name] = results
        today = platform_now().date()
        if self.months_made_on != today:  # once a day: three months ahead leave weeks to spare
            try:  # months ahead of the data (PostgreSQL): never created inside an ingest batch
                report.partitions = partitions.ensure_ahead(self.engine, today)
                self.months_made_on = today
            except Exception:  # noqa: BLE001 - rows of a missing month wait in the default partition
                log.exception("creating the next months' partitions failed")
        try:
            report.quality = run_due(self.engine, self.quality_at)
        except Exception:  # noqa: BLE001 - a failed analysis must not stop collection; it is due again next pass
            log.exception("nightly quality analysis failed")
        return report

    def _due(self, mapping: Mapping) -> bool:
        row = state.source_state(self.engine, mapping.name)
        return row is None or row.next_run_at is None or row.next_run_at <= platform_now()

    def _run_if_still_due(self, mapping: Mapping) -> list[JobResult] | None:
        # The collector takes the lease; checking "due" again inside it closes the window in
        # which another worker finished this source between our first check and the lease.
        checked: dict[str, bool] = {}

        def still_due() -> bool:
            checked["due"] = self._due(mapping)
            return checked["due"]

        results = self.collector.run(mapping, guard=still_due)
        if not checked.get("due", True):
            return None
        failed = [r for r in results if r.status != "ok"]
        row = state.source_state(self.engine, mapping.name)
        now = platform_now()
        if failed:
            failures = (row.failures if row else 0) + 1
            state.set_schedule(self.engine, mapping.name, next_run_at=now + next_after_failure(mapping, failures),
                               failures=failures, last_error=failed[0].error)
            log.warning("source %s failed (%d in a row): %s", mapping.name, failures, failed[0].error)
        else:
            state.set_schedule(self.engine, mapping.name, next_run_at=now + (mapping.source.interval or timedelta()),
                               failures=0, last_error=None)
            log.info("source %s: %d rows read", mapping.name, sum(r.rows_read for r in results))
        return results

    def loop(self, poll: float = 30.0, stop: threading.Event | None = None, once: bool = False,
             on_pass: Callable[[PassReport], None] | None = None) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                report = self.run_pass()
                if on_pass is not None:
                    on_pass(report)
            except Exception:  # noqa: BLE001 - the platform database may be down: keep the worker alive
                log.exception("collection pass failed")
            if once:
                return
            stop.wait(poll)


def start_in_background(engine: Engine, pipeline: Pipeline, poll: float = 30.0) -> threading.Event:
    """Run the worker loop in a daemon thread of the service; set the returned event to stop it."""
    stop = threading.Event()
    worker = Worker(engine, pipeline)
    threading.Thread(target=worker.loop, kwargs={"poll": poll, "stop": stop}, name="phip-collect", daemon=True).start()
    return stop

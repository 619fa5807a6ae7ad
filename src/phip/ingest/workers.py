"""Validation in a separate process (校验进程) for streams of batches.

A stream (file import, pull collection) is ingested batch after batch, each batch in its own
transaction. Validation needs no database and is about a third of the pipeline's CPU; both
halves are Python, so a thread cannot overlap them (the GIL): a second process validates batch
k+1 on the other core while this one writes batch k (docs/performance.md has the figures).

The process is started once per PHIP process (about a second: it imports the standard) and
reused by every stream. Records cross the process boundary pickled; validated records come
back as plain tuples, which pickle several times faster than the pipeline's dataclasses.
If the process is unavailable (one core, disabled, broken), validation runs in-process:
the results are the same, only the overlap is lost.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from phip.config import get_settings

log = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()
_disabled = False
_preload: list[Callable[..., Any]] = []


def enabled() -> bool:
    """``PHIP_VALIDATION_PROCESS=0`` turns the process off; by default it runs on machines
    with more than one core."""
    return get_settings().validation_process_on


def _watch_parent() -> None:
    """Exit when the writer's process dies (a SIGKILLed collector): the worker holds both ends
    of its call queue's pipe, so it would never see end-of-file and would wait forever."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        os._exit(0)


def preload(task: Callable[..., Any]) -> None:
    """Have the process import ``task``'s module when it starts (a pickled function is sent by
    module and name), so the first batch does not pay for that import."""
    _preload.append(task)


def _init(*_tasks: Callable[..., Any]) -> None:
    threading.Thread(target=_watch_parent, name="phip-parent-watch", daemon=True).start()
    from phip.gc_tuning import tune_gc
    from phip.standard.catalog import load_standard

    load_standard()
    tune_gc()


def pool() -> ProcessPoolExecutor | None:
    """The validation process of this PHIP process, started on first use (None when off)."""
    global _pool
    if _disabled or not enabled() or multiprocessing.parent_process() is not None:
        # Only a main process starts one: a multiprocessing child never runs atexit, and its
        # exit waits for its children, so an idle validation process would hold it forever
        # (a daemonic child may not start one at all). Such children validate in-process.
        return None
    with _lock:
        if _pool is None:
            # spawn, not fork: the parent holds database connections and a writer's threads
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                                        initargs=tuple(_preload))
            atexit.register(shutdown)
        return _pool


def warm() -> None:
    """Start the process now (a service or worker does at start-up; a benchmark before timing)."""
    executor = pool()
    if executor is not None:
        executor.submit(_init).result()


def shutdown() -> None:
    global _pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


def submit(task: Callable[..., Any], *args: Any) -> Future | None:
    """``task(*args)`` in the validation process (the pipeline hands its own validation
    function, so this module knows nothing of the pipeline), or None when it is off."""
    executor = pool()
    if executor is None:
        return None
    try:
        return executor.submit(task, *args)
    except Exception as exc:  # noqa: BLE001 - a pool that cannot take work must not stop ingestion
        give_up(exc, broken=True)
        return None


def result(future: Future | None) -> Any | None:
    """The task's result, or None when the process failed (the caller validates in-process)."""
    if future is None:
        return None
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable record or a killed process
        give_up(exc)
        return None


def give_up(exc: BaseException, broken: bool = False) -> None:
    """Validate in-process from now on; a pickling error costs only its batch's overlap."""
    global _disabled, _pool
    from concurrent.futures.process import BrokenProcessPool

    if broken or isinstance(exc, BrokenProcessPool):
        log.warning("validation process unavailable, validating in-process: %s", exc)
        _disabled = True
        with _lock:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
                _pool = None
    else:
        log.warning("batch validated in-process (%s: %s)", type(exc).__name__, exc)

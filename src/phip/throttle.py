"""Failure counting (失败次数限制) shared by the dashboard's login and the API's key check:
below both entry points, so neither has to import the other."""

from __future__ import annotations

import threading
import time


class FailureLimiter:
    """At most ``limit`` failures per key (an account, an address) within ``window`` seconds;
    past that the key is refused until its oldest failure leaves the window. Guessing passwords
    or API keys then costs hours, not seconds. Counters live in the process: each uvicorn worker
    keeps its own, so n workers allow n × ``limit`` tries (still bounded)."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, ()) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def wait(self, *keys: str) -> float:
        """0 when none of ``keys`` is locked, else the seconds until all of them may try again."""
        now = time.monotonic()
        with self._lock:
            waits = [self.window - (now - recent[0]) for key in keys
                     if len(recent := self._recent(key, now)) >= self.limit]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # a flood of addresses must not grow memory without end
                for key in list(self._failures):
                    self._recent(key, now)
            for key in keys:
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


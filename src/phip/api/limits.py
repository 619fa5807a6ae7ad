"""Per-institution rate limit (token bucket) and Prometheus metrics.

The bucket lives in the worker process: with N uvicorn workers an institution gets up to N
times the configured rate. That is deliberate for the embedded default (no extra service);
a province behind a gateway enforces the global figure there.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from phip.config import get_settings

REGISTRY = CollectorRegistry()
REQUESTS = Counter("phip_http_requests", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("phip_http_request_seconds", "HTTP request latency", ["route"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RECORDS = Counter("phip_records", "Records received through the push API", ["dataset", "outcome"], registry=REGISTRY)


class RateLimiter:
    """Token bucket per institution: ``rate`` requests per minute, bursts up to ``burst``."""

    def __init__(self, per_minute: float | None = None, burst: int | None = None):
        settings = get_settings()
        self.per_minute = per_minute if per_minute is not None else settings.rate_per_minute
        self.burst = burst if burst is not None else settings.burst_for(self.per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0 when the request may go on, else the seconds to wait before retrying."""
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate


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


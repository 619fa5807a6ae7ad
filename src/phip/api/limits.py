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

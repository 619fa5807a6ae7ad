"""Prometheus figures of a city platform's outbox, read from the store at each scrape (every
process sees the same backlog): how many records wait and how old the oldest is."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from phip.config import get_settings

from .lag import outbox_lag


class OutboxCollector(Collector):
    """``phip_outbox_backlog``, ``phip_outbox_oldest_unsent_seconds`` (0 when none waits),
    ``phip_outbox_refused`` and ``phip_outbox_lag_alert`` (1: older than PHIP_OUTBOX_LAG_ALERT)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not get_settings().upstream_url:
            return
        lag = outbox_lag(self.engine)
        yield GaugeMetricFamily("phip_outbox_backlog", "Records waiting to be forwarded to the province",
                                value=lag.backlog)
        yield GaugeMetricFamily("phip_outbox_oldest_unsent_seconds", "Age of the oldest record not yet forwarded",
                                value=lag.oldest_age)
        yield GaugeMetricFamily("phip_outbox_refused", "Records the province refused", value=lag.refused)
        yield GaugeMetricFamily("phip_outbox_lag_alert", "1 when the oldest unsent record is older than "
                                "PHIP_OUTBOX_LAG_ALERT seconds", value=1.0 if lag.alert else 0.0)


_installed: dict[int, OutboxCollector] = {}


def install(registry: CollectorRegistry, engine: Engine) -> None:
    """Register the collector once per registry; a later app (tests build many) moves it to its engine."""
    collector = _installed.get(id(registry))
    if collector is None:
        collector = _installed[id(registry)] = OutboxCollector(engine)
        registry.register(collector)
    collector.engine = engine

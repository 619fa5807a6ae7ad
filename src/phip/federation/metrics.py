"""Prometheus figures of a city platform's outbox, read from the store at each scrape (every
process sees the same backlog): how many records wait and how old the oldest is."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from phip.config import get_settings
from phip.standard.validate import platform_now

from .forwarder import outbox_status


class OutboxCollector(Collector):
    """``phip_outbox_backlog`` and ``phip_outbox_oldest_unsent_seconds`` (0 when none waits)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not get_settings().upstream_url:
            return
        status = outbox_status(self.engine, refusals=0)
        age = (platform_now() - status.oldest_unsent).total_seconds() if status.oldest_unsent else 0.0
        yield GaugeMetricFamily("phip_outbox_backlog", "Records waiting to be forwarded to the province",
                                value=status.backlog)
        yield GaugeMetricFamily("phip_outbox_oldest_unsent_seconds", "Age of the oldest record not yet forwarded",
                                value=max(0.0, age))
        yield GaugeMetricFamily("phip_outbox_refused", "Records the province refused", value=status.refused)


_installed: dict[int, OutboxCollector] = {}


def install(registry: CollectorRegistry, engine: Engine) -> None:
    """Register the collector once per registry; a later app (tests build many) moves it to its engine."""
    collector = _installed.get(id(registry))
    if collector is None:
        collector = _installed[id(registry)] = OutboxCollector(engine)
        registry.register(collector)
    collector.engine = engine

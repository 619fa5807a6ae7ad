"""The composition place: which person resolver and which counters the pipeline gets, and the
process-wide engine and pipeline (schema migrated on first use). Domains never wire each
other; every entry point (and every test) builds its pipeline here."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine

from phip.config import get_settings
from phip.gc_tuning import tune_gc  # entry points (cli, api) call it from here too
from phip.empi.resolver import EmpiResolver
from phip.federation.outbox import OutboxWriter
from phip.ingest.identity import PersonResolver
from phip.ingest.pipeline import Pipeline, RecordCounter
from phip.orgs.service import seed_institutions
from phip.quality.arrival import SupervisionOnArrival
from phip.reports.measures import MeasureCounter
from phip.standard.catalog import Standard
from phip.store.db import make_engine, upgrade


def prepare(engine: Engine) -> Engine:
    """Migrate the schema and register the seed institutions (both idempotent)."""
    upgrade(engine)
    seed_institutions(engine)
    return engine


def build_pipeline(engine: Engine, standard: Standard | None = None, resolver: PersonResolver | None = None) -> Pipeline:
    """A pipeline with the EMPI resolver (unless another is given), the report measures, the
    supervision rules judging internet-hospital records as they arrive and, on a city platform
    (``PHIP_UPSTREAM_URL`` set), the outbox to the province."""
    counters: list[RecordCounter] = [MeasureCounter(), SupervisionOnArrival()]
    if get_settings().upstream_url:
        counters.append(OutboxWriter())
    return Pipeline(engine, standard, resolver=resolver or EmpiResolver(), counters=counters)


@cache
def engine() -> Engine:
    return prepare(make_engine(get_settings().database_url))


@cache
def pipeline() -> Pipeline:
    tune_gc()
    return build_pipeline(engine())

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
def read_engine() -> Engine:
    """Where the reports and the dashboard's overview read: the replica named by
    ``PHIP_READ_DATABASE_URL`` (never migrated from here: a replica follows its primary), else
    the store itself. A replica lags its primary by its replication delay, which the upload
    statistics (counted per day) can bear; sessions, audit and every write stay on the primary."""
    url = get_settings().read_database_url
    return make_engine(url) if url else engine()


@cache
def pipeline() -> Pipeline:
    tune_gc()
    return build_pipeline(engine())

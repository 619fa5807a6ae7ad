"""Process-wide wiring: one engine and one pipeline per process, schema migrated on first use."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine

from phip.config import get_settings
from phip.gc_tuning import tune_gc  # entry points (cli, api, workers) call it from here too
from phip.ingest.pipeline import Pipeline
from phip.orgs.service import seed_institutions
from phip.store.db import make_engine, upgrade


def prepare(engine: Engine) -> Engine:
    """Migrate the schema and register the seed institutions (both idempotent)."""
    upgrade(engine)
    seed_institutions(engine)
    return engine


@cache
def engine() -> Engine:
    return prepare(make_engine(get_settings().database_url))


@cache
def pipeline() -> Pipeline:
    tune_gc()
    return Pipeline(engine())

"""Fixtures: every store test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL comes from ``PHIP_TEST_PG_URL`` (``.ci/run`` creates the database). Outside CI a
missing server skips the PostgreSQL variants; in CI (``CI=true``) it fails the run instead,
so a green CI always means both back ends were exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from phip.ingest.pipeline import Pipeline
from phip.runtime import build_pipeline
from phip.orgs.service import seed_institutions
from phip.store.db import create_database, make_engine, upgrade, wipe
from phip.schema import Base

PG_URL = os.environ.get("PHIP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_test")
_engines: dict[str, Engine] = {}


def pg_engine(url: str = PG_URL) -> Engine:
    """An emptied PostgreSQL database at ``url`` (created when missing); skipped outside CI
    when the server is not there."""
    engine = make_engine(url)
    try:
        create_database(url)
        wipe(engine)
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {url}: {exc}")
    return engine


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('store') / 'phip.db'}")
    else:
        engine = pg_engine()
    upgrade(engine)
    yield engine
    engine.dispose()


def empty_store(engine: Engine) -> Engine:
    """Empty every table and register the seed institutions again."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    seed_institutions(engine)
    return engine


@pytest.fixture()
def engine(store_engine: Engine) -> Engine:
    """A clean store (all tables emptied) with the seed institutions registered."""
    return empty_store(store_engine)


@pytest.fixture()
def pipeline(engine: Engine) -> Pipeline:
    return build_pipeline(engine)


@pytest.fixture(scope="session")
def orgs() -> list[tuple[str, str]]:
    import csv

    from phip.orgs.service import SEED

    with SEED.open(encoding="utf-8") as f:
        return [(r["code"], r["name"]) for r in csv.DictReader(f)]

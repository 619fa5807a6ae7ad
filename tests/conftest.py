"""Fixtures: every store test runs against a real SQLite file and a real PostgreSQL database.

PostgreSQL comes from ``PHIP_TEST_PG_URL`` (``.ci/run`` creates the database). Outside CI a
missing server skips the PostgreSQL variants; in CI (``CI=true``) it fails the run instead,
so a green CI always means both back ends were exercised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from phip.ingest.pipeline import Pipeline
from phip.runtime import build_pipeline
from phip.orgs.service import seed_institutions
from phip.store.db import create_database, make_engine, upgrade, wipe
from phip.schema import Base

PG_URL = os.environ.get("PHIP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_test")
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # pytest -n N: gw0, gw1 …
if _WORKER and not os.environ.get("PHIP_TEST_WORKER"):
    # each worker its own databases (the store's, every scratch and source database): the
    # names derive from these two, and the tests' own subprocesses inherit them
    os.environ["PHIP_TEST_WORKER"] = _WORKER
    os.environ["PHIP_TEST_PG_URL"] = PG_URL = f"{PG_URL}_{_WORKER}"
    os.environ["PHIP_TEST_DB_SUFFIX"] = os.environ.get("PHIP_TEST_DB_SUFFIX", "") + f"_{_WORKER}"
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


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001
    """The audit key and anchor outside the checkout from the start: a test module that builds
    its app at import (test_schemathesis) runs during collection, before any fixture, and
    wrote them into the working directory's data/."""
    import tempfile

    if "PHIP_AUDIT_KEY_FILE" not in os.environ:
        where = Path(tempfile.mkdtemp(prefix="phip-test-audit-"))
        os.environ["PHIP_AUDIT_KEY_FILE"] = str(where / "audit.key")
        os.environ["PHIP_AUDIT_ANCHOR_FILE"] = str(where / "audit.anchor")


@pytest.fixture(scope="session", autouse=True)
def audit_key_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One audit key for the run, set before any fixture runs: module- and session-scoped
    fixtures that write audited events come before the per-test paths below, and otherwise
    wrote the key and anchor into the checkout's data/."""
    key = str(tmp_path_factory.mktemp("audit") / "audit.key")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHIP_AUDIT_KEY_FILE", key)
        patch.setenv("PHIP_AUDIT_ANCHOR_FILE", str(tmp_path_factory.mktemp("anchor") / "audit.anchor"))
        yield key


@pytest.fixture(autouse=True)
def _audit_files(audit_key_file: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit trail's key and anchor outside the working directory: one key for the run, a
    fresh anchor per test (each test starts from emptied tables, so a head left by the one
    before would read as deleted events)."""
    monkeypatch.setenv("PHIP_AUDIT_KEY_FILE", audit_key_file)
    monkeypatch.setenv("PHIP_AUDIT_ANCHOR_FILE", str(tmp_path_factory.mktemp("anchor") / "audit.anchor"))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('store') / 'phip.db'}")
    else:
        engine = pg_engine()
    upgrade(engine)
    yield engine
    engine.dispose()


def scratch_store(backend: str, tmp_path: Path, name: str) -> Engine:
    """An empty database of its own (a SQLite file, or ``<test database>_<name>``), for a test
    that migrates a store from an older revision."""
    if backend == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / f'{name}.db'}")
    create_database(PG_URL + f"_{name}")
    engine = make_engine(PG_URL + f"_{name}")
    wipe(engine)
    return engine


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


def _seed_rows(primary_care: bool) -> list[tuple[str, str]]:
    import csv

    from phip.orgs.primary_care import is_primary_care
    from phip.orgs.service import SEED

    with SEED.open(encoding="utf-8") as f:
        return [(r["code"], r["name"]) for r in csv.DictReader(f) if (r.get("kind") or "hospital") == "hospital"
                and is_primary_care(r.get("category")) == primary_care]


@pytest.fixture(scope="session")
def orgs() -> list[tuple[str, str]]:
    """The demo register's hospitals (the docking notice's 66 and the 14 中省直), in register order."""
    return _seed_rows(False)


@pytest.fixture(scope="session")
def primary_care_orgs() -> list[tuple[str, str]]:
    """The demo register's primary-care institutions (community and township health centres)."""
    return _seed_rows(True)


def seed_before_0012(engine: Engine, tmp_path) -> None:  # noqa: ANN001
    """The demo register in the columns a store had before 0012_register."""
    import csv

    from phip.orgs.service import SEED

    with SEED.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    old = ["code", "name", "region_code", "region_name", "county_code", "level", "ownership", "docking_method", "network_status"]
    path = tmp_path / "institutions.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, old, extrasaction="ignore")
        w.writeheader()
        w.writerows(r for r in rows if (r.get("kind") or "hospital") == "hospital")
    seed_institutions(engine, path)


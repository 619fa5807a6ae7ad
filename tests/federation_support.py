"""Province–city integration fixtures: the province's own PostgreSQL store, a city pipeline
that writes the outbox, the forwarder and the stored state both sides are compared by."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from phip.federation.forwarder import Forwarder
from phip.orgs.keys import create_key
from phip.runtime import build_pipeline, prepare
from phip.store import models as m
from phip.synth.generator import Generator
from tests.conftest import PG_URL, pg_engine
from tests.records_support import DAY, NOW
from tests.serve_support import serving

REGION = "220100"
URL_DATASET = "outpatient_visit"


def visits(org: tuple[str, str], n: int, seed: int = 1) -> list[dict]:
    out: list[dict] = []
    for _, _, recs in Generator(seed=seed).day([org], DAY, visits=n, admissions=1, datasets=[URL_DATASET], now=NOW):
        out += recs
    return out


def state(engine: Engine, orgs: set[str] | None = None) -> list[tuple]:
    """Every stored version: (org, data set, key, version, content hash), heads and history."""
    r, v = m.Record, m.RecordVersion
    with engine.connect() as conn:
        heads = conn.execute(select(r.org_code, r.dataset, r.record_key, r.version, r.content_hash)).all()
        old = conn.execute(select(r.org_code, r.dataset, r.record_key, v.version, v.content_hash)
                           .join(v, v.record_id == r.id)).all()
    return sorted(tuple(row) for row in [*heads, *old] if orgs is None or row[0] in orgs)


@pytest.fixture()
def province(tmp_path) -> Iterator[tuple[Engine, str, str]]:
    """The province's store (a PostgreSQL database of its own, emptied) and a city key of
    REGION; yields (engine, database URL, key); the server is started by the test."""
    url = make_url(PG_URL)
    url = url.set(database=f"{url.database}_province").render_as_string(hide_password=False)
    engine = pg_engine(url)
    prepare(engine)
    city_platform_org = "12220104412001376B"  # registered at the province as the key's holder
    _, key = create_key(engine, city_platform_org, "长春市全民健康信息平台", REGION)
    yield engine, url, key
    engine.dispose()


@pytest.fixture()
def city(engine, monkeypatch, orgs):
    """The city platform's pipeline: an upstream is configured, so it writes the outbox."""
    monkeypatch.setenv("PHIP_UPSTREAM_URL", "http://127.0.0.1:1")
    return build_pipeline(engine)


def region_orgs(orgs, engine, region=REGION) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        codes = set(conn.execute(select(m.Institution.code).where(m.Institution.region_code == region)).scalars())
    return [o for o in orgs if o[0] in codes]


def forwarder(engine: Engine, base: str, key: str, **kw) -> Forwarder:
    return Forwarder(engine, base, key, **{"backoff_base": 0.01, "backoff_cap": 0.05, "timeout": 10, **kw})


@contextmanager
def province_serving(tmp_path, url: str) -> Iterator[str]:
    with serving(tmp_path / "province", url) as base:
        yield base

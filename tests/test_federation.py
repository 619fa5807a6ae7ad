"""Province–city integration (省市一体化): a city platform (the ``engine`` store, SQLite and
PostgreSQL, its pipeline in this process) forwards to a province that is a real `phip serve`
over a PostgreSQL database of its own. After every fault the province holds exactly the city's
records and versions (same keys, versions and content hashes), nothing missing, nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import make_url

from phip.federation.forwarder import Forwarder, outbox_status
from phip.federation.tables import OutboxRow
from phip.orgs.keys import create_key
from phip.runtime import build_pipeline, prepare
from phip.store import models as m
from phip.synth.generator import Generator
from tests.conftest import PG_URL, pg_engine
from tests.test_pipeline import DAY, NOW
from tests.test_serve import free_port, serving

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
    return Forwarder(engine, base, key, backoff_base=0.01, backoff_cap=0.05, timeout=10, **kw)


@contextmanager
def province_serving(tmp_path, url: str) -> Iterator[str]:
    with serving(tmp_path / "province", url) as base:
        yield base


def test_a_standalone_platform_writes_no_outbox(pipeline, orgs):
    org = region_orgs(orgs, pipeline.engine)[1]
    assert pipeline.ingest(org[0], URL_DATASET, visits(org, 5), source="api").accepted > 0
    with pipeline.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OutboxRow)).scalar_one() == 0


@pytest.mark.slow
def test_province_down_then_up_gets_everything_once(city, province, orgs, tmp_path):
    """Hospitals push to the city while the province is down: the forwarder fails, keeps the
    backlog and its error; with the province up it sends all, and a second run sends nothing."""
    p_engine, p_url, key = province
    a, b = region_orgs(orgs, city.engine)[1:3]
    city.ingest(a[0], URL_DATASET, visits(a, 30), source="api")
    city.ingest(b[0], URL_DATASET, visits(b, 20, seed=2), source="api")
    first = visits(a, 30)
    city.ingest(a[0], URL_DATASET, [{**first[0], "dept_name": "呼吸内科"}, {**first[1], "dept_name": "心内科"}],
                source="api")
    backlog = outbox_status(city.engine).backlog
    assert backlog == len(state(city.engine))

    down = forwarder(city.engine, f"http://127.0.0.1:{free_port()}", key, batch_size=7)
    result = down.run(once=True, max_failures=3)
    assert result.failures == 3 and result.sent == 0
    status = outbox_status(city.engine)
    assert status.backlog == backlog and status.last_error and status.oldest_unsent is not None

    with province_serving(tmp_path, p_url) as base:
        up = forwarder(city.engine, base, key, batch_size=7)
        result = up.run(once=True, max_failures=3)
        assert result.failures == 0 and result.sent == backlog and result.refused == 0
        assert up.run(once=True).requests == 0
    assert outbox_status(city.engine).backlog == 0
    assert state(p_engine) == state(city.engine)


@pytest.mark.slow
def test_correction_waiting_in_the_outbox_and_a_lost_receipt(city, province, orgs, tmp_path):
    """A record corrected twice at the city while its first version waits: the province gets
    the three versions in order. Then every receipt is 'lost' (rows unmarked) and the whole
    outbox sent again: the province stores nothing twice."""
    p_engine, p_url, key = province
    a = region_orgs(orgs, city.engine)[1]
    batch = visits(a, 8)
    city.ingest(a[0], URL_DATASET, batch, source="api")
    city.ingest(a[0], URL_DATASET, [{**batch[0], "dept_name": "呼吸内科"}], source="api")
    # one batch carrying two more versions of one record
    city.ingest(a[0], URL_DATASET, [{**batch[3], "dept_name": "儿科"}, {**batch[3], "dept_name": "眼科"}], source="api")
    with city.engine.connect() as conn:
        versions = conn.execute(select(m.Record.version).where(m.Record.record_key == OutboxKey.of(conn, 3))).scalar_one()
    assert versions == 3
    with province_serving(tmp_path, p_url) as base:
        assert forwarder(city.engine, base, key).run(once=True, max_failures=2).sent == len(state(city.engine))
        assert state(p_engine) == state(city.engine)
        with city.engine.begin() as conn:
            conn.execute(update(OutboxRow).values(sent_at=None))
        again = forwarder(city.engine, base, key).run(once=True, max_failures=2)
        assert again.sent == len(state(city.engine)) and again.requests >= 3  # one version of a key per request
    assert state(p_engine) == state(city.engine)


class OutboxKey:
    @staticmethod
    def of(conn, nth: int) -> str:
        """The record key of the outbox's nth row (a record of the first batch)."""
        return conn.execute(select(OutboxRow.record_key).order_by(OutboxRow.id).offset(nth).limit(1)).scalar_one()


@pytest.mark.slow
def test_province_refuses_an_institution_outside_the_region(city, province, orgs, tmp_path):
    """The city key of 长春 may not write for an institution of 吉林市: refused per record with
    ORG_OUTSIDE_REGION, shown by the city's status; the region's records go through."""
    p_engine, p_url, key = province
    inside = region_orgs(orgs, city.engine)[1]
    outside = region_orgs(orgs, city.engine, "220200")[0]
    city.ingest(inside[0], URL_DATASET, visits(inside, 5), source="api")
    city.ingest(outside[0], URL_DATASET, visits(outside, 4, seed=3), source="api")
    with province_serving(tmp_path, p_url) as base:
        result = forwarder(city.engine, base, key).run(once=True, max_failures=2)
    assert result.refused == len(state(city.engine, {outside[0]})) > 0
    assert result.sent == len(state(city.engine, {inside[0]}))
    assert state(p_engine) == state(city.engine, {inside[0]})
    status = outbox_status(city.engine)
    assert status.backlog == 0 and status.refused == result.refused
    codes = {f["code"] for r in status.refusals for f in r["findings"]}
    assert codes == {"ORG_OUTSIDE_REGION"}
    assert "不属于本市级平台所辖地区" in status.refusals[0]["findings"][0]["message"]
    assert {r["org_code"] for r in status.refusals} == {outside[0]}

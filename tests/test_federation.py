"""Province–city integration (省市一体化): a city platform (the ``engine`` store, SQLite and
PostgreSQL, its pipeline in this process) forwards to a province that is a real `phip serve`
over a PostgreSQL database of its own. After every fault the province holds exactly the city's
records and versions (same keys, versions and content hashes), nothing missing, nothing twice."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import func, select, update

from phip.federation.forwarder import outbox_status
from phip.federation.tables import OutboxRow
from phip.orgs.keys import create_key
from phip.runtime import build_pipeline
from phip.store import models as m
from tests.serve_support import free_port, serving
from tests.federation_support import REGION, URL_DATASET, city, forwarder, province, province_serving, region_orgs, state, visits  # noqa: F401 (fixtures)


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
        versions = conn.execute(select(m.Record.version).where(m.Record.record_key == outbox_key(conn, 3))).scalar_one()
    assert versions == 3
    with province_serving(tmp_path, p_url) as base:
        assert forwarder(city.engine, base, key).run(once=True, max_failures=2).sent == len(state(city.engine))
        assert state(p_engine) == state(city.engine)
        with city.engine.begin() as conn:
            conn.execute(update(OutboxRow).values(sent_at=None))
        again = forwarder(city.engine, base, key).run(once=True, max_failures=2)
        assert again.sent == len(state(city.engine)) and again.requests >= 3  # one version of a key per request
    assert state(p_engine) == state(city.engine)


def outbox_key(conn, nth: int) -> str:  # noqa: ANN001
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


def test_hospital_push_to_the_city_queues_and_shows_in_metrics(city, orgs, monkeypatch):
    """Through the city's own push API: what it stores is queued in the same transaction (a
    rejected record is not), and /metrics shows the backlog and the age of the oldest."""
    from fastapi.testclient import TestClient

    from phip.api.app import create_app

    org = region_orgs(orgs, city.engine)[1]
    _, hospital_key = create_key(city.engine, org[0])
    client = TestClient(create_app(city.engine))
    batch = visits(org, 6)
    batch[2] = {**batch[2], "visit_time": "2026-02-30 09:00:00"}  # rejected: never forwarded
    r = client.post(f"/api/v1/datasets/{URL_DATASET}/records", json=batch, headers={"Authorization": f"Bearer {hospital_key}"})
    assert r.json()["counts"]["rejected"] == 1
    assert outbox_status(city.engine).backlog == len(state(city.engine)) == len(batch) - 1
    monkeypatch.setenv("PHIP_METRICS_TOKEN", "scrape-token-for-tests")
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-for-tests"}).text
    assert f"phip_outbox_backlog {float(len(batch) - 1)}" in text
    assert "phip_outbox_oldest_unsent_seconds" in text


class FaultyProxy:
    """A real HTTP hop between the city and the province that misbehaves on plan: per request
    ``ok`` (pass through), ``500`` (answer 500, the province sees nothing), ``lost`` (the
    province stores the batch, the city gets 502: a receipt lost), ``slow`` (pass through after
    ``delay`` seconds: longer than the city's timeout). After the plan: ``ok``."""

    def __init__(self, target: str, plan: list[str] = (), delay: float = 0.0):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx

        self.target, self.plan, self.delay = target, list(plan), delay
        self.requests = 0
        self.forwarded = threading.Event()  # set once the province answered a forwarded batch
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                action = proxy.plan.pop(0) if proxy.plan else "ok"
                proxy.requests += 1
                status, answer = 500, b'{"error": "injected"}'
                if action != "500":
                    try:
                        r = httpx.post(proxy.target + self.path, content=body, timeout=30, headers={
                            "Authorization": self.headers["Authorization"], "Content-Type": "application/json"})
                        status, answer = r.status_code, r.content
                        proxy.forwarded.set()
                    except httpx.HTTPError:
                        status, answer = 502, b'{"error": "province unreachable"}'
                    if action == "lost":
                        status, answer = 502, b'{"error": "receipt lost"}'
                    if action == "slow":
                        time.sleep(proxy.delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                try:
                    self.wfile.write(answer)
                except OSError:
                    pass  # the city gave up (timeout) or was killed

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def two_hospitals_and_corrections(city, orgs, n: int = 30) -> None:
    a, b = region_orgs(orgs, city.engine)[1:3]
    first = visits(a, n)
    city.ingest(a[0], URL_DATASET, first, source="api")
    city.ingest(b[0], URL_DATASET, visits(b, n, seed=2), source="api")
    city.ingest(a[0], URL_DATASET, [{**first[i], "dept_name": "呼吸内科"} for i in range(0, n, 3)], source="api")


@pytest.mark.slow
def test_province_500_timeouts_and_lost_receipts(city, province, orgs, tmp_path):
    """Some batches answered 500, one timing out, two stored at the province with the receipt
    lost: retried with backoff until all are through; the province equals the city."""
    p_engine, p_url, key = province
    two_hospitals_and_corrections(city, orgs)
    with province_serving(tmp_path, p_url) as base:
        # timeout 3 s: a loaded machine's first province batches took over 1 s and counted as failures
        proxy = FaultyProxy(base, ["500", "ok", "lost", "500", "500", "slow", "ok", "lost"], delay=4.0)
        try:
            result = forwarder(city.engine, proxy.url, key, batch_size=9, timeout=3).run(once=True, max_failures=6)
        finally:
            proxy.close()
    assert result.failures == 6 and not result.gave_up
    assert result.sent == len(state(city.engine)) and outbox_status(city.engine).backlog == 0
    assert state(p_engine) == state(city.engine)


@pytest.mark.slow
def test_forwarder_killed_mid_batch(city, province, orgs, tmp_path):
    """`phip federation forward` is SIGKILLed while the province stores its first batch (the
    receipt never reaches it); the next run re-sends that batch and the province stores it once."""
    import signal
    import subprocess
    import sys

    p_engine, p_url, key = province
    two_hospitals_and_corrections(city, orgs, n=400)  # more than one batch of 500
    total = len(state(city.engine))
    env = {**os.environ, "PHIP_DATABASE_URL": city.engine.url.render_as_string(hide_password=False),
           "PHIP_UPSTREAM_KEY": key, "PHIP_DATA_DIR": str(tmp_path / "city")}
    with province_serving(tmp_path, p_url) as base:
        proxy = FaultyProxy(base, ["slow"], delay=30.0)
        env["PHIP_UPSTREAM_URL"] = proxy.url
        try:
            proc = subprocess.Popen([sys.executable, "-m", "phip.cli", "federation", "forward"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert proxy.forwarded.wait(120), "the forwarder sent nothing"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert outbox_status(city.engine).backlog == total  # nothing marked: the receipt never came
            assert 0 < len(state(p_engine)) < total  # but the province stored the first batch
            result = forwarder(city.engine, proxy.url, key).run(once=True, max_failures=3)
        finally:
            proxy.close()
    assert result.sent == total and outbox_status(city.engine).backlog == 0
    assert state(p_engine) == state(city.engine)


@pytest.mark.slow
def test_province_restarted_mid_batch(city, province, orgs, tmp_path):
    """The province stops (SIGTERM) while the forwarder runs in a thread and comes back later
    (behind the same address: the proxy); the forwarder backs off, goes on, and the province
    ends equal to the city."""
    import threading

    p_engine, p_url, key = province
    two_hospitals_and_corrections(city, orgs, n=60)
    results = []
    with serving(tmp_path / "p1", p_url) as base:
        proxy = FaultyProxy(base)
        worker = threading.Thread(target=lambda: results.append(
            forwarder(city.engine, proxy.url, key, batch_size=5).run(once=True, max_failures=1000)))
        worker.start()
        while proxy.requests < 3:
            time.sleep(0.01)
    try:
        time.sleep(0.5)  # the province is down: the forwarder fails and backs off
        waiting = outbox_status(city.engine).backlog
        with serving(tmp_path / "p2", p_url) as base:
            proxy.target = base
            worker.join(120)
    finally:
        proxy.close()
    assert waiting > 0
    assert results and results[0].failures > 0 and outbox_status(city.engine).backlog == 0
    assert state(p_engine) == state(city.engine)


@pytest.mark.slow
def test_history_queued_then_a_range_resent(engine, province, orgs, tmp_path, monkeypatch):
    """A city that stored records before it was connected queues its history; a re-send of
    everything afterwards stores nothing twice at the province."""
    from phip.federation.forwarder import queue_history, resend

    p_engine, p_url, key = province
    standalone = build_pipeline(engine)
    a = region_orgs(orgs, engine)[1]
    standalone.ingest(a[0], URL_DATASET, visits(a, 25), source="api")
    assert outbox_status(engine).backlog == 0
    assert queue_history(engine, chunk=10) == 25
    monkeypatch.setenv("PHIP_UPSTREAM_URL", "http://127.0.0.1:1")
    more = build_pipeline(engine).ingest(a[0], URL_DATASET, visits(a, 10, seed=5), source="api")  # queued as stored
    total = 25 + more.accepted + more.updated
    assert outbox_status(engine).backlog == total == len(state(engine))
    with province_serving(tmp_path, p_url) as base:
        assert forwarder(engine, base, key, batch_size=8).run(once=True, max_failures=2).sent == total
        assert resend(engine, dataset=URL_DATASET) == total
        again = forwarder(engine, base, key).run(once=True, max_failures=2)
    assert again.sent == total and outbox_status(engine).backlog == 0
    assert state(p_engine) == state(engine)


@pytest.mark.slow
def test_cli_city_key_forward_and_status(tmp_path, monkeypatch):
    """The commands an operator types: a city key at the province, a standalone city refusing
    to forward, then `forward --once` failing against a province that is down (exit 2, the
    error kept) and `status` showing the backlog and that error."""
    from tests.cli_support import ORG, run

    province_dir, city_dir = tmp_path / "province", tmp_path / "city"
    assert run(["orgs", "key", "create", ORG, "--region", "22010"], province_dir, check=False).returncode == 2
    key = run(["orgs", "key", "create", ORG, "--region", REGION], province_dir).stdout.strip().splitlines()[-1]
    assert key.startswith("phip_")
    standalone = run(["federation", "forward", "--once"], city_dir, check=False)
    assert standalone.returncode == 2 and "NO_UPSTREAM" in standalone.stdout + standalone.stderr
    for name, value in (("PHIP_UPSTREAM_URL", f"http://127.0.0.1:{free_port()}"), ("PHIP_UPSTREAM_KEY", key),
                        ("PHIP_REGION_CODE", REGION)):
        monkeypatch.setenv(name, value)  # the commands run below inherit them
    records = tmp_path / "v.json"
    run(["generate", "--org", ORG, "--visits", "12", "--out", str(records)], city_dir)
    run(["ingest", str(records), "--org", ORG, "--dataset", URL_DATASET], city_dir)
    down = run(["federation", "forward", "--once", "--max-failures", "1"], city_dir, check=False)
    assert down.returncode == 2 and "UPSTREAM_FAILED" in down.stdout + down.stderr
    status = run(["federation", "status"], city_dir).stdout
    assert "待发 12 条" in status and "最近错误" in status and REGION in status and "状态：正常" in status
    purged = run(["federation", "purge", "--older-than", "30d"], city_dir).stdout
    assert "已删除 0 条" in purged and "待发 12 条" in run(["federation", "status"], city_dir).stdout
    for age in ("soon", "9999999d", "99999999999d"):  # the last two overflowed the calendar: tracebacks
        bad = run(["federation", "purge", "--older-than", age], city_dir, check=False)
        assert bad.returncode == 2 and "BAD_AGE" in bad.stdout + bad.stderr, age

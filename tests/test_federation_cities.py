"""Province–city integration, what each side sees (issue 23): the province's refusals back at
the hospital through the city's feedback API and dashboard; the city's lag and its alert
state; the province's view of its city platforms (upload statistics, 上报途径, per-city
activity); and the purge of sent outbox rows."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from phip.accounts import create_user
from phip.api.app import create_app
from phip.federation.forwarder import outbox_status, resend
from phip.federation.province import ingest_for_region
from phip.federation.tables import OutboxRow
from phip.orgs.keys import create_key
from phip.reports.onboarding import onboarding_status
from phip.reports.period import Period
from phip.reports.uploads import upload_report
from phip.runtime import build_pipeline, prepare
from phip.standard.validate import platform_now
from phip.store.db import make_engine
from phip.store import models as m
from tests.federation_support import REGION, URL_DATASET, city, forwarder, province, province_serving, region_orgs, state, visits  # noqa: F401 (fixtures)

PASSWORD = "correct horse battery"
CITY_PLATFORM = "12220104412001376B"  # the province fixture's city key holder


def operator(engine) -> TestClient:  # noqa: ANN001
    """A logged-in operator of the platform over ``engine``."""
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    client = TestClient(create_app(engine))
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
    assert client.post("/login", data={"username": "ops", "password": PASSWORD, "csrf_token": token, "next": "/ops/"},
                       follow_redirects=False).status_code == 303
    return client


def feedback(client: TestClient, key: str) -> list[dict]:
    r = client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()["items"]



@pytest.mark.slow
def test_province_refusals_reach_the_hospital_feedback_and_dashboard(city, province, orgs, tmp_path):
    """The province refuses a hospital outside the city key's region: the hospital reads each
    refused record in the city's /api/v1/feedback with the province's code and message, the
    operator on its rejections page. A re-push of the same records at the city does not clear
    them (nothing new went to the province); once the province takes them (the institution
    moved into the region there, then a re-send), they are gone from the feedback."""
    p_engine, p_url, key = province
    inside = region_orgs(orgs, city.engine)[1]
    outside = region_orgs(orgs, city.engine, "220200")[0]
    records = visits(outside, 4, seed=3)
    city.ingest(inside[0], URL_DATASET, visits(inside, 5), source="api")
    city.ingest(outside[0], URL_DATASET, records, source="api")
    _, hospital_key = create_key(city.engine, outside[0])
    _, inside_key = create_key(city.engine, inside[0])
    with province_serving(tmp_path, p_url) as base:
        assert forwarder(city.engine, base, key).run(once=True, max_failures=2).refused == len(records)
    client = operator(city.engine)
    items = feedback(client, hospital_key)
    with city.engine.connect() as conn:
        keys = set(conn.execute(select(m.Record.record_key).where(m.Record.org_code == outside[0])).scalars())
    assert {i["record_key"] for i in items} == keys and len(items) == len(records)
    for item in items:
        assert item["rejected"] and item["dataset"] == URL_DATASET
        (f,) = item["findings"]
        assert f["code"] == "ORG_OUTSIDE_REGION" and f["platform"] == "province"
        assert f["message"].startswith("省平台拒收：") and "不属于本市级平台所辖地区" in f["message"]
    assert feedback(client, inside_key) == []
    page = client.get(f"/ops/institutions/{outside[0]}/rejections/{URL_DATASET}")
    assert page.status_code == 200 and "省平台拒收" in page.text and "ORG_OUTSIDE_REGION" in page.text
    assert f"/institutions/{outside[0]}/rejections/{URL_DATASET}" in client.get(f"/ops/institutions/{outside[0]}").text
    # the same records again at the city: unchanged, not forwarded, the refusals stand
    assert city.ingest(outside[0], URL_DATASET, records, source="api").unchanged == len(records)
    assert len(feedback(client, hospital_key)) == len(records)

    with p_engine.begin() as conn:  # the province's fix: the institution belongs to the city's region
        conn.execute(update(m.Institution).where(m.Institution.code == outside[0]).values(region_code=REGION))
    assert resend(city.engine, org_code=outside[0]) == len(records)
    with province_serving(tmp_path, p_url) as base:
        result = forwarder(city.engine, base, key).run(once=True, max_failures=2)
    assert result.sent == len(records) and result.refused == 0
    assert feedback(client, hospital_key) == []
    assert outbox_status(city.engine).refused == 0  # re-queued rows lost their findings (SQL NULL)
    assert state(p_engine) == state(city.engine)


def test_lag_panel_and_metric_in_both_states(city, orgs, monkeypatch):
    """正常 while the oldest unsent row is younger than PHIP_OUTBOX_LAG_ALERT, 告警 past it,
    on the overview page and as phip_outbox_lag_alert; the send rate counts rows sent."""
    from phip.federation.lag import outbox_lag

    org = region_orgs(orgs, city.engine)[1]
    city.ingest(org[0], URL_DATASET, visits(org, 6), source="api")
    monkeypatch.setenv("PHIP_METRICS_TOKEN", "scrape-token-for-tests")
    monkeypatch.setenv("PHIP_OUTBOX_LAG_ALERT", "900")
    client = operator(city.engine)

    def seen() -> tuple[str, str]:
        page = client.get("/ops/")
        assert page.status_code == 200 and "上报省平台" in page.text
        panel = page.text[page.text.index('id="outbox-panel"'):]
        metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-for-tests"}).text
        return panel[:panel.index("</table>")], metrics

    panel, metrics = seen()
    assert "正常" in panel and "告警" not in panel and "phip_outbox_lag_alert 0.0" in metrics
    assert re.search(r'id="outbox-backlog">6<', panel)

    now = platform_now()
    with city.engine.begin() as conn:  # the oldest row has waited 20 minutes, two were sent a minute ago
        first = conn.execute(select(func.min(OutboxRow.id))).scalar_one()
        conn.execute(update(OutboxRow).where(OutboxRow.id == first + 2).values(created_at=now - timedelta(minutes=20)))
        conn.execute(update(OutboxRow).where(OutboxRow.id.in_([first, first + 1]))
                     .values(sent_at=now - timedelta(seconds=30)))
    lag = outbox_lag(city.engine)
    assert lag.alert and lag.backlog == 4 and lag.sent_last_hour == 2 and lag.sent_last_minute == 2
    panel, metrics = seen()
    assert "告警：积压超过阈值" in panel and "phip_outbox_lag_alert 1.0" in metrics
    assert "近1小时 2 条，近1分钟 2 条" in panel
    monkeypatch.setenv("PHIP_OUTBOX_LAG_ALERT", "3600")  # the same lag under a larger threshold
    panel, metrics = seen()
    assert "正常" in panel and "phip_outbox_lag_alert 0.0" in metrics


def test_province_sees_its_city_platforms(engine, pipeline, orgs):
    """A city key's batches: the institution's 上报途径 is 经市平台（长春市）, one pushing
    directly 直报省平台; the overview lists the city with its last batch and 24-hour records."""
    from phip.federation.province import city_activity

    a, b = region_orgs(orgs, engine)[1:3]
    _, city_key = create_key(engine, CITY_PLATFORM, "长春市全民健康信息平台", REGION)
    records = visits(a, 5)
    receipt = ingest_for_region(pipeline, CITY_PLATFORM, REGION, URL_DATASET, records)
    assert receipt.accepted == len(records)
    pipeline.ingest(b[0], URL_DATASET, visits(b, 3, seed=2), source="api")
    routes = {s.code: s.route for s in onboarding_status(engine)}
    assert routes[a[0]] == "经市平台（长春市）" and routes[b[0]] == "直报省平台"
    assert routes[region_orgs(orgs, engine)[3][0]] == "—"
    (city_row,) = city_activity(engine)
    assert (city_row.name, city_row.region_code, city_row.records_24h, city_row.stored_24h,
            city_row.institutions_24h) == ("长春市", REGION, 5, 5, 1)
    assert city_row.last_batch is not None
    client = operator(engine)
    overview = client.get("/ops/").text
    assert 'id="city-platforms"' in overview and "长春市" in overview and 'id="outbox-panel"' not in overview
    onboarding_page = client.get("/ops/onboarding").text
    assert "上报途径" in onboarding_page and "经市平台（长春市）" in onboarding_page and "直报省平台" in onboarding_page
    assert "经市平台（长春市）" in client.get(f"/ops/institutions/{a[0]}").text


def test_a_platform_without_city_keys_shows_no_routes(engine, pipeline, orgs):
    a = region_orgs(orgs, engine)[1]
    pipeline.ingest(a[0], URL_DATASET, visits(a, 3), source="api")
    client = operator(engine)
    assert "上报途径" not in client.get("/ops/onboarding").text
    overview = client.get("/ops/").text
    assert 'id="city-platforms"' not in overview and 'id="outbox-panel"' not in overview


@pytest.mark.slow
def test_upload_statistics_equal_direct_or_through_the_city(city, province, orgs, tmp_path):
    """The same hospitals' records, pushed to a province directly or through the city: the
    upload statistics of the province (city, county and institution tables) are the same."""
    p_engine, p_url, key = province
    direct = prepare(make_engine(f"sqlite:///{tmp_path / 'direct.db'}"))
    straight = build_pipeline(direct)
    a, b = region_orgs(orgs, city.engine)[1:3]
    first = visits(a, 20)
    batches = [(a[0], first), (b[0], visits(b, 12, seed=2)),
               (a[0], [{**first[i], "dept_name": "呼吸内科"} for i in range(0, 20, 4)])]
    for org, records in batches:
        city.ingest(org, URL_DATASET, records, source="api")
        straight.ingest(org, URL_DATASET, records, source="api")
    with province_serving(tmp_path, p_url) as base:
        assert forwarder(city.engine, base, key).run(once=True, max_failures=2).refused == 0
    today = platform_now().date()
    period = Period(min(today, date(2026, 11, 1)), max(today, date(2026, 11, 30)))
    for level in ("city", "county", "institution"):
        through, straight_rep = upload_report(p_engine, period, level), upload_report(direct, period, level)
        assert [asdict(r) for r in through.rows] == [asdict(r) for r in straight_rep.rows], level
        assert asdict(through.total) == asdict(straight_rep.total)
    changchun = next(r for r in upload_report(p_engine, period, "city").rows if r.region_code == REGION)
    assert changchun.volume == 20 + 12 + 5 and changchun.outpatient > 0
    direct.dispose()


def test_purge_deletes_only_rows_the_province_took(city, orgs):
    """Sent rows older than the age go, a chunk at a time; unsent rows (however old), refused
    rows and recently sent rows stay; a re-send of the purged range re-queues only what stayed."""
    from phip.federation.forwarder import purge

    org = region_orgs(orgs, city.engine)[1]
    city.ingest(org[0], URL_DATASET, visits(org, 12), source="api")
    now = platform_now()
    old = now - timedelta(days=40)
    with city.engine.begin() as conn:
        ids = conn.execute(select(OutboxRow.id).order_by(OutboxRow.id)).scalars().all()
        conn.execute(update(OutboxRow).where(OutboxRow.id.in_(ids[:7])).values(sent_at=old, created_at=old))
        conn.execute(update(OutboxRow).where(OutboxRow.id == ids[7])
                     .values(sent_at=old, created_at=old, findings=[{"code": "ORG_UNREGISTERED", "message": "x"}]))
        conn.execute(update(OutboxRow).where(OutboxRow.id == ids[8]).values(sent_at=now - timedelta(days=2)))
        conn.execute(update(OutboxRow).where(OutboxRow.id.in_(ids[9:])).values(created_at=old))  # unsent, old
    assert purge(city.engine, timedelta(days=30), chunk=3) == 7
    with city.engine.connect() as conn:
        left = conn.execute(select(OutboxRow.id).order_by(OutboxRow.id)).scalars().all()
    assert left == ids[7:]
    assert outbox_status(city.engine).backlog == 3 and purge(city.engine, timedelta(days=30)) == 0
    assert resend(city.engine, until=now - timedelta(days=30)) == 1  # the refused one; the purged are gone

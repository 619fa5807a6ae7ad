"""Issue 19 item 7: cookie-authenticated changes need the session's CSRF token and a matching
Origin; /metrics and the platform's figures on / need a login (or the metrics token)."""

from __future__ import annotations

import re
import pytest
from fastapi.testclient import TestClient

from phip.api.app import create_app
from phip.accounts import create_user
from tests.web_support import PASSWORD, login

HOST = "http://testserver"


@pytest.fixture()
def client(engine):  # noqa: ANN001
    create_user(engine, "ops", PASSWORD)
    return TestClient(create_app(engine), base_url=HOST)


def _posts(pid: str) -> list[tuple[str, dict]]:
    return [("/api/v1/empi/persons/search", {"name": "张伟", "birth_date": "1990-04-12"}),
            (f"/api/v1/empi/persons/{pid}/split", {"record_ids": [1]}),
            ("/api/v1/empi/reviews/1/decision", {"decision": "link"}),
            ("/api/v1/empi/merge", {"survivor": pid, "retired": "0c4d6e8f1a2b3c4d5e6f7a8b9c0d1e2f"}),
            ("/api/v1/empi/events/1/undo", {})]


def test_empi_posts_need_the_sessions_csrf_token_and_the_same_origin(client):
    login(client)
    token = client.get("/api/v1/empi/session").json()["csrf_token"]
    assert len(token) >= 32
    for path, body in _posts("9f1c2b7e4d3a4c58b0e6a1d2c3b4a596"):
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 403, (path, headers)
            assert refused.json()["error"] == {"code": "CSRF_FAILED", "message": refused.json()["error"]["message"],
                                               "field": "X-CSRF-Token"}
            assert "CSRF" in refused.json()["error"]["message"]
        for source in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                       {"Origin": "null"}, {"Origin": "http://testserver.evil.example"}):
            cross = client.post(path, json=body, headers={"X-CSRF-Token": token, **source})
            assert cross.status_code == 403 and cross.json()["error"]["code"] == "CROSS_ORIGIN", (path, source)
        # with the token, from the platform's own page (or a client sending no Origin): the
        # request reaches the service, which answers for the data (404, 409, 200 …), not 403
        for source in ({}, {"Origin": HOST}, {"Referer": f"{HOST}/ops/"}):
            passed = client.post(path, json=body, headers={"X-CSRF-Token": token, **source})
            assert passed.status_code != 403 and passed.json().get("error", {}).get("code") not in (
                "CSRF_FAILED", "CROSS_ORIGIN"), (path, passed.text)
    # reads need no token
    assert client.get("/api/v1/empi/reviews").status_code == 200


def test_another_sessions_token_does_not_do(client, engine):
    create_user(engine, "ops2", PASSWORD)
    other = TestClient(create_app(engine), base_url=HOST)
    page = other.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    other.post("/login", data={"username": "ops2", "password": PASSWORD, "csrf_token": csrf})
    theirs = other.get("/api/v1/empi/session").json()["csrf_token"]
    login(client)
    r = client.post("/api/v1/empi/persons/search", json={"name": "张伟", "birth_date": "1990-04-12"},
                    headers={"X-CSRF-Token": theirs})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CSRF_FAILED"


def test_dashboard_forms_refuse_another_origin(client):
    login(client)
    page = client.get("/ops/onboarding")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    code = re.search(r'/ops/onboarding/([^/"]+)/network', page.text)[1]
    form = {"status": "connected", "csrf_token": token}
    cross = client.post(f"/ops/onboarding/{code}/network", data=form, headers={"Origin": "https://evil.example"},
                        follow_redirects=False)
    assert cross.status_code == 403 and "来源" in cross.text
    same = client.post(f"/ops/onboarding/{code}/network", data=form, headers={"Origin": HOST}, follow_redirects=False)
    assert same.status_code == 303
    # logging out from another site does nothing either
    assert client.post("/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"},
                       follow_redirects=False).status_code == 403
    assert client.get("/ops/", follow_redirects=False).status_code == 200


def test_api_key_requests_are_exempt(client, engine, orgs):
    """A hospital system's push with its key needs no CSRF token, whatever Origin it sends."""
    from phip.orgs.keys import create_key

    org = orgs[0][0]
    _, key = create_key(engine, org)
    record = {"org_code": org, "org_name": orgs[0][1], "visit_no": "MZ1", "patient_id": "P1", "name": "张三",
              "sex_code": "1", "visit_type_code": "1", "dept_code": "0301", "dept_name": "心血管内科",
              "visit_time": "2026-11-21 09:30:00", "diagnosis_code": "I10.x00", "diagnosis_name": "原发性高血压"}
    r = client.post("/api/v1/datasets/outpatient_visit/records", json=[record],
                    headers={"Authorization": f"Bearer {key}", "Origin": "https://his.example"})
    assert r.status_code == 200, r.text


def test_metrics_need_an_operator_or_the_metrics_token(client, engine, monkeypatch):
    monkeypatch.delenv("PHIP_METRICS_TOKEN", raising=False)
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "METRICS_AUTH_REQUIRED"
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401  # no token set: none works
    monkeypatch.setenv("PHIP_METRICS_TOKEN", "s3cret-scrape")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert scraped.status_code == 200 and "phip_http_requests_total" in scraped.text
    monkeypatch.delenv("PHIP_METRICS_TOKEN")
    create_user(engine, "aud_m", PASSWORD, "auditor", "审计员")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    client.post("/login", data={"username": "aud_m", "password": PASSWORD, "csrf_token": token})
    other_role = client.get("/metrics")  # signed in, but not as an operator: forbidden, not "log in"
    assert other_role.status_code == 403 and other_role.json()["error"]["code"] == "ROLE_FORBIDDEN"
    client.cookies.clear()
    login(client)
    assert client.get("/metrics").status_code == 200


def test_home_shows_no_figures_without_a_login(client, engine, pipeline, orgs):
    from phip.standard.validate import platform_now

    org, name = orgs[0]
    today = platform_now().strftime("%Y-%m-%d %H:%M:%S")
    pipeline.ingest(org, "outpatient_visit", [
        {"org_code": org, "org_name": name, "visit_no": f"MZ{i}", "patient_id": f"P{i}", "name": "张三", "sex_code": "1",
         "visit_type_code": "1", "dept_code": "0301", "dept_name": "心血管内科", "visit_time": today,
         "diagnosis_code": "I10.x00", "diagnosis_name": "原发性高血压"} for i in range(3)])
    landing = client.get("/")
    assert landing.status_code == 200 and "/login" in landing.text
    assert name not in landing.text and "近14天" not in landing.text and "门急诊就诊记录" not in landing.text
    login(client)
    home = client.get("/")
    assert name in home.text and "近14天" in home.text
    assert re.search(r"门急诊就诊记录<b>3</b>", home.text), home.text[:2000]

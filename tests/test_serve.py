"""The service as operators run it: `phip serve` in a real uvicorn process, a key from the CLI,
a push over HTTP, and Swagger UI served without any external asset."""

from __future__ import annotations

import pytest

import sqlite3

import httpx

from tests.cli_support import ORG, run
from tests.serve_support import serving

pytestmark = pytest.mark.slow  # every test here runs phip in its own process


def test_push_to_a_real_uvicorn_process(tmp_path):
    key = run(["orgs", "key", "create", ORG], tmp_path).stdout.strip().splitlines()[-1]
    records_file = tmp_path / "v.json"
    run(["generate", "--org", ORG, "--visits", "20", "--out", str(records_file)], tmp_path)
    with serving(tmp_path) as base:
        r = httpx.post(f"{base}/api/v1/datasets/outpatient_visit/records", content=records_file.read_bytes(),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 200, r.text
        counts = r.json()["counts"]
        assert counts["accepted"] == counts["total"] > 0
        docs = httpx.get(f"{base}/docs").text
        assert "/static/swagger/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
        assert httpx.get(f"{base}/static/swagger/swagger-ui-bundle.js").status_code == 200
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "/api/v1/datasets/{dataset}/records" in spec["paths"]


def test_uvicorn_on_each_store_replays_and_keeps_institutions_apart(engine, orgs, tmp_path):
    """The real server on SQLite and on PostgreSQL: a push lands once, its replay changes
    nothing, and another institution's key cannot write this institution's records."""
    from sqlalchemy import func, select

    from phip.orgs.keys import create_key
    from phip.store.models import Record
    from tests.records_support import records

    batch = records(orgs, n=12)
    _, key = create_key(engine, orgs[0][0])
    _, other = create_key(engine, orgs[1][0])
    url = "/api/v1/datasets/outpatient_visit/records"
    with serving(tmp_path, engine.url.render_as_string(hide_password=False)) as base:
        first = httpx.post(base + url, json=batch, headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        again = httpx.post(base + url, json=batch, headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        foreign = httpx.post(base + url, json=batch, headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert first["counts"]["accepted"] == 12 and again["counts"]["unchanged"] == 12
    assert foreign.status_code == 200 and foreign.json()["counts"]["rejected"] == 12
    assert foreign.json()["rejections"][0]["findings"][0]["code"] == "ORG_MISMATCH"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Record)).scalar_one() == 12


def test_simulate_push_plays_a_hospital(tmp_path):
    run(["db", "upgrade"], tmp_path)
    with serving(tmp_path) as base:
        out = run(["simulate", "push", "--org", ORG, "--days", "1", "--visits", "10", "--url", base], tmp_path).stdout
    assert "上传完成" in out and "rejected 0" in out
    with sqlite3.connect(tmp_path / "phip.db") as conn:
        datasets = conn.execute("SELECT count(DISTINCT dataset) FROM records").fetchone()[0]
    assert datasets >= 40  # rare data sets (e.g. rescue records) need more than 10 visits to appear


def test_the_server_log_carries_no_full_identifier(tmp_path):
    """A whole run as operators and hospitals use it — pushes, feedback, an operator's EMPI
    searches, an old client putting an ID number and a phone into an address — and then the
    server's log is searched for every ID number and phone that went in: none is there whole."""
    import json
    import re

    from phip.accounts import create_user

    key = run(["orgs", "key", "create", ORG], tmp_path).stdout.strip().splitlines()[-1]
    records_file = tmp_path / "v.json"
    run(["generate", "--org", ORG, "--visits", "30", "--out", str(records_file)], tmp_path)
    records = json.loads(records_file.read_text(encoding="utf-8"))
    secrets = {r[f] for r in records for f in ("id_no", "phone") if r.get(f)}
    assert len(secrets) > 5
    from phip.store.db import make_engine

    create_user(make_engine(f"sqlite:///{tmp_path / 'phip.db'}"), "ops", "correct horse battery")
    log_path = tmp_path / "server.log"
    auth = {"Authorization": f"Bearer {key}"}
    with log_path.open("wb") as log, serving(tmp_path, log=log) as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.post("/api/v1/datasets/outpatient_visit/records", content=records_file.read_bytes(),
                               headers={**auth, "Content-Type": "application/json"}).status_code == 200
            client.get("/api/v1/feedback", params={"warnings": "true"}, headers=auth)
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
            client.post("/login", data={"username": "ops", "password": "correct horse battery", "csrf_token": token})
            some = records[0]
            client.headers["X-CSRF-Token"] = client.get("/api/v1/empi/session").json()["csrf_token"]
            assert client.post("/api/v1/empi/persons/search", json={"id_no": some["id_no"]}).status_code == 200
            for params in ({"id_no": some["id_no"]}, {"phone": some.get("phone") or "13804311234"}):
                assert client.get("/api/v1/empi/persons", params=params).status_code == 400
            client.get(f"/ops/findings?q={some['id_no']}")
            encoded = "".join(f"%{ord(c):02X}" for c in some["id_no"])  # an address written to slip by
            client.get(f"/api/v1/empi/persons?id_no={encoded}")
            client.get(f"/share/patients/{some['id_no'][:-2]}%{ord(some['id_no'][-2]):02X}{some['id_no'][-1]}")
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert "/api/v1/empi/persons?id_no=" in text  # the request was logged, and masked
    leaked = sorted(s for s in secrets if s in text or "".join(f"%{ord(c):02X}" for c in s) in text)
    assert "/share/patients/" in text
    assert not leaked, leaked[:3]

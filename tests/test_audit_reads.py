"""Operator and institution reads of personal data are in the audit trail (issue 19 item 6):
one test per kind of read, each checking who (account or key, role, institution), from where,
and whose record."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta

from fastapi.testclient import TestClient

from phip import audit
from phip.api.app import create_app
from phip.orgs.keys import create_key
from phip.quality.run import analyse
from phip.standard.validate import platform_now
from phip.synth.generator import Generator
from phip.accounts import create_user
from tests.web_support import PASSWORD, login
from tests.empi_support import id_number, ingest, person_of, registration


def _operator_client(engine) -> TestClient:
    create_user(engine, "ops", PASSWORD)
    client = TestClient(create_app(engine))
    login(client)
    return client


def _trail(engine, action: str) -> list[dict]:
    return sorted(audit.search(engine, action_prefix=action), key=lambda e: e["seq"])


def test_empi_api_reads_name_the_operator_the_address_and_the_person(pipeline, engine, orgs):
    a, b = orgs[0][0], orgs[1][0]
    born = date(1990, 4, 12)
    id_no = id_number(born, 61)
    known = registration(a, patient_id="A1", name="张伟", born=born, id_no=id_no, phone="13512345678")
    ingest(pipeline, a, known)
    ingest(pipeline, b, registration(b, patient_id="B1", name="张玮", born=date(1990, 4, 13)))
    pid = person_of(engine, known)
    client = _operator_client(engine)
    client.get("/api/v1/empi/persons", params={"name": "张伟", "birth_date": "1990-04-12"})
    token = client.get("/api/v1/empi/session").json()["csrf_token"]
    assert client.post("/api/v1/empi/persons/search", json={"id_no": id_no}, headers={"X-CSRF-Token": token}).status_code == 200
    client.get(f"/api/v1/empi/persons/{pid}")
    client.get(f"/api/v1/empi/persons/{pid}/identifiers")
    client.get(f"/api/v1/empi/persons/{pid}/events")
    client.get("/api/v1/empi/reviews")
    events = _trail(engine, "empi.")
    by_action = {e["action"]: e for e in events}
    assert {"empi.person.search", "empi.person.read", "empi.identifiers.read", "empi.events.read",
            "empi.reviews.read"} <= set(by_action)
    for e in events:
        assert (e["username"], e["role"], e["org_code"], e["address"]) == ("ops", "operator", None, "testclient")
    for action in ("empi.person.read", "empi.identifiers.read", "empi.events.read"):
        assert by_action[action]["person_id"] == pid
    searches = [e for e in events if e["action"] == "empi.person.search"]
    assert pid in {e["person_id"] for e in searches}
    by_id = searches[-1]["detail"]
    assert by_id["query"] == {"id_no": f"{id_no[:6]}********{id_no[-4:]}"}  # masked, never whole
    assert id_no not in str(events)


def test_xref_by_an_institution_key_names_the_key_and_the_institution(pipeline, engine, orgs):
    a = orgs[0][0]
    rec = registration(a, patient_id="A7", name="李娜", id_no=id_number(date(1980, 5, 17), 7))
    ingest(pipeline, a, rec)
    _, key = create_key(engine, a)
    client = TestClient(create_app(engine))
    assert client.post("/api/v1/empi/xref", json={"patient_id": "A7"},
                       headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/api/v1/empi/xref", params={"patient_id": "A7"}, headers={"X-API-Key": key}).status_code == 200
    events = _trail(engine, "empi.xref.read")
    assert len(events) == 2
    for e in events:
        assert (e["username"], e["role"], e["org_code"], e["address"], e["person_id"]) == (
            f"key:{key[:12]}", "institution", a, "testclient", person_of(engine, rec))


def test_push_feedback_read_names_the_institution_and_the_persons_of_warned_records(engine, orgs):
    from tests.records_support import URL, records

    org = orgs[0][0]
    _, key = create_key(engine, org)
    auth = {"Authorization": f"Bearer {key}"}
    client = TestClient(create_app(engine))
    batch = records(orgs, n=4)
    batch[1] = {**batch[1], "sex_code": "7"}  # stored with a warning
    batch[2] = {**batch[2], "visit_time": "2026-02-30 09:00:00"}  # rejected
    assert client.post(URL, json=batch, headers=auth).status_code == 200
    assert client.get("/api/v1/feedback", params={"warnings": "true"}, headers=auth).status_code == 200
    events = _trail(engine, "push.feedback.read")
    from phip.store import models as m
    from sqlalchemy import select

    with engine.connect() as conn:
        warned = conn.execute(select(m.Record.person_id).where(m.Record.record_key == batch[1]["visit_no"])).scalar_one()
    assert [(e["username"], e["role"], e["org_code"], e["address"], e["person_id"]) for e in events] == [
        (f"key:{key[:12]}", "institution", org, "testclient", warned)]
    assert events[0]["detail"]["items"] == 2


def test_dashboard_findings_and_rejections_pages_are_audited(engine, pipeline, orgs):
    code = orgs[0][0]
    now = platform_now()
    gen = Generator(seed=21)
    batches = {ds: recs for _, ds, recs in gen.day([(code, "x")], now.date(), visits=12, admissions=6, now=now)}
    planted = gen.plant_quality(batches)
    target = next(p for p in planted if p.code == "QC_SUM_MISMATCH")
    for ds, recs in batches.items():
        pipeline.ingest(code, ds, recs, now=now)
    bad = [{**r, "visit_time": "不详"} for r in batches["outpatient_visit"][:2]]
    pipeline.ingest(code, "outpatient_visit", bad, now=now)
    analyse(engine, code, now.date() - timedelta(days=7), now.date(), as_of=now + timedelta(days=10))
    client = _operator_client(engine)
    assert client.get(f"/ops/findings?org={code}&code=QC_SUM_MISMATCH").status_code == 200
    findings = _trail(engine, "quality.findings.read")
    from phip.store import models as m
    from sqlalchemy import select

    with engine.connect() as conn:
        shown = conn.execute(select(m.Record.person_id).where(m.Record.record_key == target.key,
                                                             m.Record.dataset == target.dataset)).scalar_one()
    assert shown in {e["person_id"] for e in findings}
    assert {(e["username"], e["role"], e["address"], e["target"]) for e in findings} == {
        ("ops", "operator", "testclient", "findings")}
    client.get(f"/ops/institutions/{code}")
    assert any(e["target"] == f"institution:{code}" for e in _trail(engine, "quality.findings.read"))
    assert client.get(f"/ops/institutions/{code}/rejections/outpatient_visit").status_code == 200
    rejections = _trail(engine, "quality.rejections.read")
    assert [(e["username"], e["address"], e["target"], e["detail"]["shown"]) for e in rejections] == [
        ("ops", "testclient", f"rejections:{code}/outpatient_visit", 2)]


def test_cli_exports_of_findings_and_rejections_are_audited(engine, pipeline, orgs, tmp_path):
    """``phip quality findings`` / ``rejections --json`` write persons to a terminal or a file."""
    import os

    code = orgs[0][0]
    now = platform_now()
    visits = next(recs for _, ds, recs in Generator(seed=5).day([(code, "x")], now.date(), visits=3, admissions=0, now=now,
                                                                datasets=["outpatient_visit"]))
    pipeline.ingest(code, "outpatient_visit", [{**visits[0], "visit_time": "不详"}], now=now)
    env = {**os.environ, "PHIP_DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "PHIP_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    for args in (["quality", "rejections", "--json"], ["quality", "findings", "--org", code]):
        proc = subprocess.run([sys.executable, "-m", "phip.cli", *args], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    events = _trail(engine, "export.download")
    import pwd

    assert [(e["target"], e["username"], e["role"], e["address"]) for e in events] == [
        ("cli:quality rejections", pwd.getpwuid(os.getuid()).pw_name, "operator", "local"),
        ("cli:quality findings", pwd.getpwuid(os.getuid()).pw_name, "operator", "local")]

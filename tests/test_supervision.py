"""Internet-hospital supervision rules: every planted violation is found with its rule code and
article, clean data gives none, and the cross-record rules read other batches and institutions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from phip.store.models import Record

from phip.quality.rules import load_supervision_rules
from phip.quality.run import analyse
from phip.quality.supervision_types import TYPE_CODES
from phip.quality.tables import QualityFinding
from phip.synth.internet import KINDS, InternetGenerator

HOSPITALS = [("12220102MB1C2400HU", "吉林大学中日联谊医院互联网医院"), ("12220802MB1C2401K7", "白城微医互联网医院")]
ENTITY = ("12220104412001376B", "长春中医药大学附院")
NOW = datetime(2026, 11, 22, 12, 0)
DAY = NOW.date() - timedelta(days=1)


def load(pipeline, gen: InternetGenerator, consultations: int = 20):  # noqa: ANN001
    days = [gen.register(NOW - timedelta(days=3)), gen.day(DAY, NOW, consultations)]
    for batch in days:
        for org, ds, recs in batch.batches:
            receipt = pipeline.ingest(org, ds, recs, now=NOW)
            assert receipt.rejected == 0, (ds, receipt.rejections[:1])
    return {p for d in days for p in d.planted}


def supervise(engine, org: str) -> list:  # noqa: ANN001
    analyse(engine, org, DAY - timedelta(days=1), DAY, as_of=NOW + timedelta(days=3), rules=load_supervision_rules(),
            mark=False)
    with engine.connect() as conn:
        return conn.execute(select(QualityFinding).where(QualityFinding.org_code == org,
                                                         QualityFinding.code.like("SV_%"))).all()


def test_rule_file_covers_every_type_with_an_article():
    rules = load_supervision_rules()
    assert {r.type for r in rules.instances} == set(TYPE_CODES)
    assert all(r.params["article"] for r in rules.instances)
    assert set(rules.codes) == {c for codes in TYPE_CODES.values() for c in codes}


def test_clean_internet_data_gives_no_supervision_finding(engine, pipeline):
    load(pipeline, InternetGenerator(HOSPITALS, ENTITY, seed=3))
    for org, _ in HOSPITALS:
        found = supervise(engine, org)
        assert not found, [(f.code, f.message) for f in found[:5]]


def test_every_planted_violation_is_found_with_code_and_article(engine, pipeline):
    gen = InternetGenerator(HOSPITALS, ENTITY, seed=5, violation_rate=1.0)
    planted = load(pipeline, gen, consultations=len(KINDS))
    found = {}
    for org, _ in HOSPITALS:
        for f in supervise(engine, org):
            found[(f.dataset, f.record_key, f.code)] = f
    expected = {(p.dataset, p.record_key, p.code) for p in planted}
    assert {p.code for p in planted} == set(load_supervision_rules().codes) - {"SV_NO_CONSULTATION"}
    assert set(found) == expected, (sorted(set(found) - expected)[:5], sorted(expected - set(found))[:5])
    for f in found.values():
        assert f.detail["article"] in f.message and f.rule_id.startswith("sv_") and f.dimension == "supervision"


def _stored_findings(engine) -> dict:  # noqa: ANN001
    with engine.connect() as conn:
        return {(f.dataset, f.record_key, f.code): f
                for f in conn.execute(select(QualityFinding).where(QualityFinding.code.like("SV_%")))}


def test_violations_are_found_as_the_records_arrive(engine, pipeline):
    gen = InternetGenerator(HOSPITALS, ENTITY, seed=5, violation_rate=1.0)
    planted = load(pipeline, gen, consultations=len(KINDS))  # ingest only: no run
    rules = load_supervision_rules()
    nightly = {c for r in rules.instances if not r.params["on_arrival"] for c in r.codes}
    assert nightly == {"SV_VOLUME_ANOMALY"}
    found = _stored_findings(engine)
    # an online visit's offline diagnosis may come with another hospital's T+1 upload: not due yet
    later = nightly | {"SV_NO_OFFLINE_DIAGNOSIS"}
    expected = {(p.dataset, p.record_key, p.code) for p in planted if p.code not in later}
    assert set(found) == expected, (sorted(set(found) - expected)[:5], sorted(expected - set(found))[:5])
    assert {f.run_id for f in found.values()} == {"arrival"}
    # the nightly run takes them over: the same findings, its own run, and the window rule's too
    for org, _ in HOSPITALS:
        supervise(engine, org)
    assert set(_stored_findings(engine)) == {(p.dataset, p.record_key, p.code) for p in planted}


def test_a_corrected_record_loses_its_finding_on_arrival(engine, pipeline):
    gen = InternetGenerator(HOSPITALS[:1], ENTITY, seed=1, violation_rate=1.0)
    gen._kind = KINDS.index("restricted")
    register, day = gen.register(NOW - timedelta(days=3)), gen.day(DAY, NOW, 1)
    for org, ds, recs in register.batches + day.batches:
        pipeline.ingest(org, ds, recs, now=NOW)
    bad = [(org, ds, r) for org, ds, recs in day.batches for r in recs if r.get("drug_restriction_code", "0") != "0"]
    assert bad and {k[2] for k in _stored_findings(engine)} == {"SV_RESTRICTED_DRUG"}
    for org, ds, r in bad:
        receipt = pipeline.ingest(org, ds, [{**r, "drug_restriction_code": "0"}], now=NOW + timedelta(hours=1))
        assert receipt.updated == 1
    assert _stored_findings(engine) == {}


def test_a_failing_check_on_arrival_keeps_the_batch(engine, pipeline, monkeypatch, caplog):
    from phip.quality.run import ALL_CHECKS

    def broken(*_args):  # noqa: ANN002 - a rule that crashes (e.g. a new rule type's bug)
        raise RuntimeError("broken rule")
        yield

    monkeypatch.setitem(ALL_CHECKS, "restricted_code", broken)
    gen = InternetGenerator(HOSPITALS[:1], ENTITY, seed=1, violation_rate=1.0)
    gen._kind = KINDS.index("restricted")
    register, day = gen.register(NOW - timedelta(days=3)), gen.day(DAY, NOW, 1)
    stored = 0
    for org, ds, recs in register.batches + day.batches:
        receipt = pipeline.ingest(org, ds, recs, now=NOW)
        assert receipt.rejected == 0
        stored += receipt.accepted
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Record)).scalar() == stored
    assert not {k for k in _stored_findings(engine) if k[0] == "e_prescription"}  # rolled back to the savepoint
    assert "supervision on arrival failed" in caplog.text
    monkeypatch.undo()
    supervise(engine, HOSPITALS[0][0])  # the nightly run catches up
    assert "SV_RESTRICTED_DRUG" in {k[2] for k in _stored_findings(engine)}


def test_offline_diagnosis_at_another_hospital_in_an_earlier_batch_counts(engine, pipeline):
    gen = InternetGenerator(HOSPITALS[:1], ENTITY, seed=8)
    register, day = gen.register(NOW - timedelta(days=3)), gen.day(DAY, NOW, 4)
    offline = [b for b in day.batches if b[1] == "outpatient_visit"]
    online = [b for b in day.batches if b[1] != "outpatient_visit"]
    for org, ds, recs in register.batches + online:
        pipeline.ingest(org, ds, recs, now=NOW)
    codes = {f.code for f in supervise(engine, HOSPITALS[0][0])}
    assert codes == {"SV_NO_OFFLINE_DIAGNOSIS"}  # the entity hospital has not sent its visits yet
    for org, ds, recs in offline:
        assert org == ENTITY[0]
        pipeline.ingest(org, ds, recs, now=NOW)
    assert supervise(engine, HOSPITALS[0][0]) == []  # found at the other institution, re-run replaces


def test_prescription_without_its_consultation_is_reported_once_due(engine, pipeline):
    gen = InternetGenerator(HOSPITALS[:1], ENTITY, seed=9)
    register, day = gen.register(NOW - timedelta(days=3)), gen.day(DAY, NOW, 3)
    for org, ds, recs in register.batches + [b for b in day.batches if b[1] != "online_consultation"]:
        pipeline.ingest(org, ds, recs, now=NOW)
    found = supervise(engine, HOSPITALS[0][0])
    assert found and {f.code for f in found} >= {"SV_NO_CONSULTATION"}
    for org, ds, recs in [b for b in day.batches if b[1] == "online_consultation"]:
        pipeline.ingest(org, ds, recs, now=NOW)
    assert supervise(engine, HOSPITALS[0][0]) == []


@pytest.mark.parametrize("kind", ["first_visit", "restricted", "review_order", "junior"])
def test_quality_findings_of_the_same_data_set_survive_a_supervision_run(engine, pipeline, kind):
    gen = InternetGenerator(HOSPITALS[:1], ENTITY, seed=1, violation_rate=1.0)
    gen._kind = KINDS.index(kind)
    load(pipeline, gen, 1)
    quality = analyse(engine, HOSPITALS[0][0], DAY - timedelta(days=1), DAY, as_of=NOW)
    found = supervise(engine, HOSPITALS[0][0])
    assert found
    with engine.connect() as conn:
        qc = conn.execute(select(QualityFinding).where(QualityFinding.code.like("QC_%"))).all()
    assert len(qc) == quality.findings


# --- the dashboard, the XLSX report, the feedback API ------------------------------------------------

PASSWORD = "correct horse battery"


@pytest.fixture()
def client(engine):  # noqa: ANN001
    from fastapi.testclient import TestClient

    from phip.api.app import create_app
    from phip.accounts import create_user

    create_user(engine, "ops", PASSWORD, display_name="值班员")
    return TestClient(create_app(engine))


def _login(client) -> None:  # noqa: ANN001
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
    client.post("/login", data={"username": "ops", "password": PASSWORD, "csrf_token": token, "next": "/ops/"})


def test_dashboard_filters_and_xlsx_agree_and_feedback_carries_findings(engine, pipeline, client):
    from io import BytesIO

    from openpyxl import load_workbook

    from phip.orgs.keys import create_key

    load(pipeline, InternetGenerator(HOSPITALS, ENTITY, seed=5, violation_rate=0.5), consultations=len(KINDS))
    totals = {org: len(supervise(engine, org)) for org, _ in HOSPITALS}
    assert all(totals.values())
    assert client.get("/ops/supervision/", follow_redirects=False).status_code == 303  # login first
    _login(client)
    month = f"{DAY:%Y-%m}"
    page = client.get("/ops/supervision/", params={"month": month}).text
    assert "互联网医院监管" in page and HOSPITALS[1][1] in page and "监管平台周报数据" in page
    org = HOSPITALS[0][0]
    one = client.get("/ops/supervision/", params={"month": month, "org": org, "rule": "sv_practitioner_licensed"}).text
    assert HOSPITALS[1][1] not in one.split('id="sv-hospitals"')[1].split("</table>")[0]
    xlsx = client.get("/ops/supervision/report.xlsx", params={"month": month})
    assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(BytesIO(xlsx.content))
    rows = {r[0]: r for r in wb["概况"].iter_rows(min_row=3, values_only=True)}
    assert rows[org][7] == totals[org] and rows["*"][7] == sum(totals.values())
    assert f"<td>{totals[org]}</td>" in page  # the page shows the same count
    assert sum(r[-1] for r in wb["违规按规则"].iter_rows(min_row=2, values_only=True)) == sum(totals.values())
    key = create_key(engine, org, "test")[1]
    fb = client.get("/api/v1/feedback", params={"quality": "true", "limit": 1000},
                    headers={"Authorization": f"Bearer {key}"}).json()
    got = {(q["dataset"], q["record_key"], q["code"]) for q in fb["quality"] if q["code"].startswith("SV_")}
    assert len(got) == totals[org]  # the hospital reads its supervision findings like every finding


def test_a_hospitals_values_reach_the_report_as_text_never_as_formulas(engine, pipeline):
    """Record numbers that start like Excel formulas ("=YY00000018", as "=HYPERLINK(…)" would)
    are sent by an internet hospital; the monthly report's examples carry them as the text they are, in no cell as a
    formula (openpyxl stores a string starting with "=" as one)."""
    from io import BytesIO

    from openpyxl import load_workbook

    from phip.quality.supervision_report import monthly_xlsx
    from phip.standard.catalog import load_standard

    gen = InternetGenerator(HOSPITALS[:1], ENTITY, seed=5, violation_rate=1.0)
    std = load_standard()
    for batch in (gen.register(NOW - timedelta(days=3)), gen.day(DAY, NOW, 8)):
        for org, ds, recs in batch.batches:
            keys = [k for k in std.dataset(ds).natural_key if k.endswith("_no")]
            hostile = [{**r, **{k: f"={r[k]}" for k in keys if isinstance(r.get(k), str)}} for r in recs]
            assert pipeline.ingest(org, ds, hostile, now=NOW).rejected == 0
    assert supervise(engine, HOSPITALS[0][0])
    wb = load_workbook(BytesIO(monthly_xlsx(engine, DAY.replace(day=1), DAY)))
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert any(isinstance(c.value, str) and c.value.startswith("=") for row in wb["违规示例"].iter_rows() for c in row)


def test_demo_has_two_internet_hospitals_with_planted_violations(engine, pipeline):
    from phip.demo import load_internet_demo
    from phip.ingest.receipt import Receipt
    from phip.quality.supervision_report import internet_hospitals

    totals = Receipt("demo", "*", "*", "demo", NOW)
    load_internet_demo(pipeline, totals, days=1, seed=4, violation_rate=0.5)
    assert totals.rejected == 0
    assert set(internet_hospitals(engine)) == set(HOSPITALS)  # the two of the register
    assert any(supervise_today(engine, org) for org, _ in HOSPITALS)


def supervise_today(engine, org: str) -> list:  # noqa: ANN001
    from phip.standard.validate import platform_now

    today = platform_now().date()
    analyse(engine, org, today - timedelta(days=2), today, rules=load_supervision_rules(), mark=False)
    with engine.connect() as conn:
        return conn.execute(select(QualityFinding).where(QualityFinding.org_code == org)).all()


@pytest.mark.slow
def test_cli_writes_the_monthly_report_and_refuses_a_bad_month(tmp_path):
    import os
    import subprocess
    import sys

    from openpyxl import load_workbook

    env = {**os.environ, "PHIP_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("PHIP_DATABASE_URL", None)
    out = tmp_path / "m.xlsx"
    ok = subprocess.run([sys.executable, "-m", "phip.cli", "supervision", "report", "--month", "2026-11", "--out", str(out)],
                        env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert load_workbook(out).sheetnames == ["概况", "违规按规则", "违规示例"]
    bad = subprocess.run([sys.executable, "-m", "phip.cli", "supervision", "report", "--month", "2026-13"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "BAD_PERIOD" in bad.stderr

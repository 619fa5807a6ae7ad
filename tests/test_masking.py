"""Issue 19 item 8: one masking rule per identifier kind (phip.privacy), used in the EMPI
answers (health cards, insurance numbers, names) and on the findings pages (patient names)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from phip.api.app import create_app
from phip.privacy import MASKS, mask_document, mask_health_card, mask_insurance, mask_kind, mask_name
from phip.quality.run import analyse
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.synth.generator import Generator
from phip.web.auth import create_user
from tests.test_dashboard import PASSWORD, login
from tests.test_empi import id_number, ingest, person_of, registration


def test_one_rule_per_kind():
    assert [mask_name(n) for n in ("张三", "张三丰", "欧阳娜娜", "李", "", None)] == ["张*", "张*丰", "欧**娜", "*", "", ""]
    assert mask_health_card("220102198005060017") == "220***********0017"
    assert mask_insurance("JL2201029988776") == "JL2********8776"
    assert mask_document("E12345678") == "E1*****78"
    assert set(MASKS) == {"id_no", "phone", "health_card", "insurance", "doc", "name"}
    assert mask_kind("patient_id", "P000123") == "P000123"  # the institution's own number: not personal
    assert mask_name("张三丰", role="no-such-role") == "张*丰"


def test_empi_answers_mask_cards_insurance_and_names(pipeline, engine, orgs):
    org = orgs[0][0]
    born = date(1985, 3, 9)
    card, insurance, id_no = "H22010219850309123", "YB2201029988776", id_number(born, 71)
    record = {**registration(org, patient_id="P-mask", name="张三丰", born=born, id_no=id_no, phone="13912345678",
                             health_card=card), "insurance_no": insurance}
    ingest(pipeline, org, record)
    pid = person_of(engine, record)
    create_user(engine, "ops", PASSWORD)
    client = TestClient(create_app(engine))
    login(client)
    text = client.get(f"/api/v1/empi/persons/{pid}/identifiers").text
    ids = {i["kind"]: i["value"] for i in client.get(f"/api/v1/empi/persons/{pid}/identifiers").json()["identifiers"]}
    assert ids["health_card"] == mask_health_card(card) and ids["insurance"] == mask_insurance(insurance)
    assert ids["id_no"] == f"{id_no[:6]}********{id_no[-4:]}" and ids["patient_id"] == "P-mask"
    for whole in (card, insurance, id_no):
        assert whole not in text
    gold = client.get(f"/api/v1/empi/persons/{pid}").json()["fields"]
    assert gold["name"]["value"] == "张*丰" and gold["phone"]["value"] == "139****5678"
    found = client.get("/api/v1/empi/persons", params={"name": "张三丰", "birth_date": born.isoformat()}).json()["persons"]
    assert [p["name"] for p in found] == ["张*丰"]


def test_findings_pages_mask_patient_names(engine, pipeline, orgs):
    code = orgs[0][0]
    now = platform_now()
    with engine.begin() as conn:
        conn.execute(update(Institution).where(Institution.code == code).values(first_upload_at=now - timedelta(days=30)))
    gen = Generator(seed=21)
    batches = {ds: recs for _, ds, recs in gen.day([(code, "x")], now.date(), visits=12, admissions=6, now=now)}
    planted = gen.plant_quality(batches)
    target = next(p for p in planted if p.code == "QC_SUM_MISMATCH")
    batches[target.dataset][target.index]["name"] = "司马相如"
    for ds, recs in batches.items():
        for r in recs:
            r["org_name"] = "x"
        pipeline.ingest(code, ds, recs, now=now)
    analyse(engine, code, now.date() - timedelta(days=7), now.date(), as_of=now + timedelta(days=10))
    create_user(engine, "ops", PASSWORD)
    client = TestClient(create_app(engine))
    login(client)
    findings = client.get(f"/ops/findings?org={code}&code=QC_SUM_MISMATCH").text
    assert "司**如" in findings and "司马相如" not in findings
    institution = client.get(f"/ops/institutions/{code}").text
    assert "司马相如" not in institution
    names = {r["name"] for recs in batches.values() for r in recs if r.get("name") and len(r["name"]) >= 2}
    shown = re.findall(r'<span class="ex">姓名 ([^<]+)</span>', findings)
    assert shown and all("*" in s for s in shown) and not names & set(shown)

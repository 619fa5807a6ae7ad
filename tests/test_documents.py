"""Shared documents (issue 25, CDA): every template round-trips (records → CDA → check → the
same records through the pipeline, on SQLite and PostgreSQL), the templates are coherent with
the standard, and the documents API reads through the sharing authorization with an audit."""

from __future__ import annotations

import gzip

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import func, select

from phip.accounts import create_user, user_info
from phip.api.app import create_app
from phip.audit.tables import AuditEvent
from phip.documents import load_templates, read, render
from phip.documents.cda import V3
from phip.orgs.keys import create_key
from phip.share import break_glass
from phip.store.models import Record
from tests.conftest import empty_store

from .documents_support import NOW, generate, ingest, stored_documents

TEMPLATES = sorted(load_templates().by_code)


def test_templates_are_coherent_with_the_standard():
    templates = load_templates()
    assert {"C0002", "C0004", "C0006", "C0007"} <= set(templates.by_code)
    for t in templates.by_code.values():
        assert t.template_id.startswith("2.16.156.10011.2.1.1.") and isinstance(t.verified.get("code"), bool)
        for section in t.sections:
            for e in section.entries:
                if e.field.de and e.code_system == templates.common["code_systems"]["data_element"]:
                    assert e.code == e.field.de  # WS 363 data element as the observation code
                if e.field.domain:
                    assert e.domain_oid and e.domain_oid[0].isdigit()


@pytest.mark.parametrize("code", TEMPLATES)
def test_round_trip(code, engine, pipeline, orgs):
    template = load_templates().by_code[code]
    batches = generate(template, orgs)
    assert ingest(pipeline, batches, template.dataset.code) > 0
    before = stored_documents(engine, template)
    xml = {key: render(template, rows) for key, rows in before.items()}
    empty_store(engine)
    for (org, _), body in xml.items():
        mapped = read(body)
        assert mapped.template is template
        receipt = pipeline.ingest(org, template.dataset.code, mapped.records, source="api", now=NOW)
        assert receipt.rejected == 0, [r.as_dict() for r in receipt.rejections]
    after = stored_documents(engine, template)
    assert after.keys() == before.keys()
    carried = template.fields
    for key, rows in before.items():
        assert [{f: r.get(f) for f in carried} for r in after[key]] == [{f: r.get(f) for f in carried} for r in rows], key


def test_rendered_header_follows_ws_t_500(engine, pipeline, orgs):
    template = load_templates().by_code["C0004"]
    ingest(pipeline, generate(template, orgs), template.dataset.code)
    (org, key), rows = next(iter(stored_documents(engine, template).items()))
    root = etree.fromstring(render(template, rows))
    ns = {"v": V3}
    assert root.find("v:realmCode", ns).get("code") == "CN"
    assert root.find("v:typeId", ns).get("extension") == "POCD_MT000040"
    assert root.find("v:code", ns).attrib["code"] == "C0004" and root.find("v:code", ns).get("codeSystem") == "2.16.156.10011.2.4"
    assert root.find("v:languageCode", ns).get("code") == "zh-CN"
    assert root.find("v:custodian/v:assignedCustodian/v:representedCustodianOrganization/v:id", ns).get("extension") == org
    assert root.find("v:recordTarget/v:patientRole/v:patient/v:id", ns).get("extension") == rows[0]["id_no"]
    organizers = root.findall("v:component/v:structuredBody/v:component/v:section/v:entry/v:organizer", ns)
    assert len(organizers) == len(rows)
    codes = {o.get("code") for o in root.iter(f"{{{V3}}}code")}
    assert "DE06.00.133.00" in codes  # 药物使用频次代码 as its WS 363 data element
    tags = [etree.QName(c).localname for c in root]
    assert tags.index("recordTarget") < tags.index("author") < tags.index("custodian") < tags.index("component")


# --- API ------------------------------------------------------------------------------------------


@pytest.fixture()
def cda_world(engine, pipeline, orgs):
    template = load_templates().by_code["C0007"]
    ingest(pipeline, generate(template, orgs), template.dataset.code)
    (org, key), rows = next(iter(stored_documents(engine, template).items()))
    with engine.connect() as conn:
        person = conn.execute(select(Record.person_id).where(Record.dataset == "lab_report", Record.org_code == org)
                              .where(Record.payload["report_no"].as_string() == key)).scalars().first()
    reader_org = orgs[2][0]
    create_user(engine, "doc_cda", "correct horse battery", "clinician", "王医生", org_code=reader_org)
    return template, org, key, rows, person, reader_org


def test_export_needs_authorization_and_is_audited(engine, cda_world):
    template, org, key, rows, person, reader_org = cda_world
    client = TestClient(create_app(engine))
    _, reader_key = create_key(engine, reader_org)
    me = {"Authorization": f"Bearer {reader_key}", "X-Clinician-Id": "doc_cda"}
    url = f"/api/v1/documents/C0007?person_id={person}&key={key}"
    r = client.get(url)
    assert r.status_code == 401, r.text
    r = client.get(url, headers=me)
    assert r.status_code == 403 and r.json()["error"]["code"] == "NO_AUTHORIZATION"
    break_glass(engine, user_info(engine, "doc_cda"), person, "critical", "急诊抢救")
    r = client.get(url, headers=me)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert read(r.content).records[0]["report_no"] == key
    assert client.get(f"/api/v1/documents/C0007?person_id={person}&key=NOPE", headers=me).status_code == 404
    assert client.get(f"/api/v1/documents/X9999?person_id={person}&key={key}", headers=me).json()["error"]["code"] == "UNKNOWN_DOCUMENT_TYPE"
    with engine.connect() as conn:
        actions = [a for a, in conn.execute(select(AuditEvent.action).order_by(AuditEvent.seq))]
    assert "share.cda" in actions and actions.count("share.refused") >= 2


def test_document_query_lists_what_the_grant_covers_and_each_retrieves(engine, cda_world):
    """文档查询 (XDS ITI-18 as REST): refused without authorization; with it, the patient's lab
    documents, each retrievable at the address given; filters by type and date; audited."""
    template, org, key, rows, person, reader_org = cda_world
    client = TestClient(create_app(engine))
    _, reader_key = create_key(engine, reader_org)
    me = {"Authorization": f"Bearer {reader_key}", "X-Clinician-Id": "doc_cda"}
    url = "/api/v1/documents/search"
    assert client.get(url, params={"person_id": person}, headers=me).json()["error"]["code"] == "NO_AUTHORIZATION"
    break_glass(engine, user_info(engine, "doc_cda"), person, "critical", "急诊抢救")
    listed = client.get(url, params={"person_id": person, "type": "C0007"}, headers=me).json()
    assert listed["total"] == len(listed["documents"]) >= 1
    assert (org, key) in {(d["org_code"], d["key"]) for d in listed["documents"]}
    dates = [d["date"] for d in listed["documents"]]
    assert dates == sorted(dates, reverse=True)
    for d in listed["documents"]:
        got = client.get(d["retrieve"], headers=me)
        assert got.status_code == 200 and read(got.content).records[0]["report_no"] == d["key"]
    day = listed["documents"][-1]["date"][:10]
    assert client.get(url, params={"person_id": person, "type": "C0007", "to": "2000-01-01"},
                      headers=me).json()["total"] == 0
    assert client.get(url, params={"person_id": person, "from": day, "to": day}, headers=me).json()["total"] >= 1
    last_day = client.get(url, params={"person_id": person, "type": "C0007", "to": "9999-12-31"}, headers=me)  # was a 500
    assert last_day.status_code == 200 and last_day.json()["total"] == listed["total"]
    assert client.get(url, params={"person_id": person, "type": "X9999"}, headers=me).status_code == 404
    with engine.connect() as conn:
        flagged = conn.execute(select(AuditEvent.flagged).where(AuditEvent.action == "share.cda_query")).scalars().all()
    assert flagged == [True, True, True, True]  # each query on a break-the-glass grant, even an empty one


def test_post_document_is_a_pipeline_batch(engine, cda_world):
    template, org, key, rows, person, _ = cda_world
    body = render(template, rows)
    empty_store(engine)
    client = TestClient(create_app(engine))
    _, org_key = create_key(engine, org)
    auth = {"Authorization": f"Bearer {org_key}"}
    r = client.post("/api/v1/documents", content=body, headers={**auth, "Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["document"]["type"] == "C0007" and answer["receipt"]["counts"]["accepted"] == len(rows)
    again = client.post("/api/v1/documents", content=gzip.compress(body),
                        headers={**auth, "Content-Type": "application/xml", "Content-Encoding": "gzip"})
    assert again.json()["receipt"]["counts"]["unchanged"] == len(rows)
    assert client.post("/api/v1/documents", content=body, headers={**auth, "Content-Type": "application/json"}).status_code == 415
    types = client.get("/api/v1/documents", headers=auth).json()["types"]
    assert {"C0007", "C0004"} <= {t["type"] for t in types}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Record)).scalar_one() == len(rows)


def test_a_document_for_another_institution_is_rejected_per_record(engine, cda_world, orgs):
    template, org, key, rows, person, reader_org = cda_world
    body = render(template, rows)
    empty_store(engine)
    client = TestClient(create_app(engine))
    _, other_key = create_key(engine, reader_org)
    r = client.post("/api/v1/documents", content=body, headers={"Authorization": f"Bearer {other_key}", "Content-Type": "text/xml"})
    assert r.status_code == 200 and r.json()["receipt"]["counts"]["rejected"] == len(rows)
    codes = {f["code"] for rej in r.json()["receipt"]["rejections"] for f in rej["findings"]}
    assert "ORG_MISMATCH" in codes


def test_cli_export_goes_through_the_same_authorization(engine, cda_world, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from phip import runtime
    from phip.documents.cli import app

    template, org, key, rows, person, reader_org = cda_world
    monkeypatch.setattr(runtime, "engine", lambda: engine)
    out = tmp_path / "lab.xml"
    args = ["export", "--person", person, "--type", "C0007", "--key", key, "--as", "doc_cda", "--out", str(out)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and getattr(refused.exception, "code", None) == "NO_AUTHORIZATION" and not out.exists()
    break_glass(engine, user_info(engine, "doc_cda"), person, "critical", "急诊抢救")
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert CliRunner().invoke(app, ["validate", str(out)]).exit_code == 0
    assert len(read(out.read_bytes()).records) == len(rows)


def test_batch_of_documents_stores_the_good_and_names_the_refused(engine, cda_world):
    """POST /api/v1/documents/batch: several CDA files in one request; a refused document is
    named with its problems and the rest stored, as one receipt per data set; limits refuse."""
    template, org, key, rows, person, _ = cda_world
    docs = [render(template, r) for r in stored_documents(engine, template).values()][:4]
    assert len(docs) >= 2
    empty_store(engine)
    client = TestClient(create_app(engine))
    auth = {"Authorization": f"Bearer {create_key(engine, org)[1]}"}
    bad = docs[1].replace(b"ClinicalDocument", b"ClinicalDokument")
    files = [("documents", (f"d{i}.xml", body, "application/xml")) for i, body in enumerate([docs[0], bad, *docs[2:]])]
    r = client.post("/api/v1/documents/batch", files=files, headers=auth)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["documents"], answer["accepted"]) == (len(docs), len(docs) - 1)
    (refused,) = answer["refused"]
    assert refused["index"] == 1 and refused["filename"] == "d1.xml" and refused["problems"]
    stored = sum(rc["counts"]["accepted"] for rc in answer["receipts"])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Record)).scalar_one() == stored > 0
    from phip.api import documents as documents_api

    too_many = [("documents", (f"d{i}.xml", docs[0], "application/xml")) for i in range(documents_api.MAX_BATCH + 1)]
    over = client.post("/api/v1/documents/batch", files=too_many, headers=auth)
    assert over.status_code == 413 and over.json()["error"]["code"] == "TOO_MANY_DOCUMENTS"
    assert client.post("/api/v1/documents/batch", files=files[:1]).status_code == 401

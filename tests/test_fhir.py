"""FHIR R4 read API (issue 25) on SQLite and PostgreSQL: every resource type read and searched
and valid by fhir.resources (R4B), keyset paging, refusals as OperationOutcomes, audited
reads and masking. Records come from the real pipeline (generated, as the demo loads them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phip import audit, share
from phip.accounts import SessionInfo, create_user, user_info
from phip.api.app import create_app
from phip.demo import visit_records
from phip.fhir.mapping import MappingError, load_mapping
from phip.fhir.validation import model, validated
from phip.orgs.keys import create_key
from phip.privacy import mask_id, mask_name, mask_phone
from phip.store.models import Person, Record
from phip.synth.generator import Generator

NOW = datetime(2026, 11, 22, 12, 0, 0)
TYPES = ["Patient", "Encounter", "Condition", "Observation", "DiagnosticReport", "MedicationRequest", "Procedure",
         "AllergyIntolerance"]
EXAMPLES = Path(__file__).parent / "data" / "fhir"
PASSWORD = "correct horse battery"


@dataclass
class World:
    client: TestClient
    headers: dict[str, str]
    p: str  # the patient's person id
    q: str  # another patient
    p_id_no: str
    a: str  # institutions holding P's records
    b: str
    c: str  # the reader's


def _inpatient(pipeline, gen: Generator, org: tuple[str, str], patient) -> None:  # noqa: ANN001
    """One stay: the visit, an operation, vital signs and a front page stating a drug allergy."""
    e = gen.encounter(patient, "in", date(2026, 10, 1), NOW)
    for dataset, items in {"inpatient_visit": 1, "operation_record": 1, "vital_signs": 2, "front_page": 1}.items():
        recs = gen.records(pipeline.standard.dataset(dataset), org, gen._ctx(e), items)
        for r in recs:
            r.update(drug_allergy_flag=True, allergy_drugs="青霉素") if dataset == "front_page" else None
        assert not pipeline.ingest(org[0], dataset, recs, source="test", now=NOW).rejected


@pytest.fixture()
def world(engine, pipeline, orgs) -> World:
    gen = Generator(seed=25)
    a, b, c = orgs[0], orgs[1], orgs[2]
    p, q = gen.patient(a[0]), gen.patient(a[0])
    visit_records(pipeline, gen, [a, b], p, day=date(2026, 11, 20), now=NOW, visits=2)
    visit_records(pipeline, gen, [a], q, day=date(2026, 11, 20), now=NOW)
    _inpatient(pipeline, gen, a, p)
    with engine.connect() as conn:
        pid, qid = (conn.execute(select(Record.person_id).where(Record.payload["patient_id"].as_string() == x.patient_id)
                                 .limit(1)).scalar_one() for x in (p, q))
    create_user(engine, "doc_c", PASSWORD, "clinician", "李医生", org_code=c[0], department="急诊科")
    _, key = create_key(engine, c[0])
    client = TestClient(create_app(engine))
    return World(client, {"Authorization": f"Bearer {key}", "X-Clinician-Id": "doc_c"}, pid, qid, p.id_no, a[0], b[0], c[0])


def _break_glass(w: World, person: str) -> None:
    r = w.client.post(f"/api/v1/share/patients/{person}/break-glass", headers=w.headers,
                      json={"reason_code": "critical", "reason_text": "抢救需要了解既往病史"})
    assert r.status_code == 200, r.text


def _get(w: World, path: str, status: int = 200) -> dict:
    r = w.client.get(path if path.startswith("http") else f"/fhir/R4/{path}", headers=w.headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/fhir+json")
    return r.json()


def _valid(resource: dict) -> None:
    """The resource round-trips through fhir.resources unchanged (so it was valid as sent)."""
    assert validated(resource) == resource


def _refusal(body: dict, code: str) -> None:
    _valid(body)
    issue = body["issue"][0]
    assert body["resourceType"] == "OperationOutcome" and issue["details"]["coding"][0]["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in issue["diagnostics"])  # a Chinese text for the reader


def test_refused_without_authorization_and_audited(world: World, engine) -> None:
    w = world
    _refusal(_get(w, f"Observation?patient={w.p}", 403), "NO_AUTHORIZATION")
    _refusal(_get(w, f"Patient/{w.p}", 403), "NO_AUTHORIZATION")
    with engine.connect() as conn:
        rid = conn.execute(select(Record.id).where(Record.person_id == w.p, Record.dataset == "lab_report")).scalars().first()
    _refusal(_get(w, f"Observation/{rid}", 403), "NO_AUTHORIZATION")
    _refusal(_get(w, "Observation/99999999", 404), "NOT_FOUND")
    _refusal(_get(w, "Observation", 400), "PATIENT_REQUIRED")
    _refusal(_get(w, f"Observation?patient={w.p}&foo=1", 400), "UNSUPPORTED_SEARCH_PARAM")
    _refusal(_get(w, f"Medication?patient={w.p}", 404), "UNKNOWN_RESOURCE_TYPE")
    r = w.client.get(f"/fhir/R4/Observation?patient={w.p}")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/fhir+json")
    _refusal(r.json(), "AUTH_REQUIRED")
    r = w.client.get(f"/fhir/R4/Observation?patient={w.p}", headers={"Authorization": w.headers["Authorization"]})
    assert r.status_code == 403
    _refusal(r.json(), "CLINICIAN_REQUIRED")
    refused = [e for e in audit.for_person(engine, w.p) if e["action"] == "share.refused"]
    assert {e["target"] for e in refused} >= {"fhir:Observation", f"fhir:Patient/{w.p}", f"fhir:Observation/{rid}"}
    meta = w.client.get("/fhir/R4/metadata")  # no personal data: no key needed
    assert meta.status_code == 200 and meta.headers["content-type"].startswith("application/fhir+json")
    _valid(meta.json())
    assert {r["type"] for r in meta.json()["rest"][0]["resource"]} == {*TYPES, "DocumentReference"}


def test_every_type_read_searched_and_valid(world: World, engine) -> None:
    w = world
    _break_glass(w, w.p)
    seen: dict[str, list[dict]] = {}
    for rtype in TYPES[1:]:
        bundle = _get(w, f"{rtype}?patient=Patient/{w.p}&_count=100")
        _valid(bundle)
        assert bundle["type"] == "searchset" and bundle["total"] == len(bundle["entry"]) > 0, rtype
        for entry in bundle["entry"]:
            res = entry["resource"]
            _valid(res)
            assert res["resourceType"] == rtype and entry["fullUrl"].endswith(f"/{rtype}/{res['id']}")
            assert _get(w, f"{rtype}/{res['id']}") == res  # a read answers what the search listed
            ref = res.get("subject", res.get("patient"))["reference"]
            assert ref == f"Patient/{w.p}"
        seen[rtype] = [e["resource"] for e in bundle["entry"]]
    # what the records hold: 2 institutions x 2 visits x (1 visit, 3 lab items, 2 drugs, 1 exam) + the stay
    assert len(seen["Encounter"]) == 5
    assert len([o for o in seen["Observation"] if o["category"][0]["coding"][0]["code"] == "laboratory"]) == 12
    assert any(o["code"]["coding"][0]["code"] == "85354-9" for o in seen["Observation"])  # blood pressure
    assert len(seen["MedicationRequest"]) == 8 and len(seen["Procedure"]) == 1
    assert seen["AllergyIntolerance"][0]["code"]["text"] == "青霉素"
    labs = [r for r in seen["DiagnosticReport"] if r["category"][0]["coding"][0]["code"] == "LAB"]
    assert len(labs) == 4 and all(len(r["result"]) == 3 for r in labs)
    lab_ids = {o["id"] for o in seen["Observation"]}
    assert all(x["reference"].removeprefix("Observation/") in lab_ids for r in labs for x in r["result"])
    icd = [c for c in seen["Condition"] if c["code"]["coding"][0]["system"] == "urn:oid:2.16.156.10011.2.3.3.11"]
    assert icd and all("encounter" in c for c in icd)
    encounters = {f"Encounter/{e['id']}" for e in seen["Encounter"]}
    assert {o["encounter"]["reference"] for o in seen["Observation"] if "encounter" in o} <= encounters
    # another patient's resources stay out: the search is the patient's only
    with engine.connect() as conn:
        other = conn.execute(select(Record.id).where(Record.person_id == w.q, Record.dataset == "lab_report")).scalars().first()
    _refusal(_get(w, f"Observation/{other}", 403), "NO_AUTHORIZATION")


def test_search_filters(world: World) -> None:
    w = world
    _break_glass(w, w.p)
    everything = _get(w, f"Observation?patient={w.p}&_count=100")["total"]
    labs = _get(w, f"Observation?patient={w.p}&category=laboratory&_count=100")
    vitals = _get(w, f"Observation?patient={w.p}&category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs")
    assert labs["total"] == 12 and labs["total"] + vitals["total"] == everything
    temp = _get(w, f"Observation?patient={w.p}&code=http://loinc.org|8310-5")
    assert temp["total"] == 2 and all(e["resource"]["code"]["coding"][0]["code"] == "8310-5" for e in temp["entry"])
    code = labs["entry"][0]["resource"]["code"]["coding"][0]
    same = _get(w, f"Observation?patient={w.p}&code={code['system']}|{code['code']}&_count=100")
    assert same["total"] >= 1 and all(e["resource"]["code"]["coding"][0] == code for e in same["entry"])
    november = _get(w, f"Encounter?patient={w.p}&date=ge2026-11-01&date=le2026-11-30")
    october = _get(w, f"Encounter?patient={w.p}&date=lt2026-11-01")
    assert november["total"] + october["total"] == 5 and november["total"] > 0
    assert all(e["resource"]["period"]["start"] >= "2026-11-01" for e in november["entry"])
    _refusal(_get(w, f"Encounter?patient={w.p}&date=xx2026", 400), "BAD_SEARCH_PARAM")
    for edge in ("9999-12-31", "9999-12-31T23:59:59", "0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-12:00"):
        _refusal(_get(w, f"Encounter?patient={w.p}&date={edge}", 400), "BAD_SEARCH_PARAM")  # were 500s


def test_paging_returns_each_resource_once(world: World, engine, pipeline) -> None:
    w = world
    _break_glass(w, w.p)
    whole = _get(w, f"Observation?patient={w.p}&_count=100")
    expected = [e["resource"]["id"] for e in whole["entry"]]
    pages, ids, url = [], [], f"Observation?patient={w.p}&_count=2"
    while url:
        bundle = _get(w, url)
        assert bundle["total"] == len(expected)
        links = {x["relation"]: x["url"] for x in bundle["link"]}
        assert urlsplit(links["self"]).path == "/fhir/R4/Observation" and ("previous" in links) == bool(pages)
        pages.append(bundle)
        ids += [e["resource"]["id"] for e in bundle["entry"]]
        url = links.get("next")
        if len(pages) == 2:  # a record stored meanwhile shifts nothing: keyset, not an offset
            gen = Generator(seed=99)
            _inpatient(pipeline, gen, (w.b, "B"), gen.patient(w.b))
    assert ids == expected and len(set(ids)) == len(ids) and len(pages) == (len(expected) + 1) // 2
    assert all(len(p["entry"]) == 2 for p in pages[:-1])
    back = _get(w, {x["relation"]: x["url"] for x in pages[2]["link"]}["previous"])
    assert [e["resource"]["id"] for e in back["entry"]] == [e["resource"]["id"] for e in pages[1]["entry"]]
    _refusal(_get(w, f"Observation?patient={w.p}&_cursor=zz", 400), "BAD_CURSOR")


def test_reads_are_audited_for_the_resident(world: World, engine) -> None:
    from phip.web.me_pages import access_log

    w = world
    _break_glass(w, w.p)
    obs = _get(w, f"Observation?patient={w.p}&_count=1")["entry"][0]["resource"]
    _get(w, f"Observation/{obs['id']}")
    events = audit.for_person(engine, w.p)
    search = next(e for e in events if e["action"] == "fhir.search")
    read = next(e for e in events if e["action"] == "fhir.read")
    assert search["flagged"] and read["flagged"] and read["target"] == f"Observation/{obs['id']}"
    assert search["username"] == "doc_c" and search["org_code"] == w.c and search["authorization"]
    create_user(engine, "res_p", PASSWORD, "resident", "居民", person_id=w.p)
    log = access_log(engine, user_info(engine, "res_p"))
    assert {"通过FHIR接口查看病历", "通过FHIR接口检索病历"} <= {e["what"] for e in log}


def test_consent_scope_and_patient_masking(world: World, engine) -> None:
    w = world
    create_user(engine, "res_p", PASSWORD, "resident", "居民", person_id=w.p)
    me = user_info(engine, "res_p")
    share.grant_consent(engine, me, reader_orgs=[w.c], days=30, categories=["lab"])
    labs = _get(w, f"DiagnosticReport?patient={w.p}&_count=100")
    assert labs["total"] == 4 and all(e["resource"]["category"][0]["coding"][0]["code"] == "LAB" for e in labs["entry"])
    assert _get(w, f"Observation?patient={w.p}&category=vital-signs")["total"] == 0  # outside the consent
    assert _get(w, f"Encounter?patient={w.p}")["total"] == 0
    with engine.connect() as conn:
        enc = conn.execute(select(Record.id).where(Record.person_id == w.p, Record.dataset == "outpatient_visit")).scalars().first()
        person = conn.execute(select(Person.name, Person.phone, Person.address).where(Person.id == w.p)).one()
    _refusal(_get(w, f"Encounter/{enc}", 404), "NOT_FOUND")  # out of scope reads as absent
    patient = _get(w, f"Patient/{w.p}")
    _valid(patient)
    assert patient["name"][0]["text"] == mask_name(person.name) != person.name
    ids = {i["system"]: i["value"] for i in patient["identifier"]}
    assert ids["urn:oid:2.16.156.10011.1.3"] == mask_id(w.p_id_no) != w.p_id_no
    assert patient["telecom"][0]["value"] == mask_phone(person.phone)
    assert person.address is None or person.address not in json.dumps(patient, ensure_ascii=False)
    assert w.p_id_no not in json.dumps(patient) and person.phone not in json.dumps(patient)
    assert any(i["system"].endswith(f"/patient-id/{w.a}") for i in patient["identifier"])
    bundle = _get(w, f"Patient?_id={w.p}")
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"] == patient
    events = [e for e in audit.for_person(engine, w.p) if e["action"] == "fhir.read"]
    assert events and not any(e["flagged"] for e in events)  # a consent is no break-the-glass


def test_mapping_is_checked_and_hl7_examples_parse(tmp_path: Path) -> None:
    assert set(load_mapping().resources) == set(TYPES[1:])
    bad = tmp_path / "mapping.yaml"
    bad.write_text((Path(load_mapping.__wrapped__.__defaults__[0])).read_text(encoding="utf-8")
                   .replace("item_local_code, display: item_name", "no_such_field, display: item_name"), encoding="utf-8")
    with pytest.raises(MappingError):
        load_mapping.__wrapped__(bad)
    for path in sorted(EXAMPLES.glob("*.json")):  # HL7's own example instances (R4 spec, abridged)
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert model(raw["resourceType"]).model_validate(raw).id == raw["id"], path.name
    with pytest.raises(ValueError):
        validated({"resourceType": "Observation", "id": "x", "code": {"text": "无状态"}})  # status is required


def test_resident_session_cannot_be_a_clinician_header(world: World, engine) -> None:
    w = world
    create_user(engine, "res_q", PASSWORD, "resident", "居民", person_id=w.q)
    r = w.client.get(f"/fhir/R4/Observation?patient={w.q}", headers={**w.headers, "X-Clinician-Id": "res_q"})
    assert r.status_code == 403
    _refusal(r.json(), "CLINICIAN_FORBIDDEN")
    assert isinstance(user_info(engine, "doc_c"), SessionInfo)


def test_document_references_point_at_the_cda_and_page_once(world: World) -> None:
    """DocumentReference: the patient's shared documents (the document query's answer), valid,
    each read back by id, its attachment retrieving the CDA; paged with _count=2, each once;
    refused without authorization like the other resources."""
    w = world
    _refusal(_get(w, f"DocumentReference?patient=Patient/{w.p}", 403), "NO_AUTHORIZATION")
    _break_glass(w, w.p)
    bundle = _get(w, f"DocumentReference?patient=Patient/{w.p}&_count=100")
    _valid(bundle)
    docs = [e["resource"] for e in bundle["entry"]]
    listed = w.client.get("/api/v1/documents/search", params={"person_id": w.p}, headers=w.headers).json()
    assert bundle["total"] == len(docs) == listed["total"] > 2
    assert {d["type"]["coding"][0]["code"] for d in docs} == {d["type"] for d in listed["documents"]}
    for d in docs:
        assert _get(w, f"DocumentReference/{d['id']}") == d and d["subject"]["reference"] == f"Patient/{w.p}"
        cda = w.client.get(d["content"][0]["attachment"]["url"], headers=w.headers)
        assert cda.status_code == 200 and cda.content.startswith(b"<?xml") and b"ClinicalDocument" in cda.content
    seen, url = [], f"DocumentReference?patient=Patient/{w.p}&_count=2"
    while url:
        page = _get(w, url)
        seen += [e["resource"]["id"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert sorted(seen) == sorted(d["id"] for d in docs) and len(seen) == len(set(seen))
    _get(w, "DocumentReference/999999999-c0004", 404)
    _refusal(_get(w, f"DocumentReference?patient=Patient/{w.p}&code=C0004", 400), "UNSUPPORTED_SEARCH_PARAM")


def test_search_parameters_in_openapi_are_the_parsed_ones(world: World) -> None:
    """The search parameters are read from the raw query string, so the OpenAPI document lists
    them by hand: it must name each one the parser takes (clients and the property test read
    it) and none it refuses."""
    from phip.fhir.params import KNOWN

    op = world.client.get("/openapi.json").json()["paths"]["/fhir/R4/{resource_type}"]["get"]
    documented = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    assert documented == KNOWN
    _refusal(_get(world, f"Observation?patient={world.p}&_count=101", 400), "BAD_SEARCH_PARAM")
    _refusal(_get(world, f"Observation?patient={world.p}&_format=xml", 406), "UNSUPPORTED_FORMAT")
    _get(world, f"Observation?patient={world.p}&_format=application/fhir%2Bjson", 403)  # json: on to the policy
    _refusal(_get(world, f"Patient/{world.p}?_format=xml", 406), "UNSUPPORTED_FORMAT")
    _refusal(_get(world, "metadata?_format=application/fhir%2Bxml", 406), "UNSUPPORTED_FORMAT")
    assert _get(world, "metadata?_format=json")["resourceType"] == "CapabilityStatement"

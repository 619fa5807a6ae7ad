"""Sharing (issue 21): the authorization lifecycle, object-level checks, merges, resident
accounts and the JSON API, on SQLite and PostgreSQL. Records come from the real pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from phip import audit, share
from phip.accounts import AuthError, LoginGuard, SessionInfo, create_user, user_info
from phip.accounts.notify import FileNotifier
from phip.accounts.residents import request_setup_code, resident_login, set_password
from phip.api.app import create_app
from phip.audit.tables import AuditEvent
from phip.empi import edits, reads
from phip.orgs.keys import create_key
from phip.share import ShareError
from phip.share.tables import ShareAuthorization, ShareCode
from phip.standard.validate import platform_now
from phip.store.models import Record
from phip.synth.generator import Generator

from .share_support import seed_patient

PASSWORD = "correct horse battery"


@dataclass
class World:
    a: str  # institutions holding the records
    b: str
    c: str  # the reader's institution
    p: str  # person ids
    q: str
    p_id_no: str
    p_phone: str
    p_records: dict[str, list[int]]
    q_records: dict[str, list[int]]
    doctor: SessionInfo  # clinician at C
    resident_p: SessionInfo
    resident_q: SessionInfo
    notices: FileNotifier


def _resident(engine, notices: FileNotifier, id_no: str, person_id: str) -> SessionInfo:
    request_setup_code(engine, id_no, notices)
    username = set_password(engine, id_no, notices.latest(person_id).code, PASSWORD)
    return user_info(engine, username)


@pytest.fixture()
def world(engine, pipeline, orgs, tmp_path) -> World:
    gen = Generator(seed=21)
    a, b, c = orgs[0], orgs[1], orgs[2]
    sp = seed_patient(pipeline, gen, [a, b])
    sq = seed_patient(pipeline, gen, [a])
    p, q = sp.person_id(pipeline), sq.person_id(pipeline)
    create_user(engine, "doc_c", PASSWORD, "clinician", "李医生", org_code=c[0], department="急诊科")
    notices = FileNotifier(tmp_path / "notices")
    return World(a[0], b[0], c[0], p, q, sp.patient.id_no, sp.patient.phone, sp.records, sq.records,
                 user_info(engine, "doc_c"), _resident(engine, notices, sp.patient.id_no, p),
                 _resident(engine, notices, sq.patient.id_no, q), notices)


def _refused(call, code: str, status: int) -> ShareError:
    with pytest.raises(ShareError) as info:
        call()
    assert (info.value.code, info.value.status) == (code, status), info.value.message
    return info.value


def _datasets(timeline: dict) -> set[tuple[str, str]]:
    return {(d["org_code"], d["dataset"]) for d in timeline["documents"]}


def _doc_of(w: World, org: str, dataset: str, engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(Record.id).where(Record.org_code == org, Record.dataset == dataset,
                                                        Record.person_id == w.p).order_by(Record.id)).scalars().first())


# --- lifecycle --------------------------------------------------------------------------------


def test_without_authorization_only_counts_by_year(engine, world):
    w = world
    found = share.find(engine, w.doctor, id_no=w.p_id_no)
    assert [f["person_id"] for f in found] == [w.p]
    assert found[0]["authorized"] is False and found[0]["id_no"] != w.p_id_no and "*" in found[0]["id_no"]
    assert sum(c["records"] for c in found[0]["counts"]) == sum(len(v) for v in w.p_records.values())
    assert "documents" not in found[0] and "diagnosis" not in str(found[0])
    e = _refused(lambda: share.timeline(engine, w.doctor, w.p), "NO_AUTHORIZATION", 403)
    assert "授权" in e.message
    _refused(lambda: share.document(engine, w.doctor, w.p, str(w.p_records[w.a][0])), "NO_AUTHORIZATION", 403)
    # found by name + birth date + sex as well, and not with a wrong sex
    golden = reads.golden_record(engine, w.p, unmasked=True)["fields"]  # the name as the clinician types it
    born = golden["birth_date"]["value"]
    from datetime import date

    assert [f["person_id"] for f in share.find(engine, w.doctor, name=golden["name"]["value"],
                                               birth_date=date.fromisoformat(born), sex=golden["sex"]["value"])] == [w.p]
    other_sex = "1" if golden["sex"]["value"] == "2" else "2"
    assert share.find(engine, w.doctor, name=golden["name"]["value"], birth_date=date.fromisoformat(born), sex=other_sex) == []


def test_consent_reads_within_its_scope_only(engine, world):
    w = world
    share.grant_consent(engine, w.resident_p, reader_orgs=[w.c], days=30, source_orgs=[w.a], categories=["lab"])
    assert share.find(engine, w.doctor, id_no=w.p_id_no)[0]["authorized"] is True
    timeline = share.timeline(engine, w.doctor, w.p)
    assert _datasets(timeline) == {(w.a, "lab_report")}
    lab = share.document(engine, w.doctor, w.p, timeline["documents"][0]["id"])
    assert lab["title"] == "检验报告" and len(lab["items"]["rows"]) == 3
    labels = [c["label"] for c in lab["items"]["columns"]]
    assert "检验项目名称" in labels and "参考值范围" in labels
    # out of scope: another institution's lab report, the same institution's visit
    _refused(lambda: share.document(engine, w.doctor, w.p, _doc_of(w, w.b, "lab_report", engine)), "NOT_FOUND", 404)
    _refused(lambda: share.document(engine, w.doctor, w.p, _doc_of(w, w.a, "outpatient_visit", engine)), "NOT_FOUND", 404)


def test_consent_for_another_reader_institution_does_not_help(engine, world):
    w = world
    share.grant_consent(engine, w.resident_p, reader_orgs=[w.a], days=30)
    _refused(lambda: share.timeline(engine, w.doctor, w.p), "NO_AUTHORIZATION", 403)


def test_expired_and_revoked_consents_are_refused(engine, world):
    w = world
    grant = share.grant_consent(engine, w.resident_p, reader_orgs=None, days=30)
    assert share.timeline(engine, w.doctor, w.p)["documents"]
    with engine.begin() as conn:
        conn.execute(update(ShareAuthorization).where(ShareAuthorization.id == grant)
                     .values(expires_at=platform_now() - timedelta(seconds=1)))
    _refused(lambda: share.timeline(engine, w.doctor, w.p), "NO_AUTHORIZATION", 403)
    second = share.grant_consent(engine, w.resident_p, reader_orgs=[w.c], days=1)
    doc = share.timeline(engine, w.doctor, w.p)["documents"][0]["id"]
    share.revoke(engine, w.resident_p, second)
    _refused(lambda: share.document(engine, w.doctor, w.p, doc), "NO_AUTHORIZATION", 403)
    states = {g["id"]: g["state"] for g in share.authorizations(engine, w.resident_p)}
    assert states == {grant: "expired", second: "revoked"}
    # another resident cannot revoke (or see) it
    _refused(lambda: share.revoke(engine, w.resident_q, grant), "NOT_FOUND", 404)


def test_one_time_code_works_once_expires_and_is_rate_limited(engine, world):
    w = world
    issued = share.issue_code(engine, w.resident_p, categories=["lab", "outpatient"])
    assert len(issued["code"]) == 6 and issued["code"].isdigit()
    with engine.connect() as conn:
        assert issued["code"] not in conn.execute(select(ShareCode.code_hash)).scalar_one()  # stored hashed
    limits = share.CodeLimits(limit=3)
    share.redeem_code(engine, w.doctor, w.p, issued["code"], limits=limits)
    assert {ds for _, ds in _datasets(share.timeline(engine, w.doctor, w.p))} == {"lab_report", "outpatient_visit"}
    _refused(lambda: share.redeem_code(engine, w.doctor, w.p, issued["code"], limits=limits), "BAD_CODE", 403)
    late = share.issue_code(engine, w.resident_p)
    with engine.begin() as conn:
        conn.execute(update(ShareCode).where(ShareCode.used_at.is_(None)).values(expires_at=platform_now()))
    _refused(lambda: share.redeem_code(engine, w.doctor, w.p, late["code"], limits=limits), "BAD_CODE", 403)
    fresh = share.issue_code(engine, w.resident_p)
    # a slip of typing (nothing, letters, five digits) is said, and spends none of the attempts
    for slip in ("", "  ", "12345", "12345a", "１２３４５６"):
        _refused(lambda: share.redeem_code(engine, w.doctor, w.p, slip, limits=limits), "BAD_ONE_TIME_CODE", 400)
    wrong = f"{(int(fresh['code']) + 1) % 1_000_000:06d}"
    _refused(lambda: share.redeem_code(engine, w.doctor, w.p, wrong, limits=limits), "BAD_CODE", 403)  # the third
    # locked now: even the right code is refused until the window passes
    _refused(lambda: share.redeem_code(engine, w.doctor, w.p, fresh["code"], limits=limits), "CODE_LOCKED", 429)
    # the lock is per clinician and per patient: another clinician is held back by the patient's
    create_user(engine, "doc_b", PASSWORD, "clinician", org_code=w.b)
    _refused(lambda: share.redeem_code(engine, user_info(engine, "doc_b"), w.p, fresh["code"], limits=limits),
             "CODE_LOCKED", 429)


def test_break_the_glass_is_flagged_and_queued_for_the_auditor(engine, world):
    w = world
    _refused(lambda: share.break_glass(engine, w.doctor, w.p, "bored", "想看看"), "BAD_REASON", 400)
    _refused(lambda: share.break_glass(engine, w.doctor, w.p, "critical", ""), "REASON_REQUIRED", 400)
    grant = share.break_glass(engine, w.doctor, w.p, "critical", f"昏迷送入急诊，身份证{w.p_id_no}")
    timeline = share.timeline(engine, w.doctor, w.p)
    assert {ds for _, ds in _datasets(timeline)} >= {"lab_report", "outpatient_visit", "exam_report"}
    queue = audit.pending_reviews(engine)
    actions = [(e["action"], e["username"], e["person_id"]) for e in queue]
    assert ("share.break_glass", "doc_c", w.p) in actions and ("share.timeline", "doc_c", w.p) in actions
    glass = next(e for e in queue if e["action"] == "share.break_glass")
    assert glass["authorization"] == str(grant) and w.p_id_no not in str(glass["detail"])
    # for that clinician only
    create_user(engine, "doc_c2", PASSWORD, "clinician", org_code=w.c)
    _refused(lambda: share.timeline(engine, user_info(engine, "doc_c2"), w.p), "NO_AUTHORIZATION", 403)


# --- object-level checks -------------------------------------------------------------------------


def test_guessing_a_document_id_finds_nothing(engine, world):
    w = world
    share.grant_consent(engine, w.resident_p, reader_orgs=[w.c], days=30)
    q_doc = str(w.q_records[w.a][0])
    _refused(lambda: share.document(engine, w.doctor, w.p, q_doc), "NOT_FOUND", 404)  # Q's record under P
    _refused(lambda: share.document(engine, w.doctor, w.q, q_doc), "NO_AUTHORIZATION", 403)  # Q not authorized
    for guess in ("999999999", "abc", "-1", "1" * 30):
        _refused(lambda: share.document(engine, w.doctor, w.p, guess), "NOT_FOUND", 404)


def test_a_resident_reads_their_own_record_and_nothing_else(engine, world):
    w = world
    own = share.timeline(engine, w.resident_p, w.p)
    assert {org for org, _ in _datasets(own)} == {w.a, w.b}
    share.document(engine, w.resident_p, w.p, own["documents"][0]["id"])
    _refused(lambda: share.timeline(engine, w.resident_p, w.q), "NOT_FOUND", 404)
    _refused(lambda: share.document(engine, w.resident_p, w.q, str(w.q_records[w.a][0])), "NOT_FOUND", 404)
    _refused(lambda: share.document(engine, w.resident_p, w.p, str(w.q_records[w.a][0])), "NOT_FOUND", 404)
    with pytest.raises(AuthError):
        share.grant_consent(engine, w.doctor, reader_orgs=None, days=1)  # a clinician cannot consent for a patient
    create_user(engine, "aud", PASSWORD, "auditor")
    _refused(lambda: share.timeline(engine, user_info(engine, "aud"), w.p), "ROLE_FORBIDDEN", 403)


def test_merged_persons_count_as_one_patient(engine, pipeline, world, orgs):
    w = world
    gen = Generator(seed=77)
    anonymous = gen.patient(orgs[3][0])  # the same patient registered at D without an ID number
    anonymous.fields.update(id_no=None, id_type_code=None, health_card_no=None, phone=None)
    r = seed_patient(pipeline, gen, [orgs[3]], patient=anonymous).person_id(pipeline)
    assert r != w.p
    grant = share.grant_consent(engine, w.resident_p, reader_orgs=[w.c], days=30)
    seen = len(share.timeline(engine, w.doctor, w.p)["documents"])
    edits.merge(engine, r, w.p, "ops", "同一人")  # P retired into R: P's consent and records follow
    merged = share.timeline(engine, w.doctor, r)
    assert len(merged["documents"]) == seen + 4 and merged["person_id"] == r
    assert share.timeline(engine, w.doctor, w.p)["person_id"] == r  # the retired id still reads
    with engine.connect() as conn:
        assert conn.execute(select(ShareAuthorization.person_id).where(ShareAuthorization.id == grant)).scalar() == w.p


# --- resident accounts -------------------------------------------------------------------------


def test_resident_first_use_code_login_and_lockout(engine, world, caplog):
    w = world
    caplog.set_level(logging.DEBUG)
    assert request_setup_code(engine, w.p_id_no, w.notices).startswith("如该身份证号")
    notice = w.notices.latest(w.p)
    assert notice.person_id == w.p and notice.code in notice.text
    with pytest.raises(AuthError) as bad:
        set_password(engine, w.p_id_no, f"{(int(notice.code) + 1) % 1_000_000:06d}", "new password 42")
    assert bad.value.code == "BAD_CODE"
    set_password(engine, w.p_id_no, notice.code, "new password 42")
    with pytest.raises(AuthError):
        set_password(engine, w.p_id_no, notice.code, "another one 43")  # single use
    token, info = resident_login(engine, w.p_id_no, "new password 42")
    assert info.role == "resident" and info.person_id == w.p and token
    guard = LoginGuard(per_account=3)
    for _ in range(3):
        with pytest.raises(AuthError):
            resident_login(engine, w.p_id_no, "wrong password!", guard=guard, address="10.0.0.9")
    with pytest.raises(AuthError) as locked:
        resident_login(engine, w.p_id_no, "new password 42", guard=guard, address="10.0.0.9")
    assert (locked.value.code, locked.value.status) == ("LOGIN_LOCKED", 429)
    assert notice.code not in caplog.text and w.p_id_no not in caplog.text


def test_no_full_id_number_or_phone_in_audit_fields(engine, world):
    w = world
    share.find(engine, w.doctor, id_no=w.p_id_no)
    share.break_glass(engine, w.doctor, w.p, "unconscious", f"电话{w.p_phone}联系不上家属")
    timeline = share.timeline(engine, w.doctor, w.p)
    for d in timeline["documents"]:
        share.document(engine, w.doctor, w.p, d["id"])
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.__table__)).mappings().all()
    assert len(rows) > 5
    shown = " ".join(str(v) for r in rows for k, v in r.items() if k != "mac")
    assert w.p_id_no not in shown and w.p_phone not in shown
    assert {"share.find", "share.break_glass", "share.timeline", "share.document"} <= {r["action"] for r in rows}


# --- JSON API ----------------------------------------------------------------------------------


def test_share_api_needs_key_clinician_and_authorization(engine, world):
    w = world
    client = TestClient(create_app(engine))
    _, key_c = create_key(engine, w.c)
    _, key_a = create_key(engine, w.a)
    url = f"/api/v1/share/patients/{w.p}/timeline"
    assert client.get(url).status_code == 401
    r = client.get(url, headers={"Authorization": f"Bearer {key_c}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLINICIAN_REQUIRED"
    r = client.get(url, headers={"Authorization": f"Bearer {key_a}", "X-Clinician-Id": "doc_c"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "CLINICIAN_FORBIDDEN"  # another institution's doctor
    me = {"Authorization": f"Bearer {key_c}", "X-Clinician-Id": "doc_c"}
    r = client.get(url, headers=me)
    assert r.status_code == 403 and r.json()["error"]["code"] == "NO_AUTHORIZATION" and "授权" in r.json()["error"]["message"]
    broken = client.post("/api/v1/share/patients/search", content=b"{", headers={**me, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == {  # it named the offset as the field "1"
        "code": "BAD_JSON", "message": "请求体不是有效的JSON（第2个字符附近）", "field": None}
    found = client.post("/api/v1/share/patients/search", json={"id_no": w.p_id_no}, headers=me).json()["patients"]
    assert found[0]["person_id"] == w.p and found[0]["counts"]
    r = client.post(f"/api/v1/share/patients/{w.p}/break-glass", headers=me,
                    json={"reason_code": "critical", "reason_text": "急诊抢救，患者昏迷"})
    assert r.status_code == 200, r.text
    docs = client.get(url, headers=me).json()["documents"]
    lab = next(d for d in docs if d["dataset"] == "lab_report")
    body = client.get(f"/api/v1/share/patients/{w.p}/documents/{lab['id']}", headers=me).json()
    assert body["items"]["rows"] and body["org_name"]
    r = client.get(f"/api/v1/share/patients/{w.p}/documents/{w.q_records[w.a][0]}", headers=me)
    assert r.status_code == 404
    code = share.issue_code(engine, w.resident_q)["code"]
    r = client.post(f"/api/v1/share/patients/{w.q}/code", headers=me, json={"code": code})
    assert r.status_code == 200 and client.get(f"/api/v1/share/patients/{w.q}/timeline", headers=me).status_code == 200


def test_other_roles_cannot_open_the_operators_pages(engine, world):
    from phip.accounts import login

    client = TestClient(create_app(engine), raise_server_exceptions=False)
    token, _ = login(engine, "doc_c", PASSWORD)
    client.cookies.set("phip_session", token)
    page = client.get("/ops/", follow_redirects=False)
    assert page.status_code == 403 and "运维人员" in page.text
    api = client.get(f"/api/v1/empi/persons/{world.p}")
    assert api.status_code == 403 and api.json()["error"]["code"] == "ROLE_FORBIDDEN"


def test_five_wrong_codes_spend_the_patients_live_codes(engine, world):
    """The per-process limiter aside (many workers each keep their own), the database counts misses."""
    w = world
    issued = share.issue_code(engine, w.resident_p)
    wrong = f"{(int(issued['code']) + 1) % 1_000_000:06d}"
    roomy = share.CodeLimits(limit=100)
    for _ in range(5):
        _refused(lambda: share.redeem_code(engine, w.doctor, w.p, wrong, limits=roomy), "BAD_CODE", 403)
    _refused(lambda: share.redeem_code(engine, w.doctor, w.p, issued["code"], limits=roomy), "BAD_CODE", 403)
    with engine.connect() as conn:
        assert conn.execute(select(ShareCode.failures)).scalar_one() == 5

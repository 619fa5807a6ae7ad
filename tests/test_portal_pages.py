"""The sharing pages (TestClient, SQLite and PostgreSQL): the clinician's /share/, the
resident's /me/ and the auditor's /audit/ over generated records of one patient at two
institutions — refusal without authorization, first-use password, consent, timeline with
可互认 marks, documents, the resident's access log, revocation, break-the-glass and its review;
every role checked on every area, CSRF on every form, no full ID number on any page."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phip.accounts import create_user
from phip.accounts.notify import FileNotifier
from phip.api.app import create_app
from phip.store.models import Record
from tests.share_support import seed
from tests.web_support import PASSWORD


@pytest.fixture()
def site(engine, pipeline, orgs, tmp_path, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("PHIP_DATA_DIR", str(tmp_path))
    a, b, c = orgs[0], orgs[1], orgs[2]
    patient, pid = seed(pipeline, [a, b], 41)
    other, other_pid = seed(pipeline, [a], 42)
    create_user(engine, "dr_c", PASSWORD, "clinician", "王大夫", org_code=c[0], department="内科")
    create_user(engine, "aud", PASSWORD, "auditor", "审计员甲")
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    return {"a": a, "b": b, "c": c, "patient": patient, "pid": pid, "other": other, "other_pid": other_pid,
            "notices": FileNotifier(tmp_path / "notices"), "engine": engine}


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def staff(engine, username: str) -> TestClient:  # noqa: ANN001
    client = TestClient(create_app(engine))
    form = client.get("/login")
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token_of(form.text),
                                    "next": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def resident(site) -> TestClient:  # noqa: ANN001
    """The patient sets a password through the one-time code, then logs in by ID number."""
    client = TestClient(create_app(site["engine"]))
    id_no = site["patient"].id_no
    step1 = client.get("/me/setup")
    step2 = client.post("/me/setup/code", data={"id_no": id_no, "csrf_token": token_of(step1.text)})
    assert "验证码已发送" in step2.text and id_no not in step2.text.replace(f'value="{id_no}"', "")
    code = site["notices"].latest(site["pid"]).code
    wrong = client.post("/me/setup", data={"id_no": id_no, "code": "000000" if code != "000000" else "111111",
                                           "password": PASSWORD, "password2": PASSWORD, "csrf_token": token_of(step2.text)})
    assert wrong.status_code == 400 and "验证码错误" in wrong.text
    done = client.post("/me/setup", data={"id_no": id_no, "code": code, "password": PASSWORD, "password2": PASSWORD,
                                          "csrf_token": token_of(step2.text)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/me/login?done=1"
    form = client.get("/me/login?done=1")
    assert "密码已设置" in form.text
    r = client.post("/me/login", data={"id_no": id_no, "password": PASSWORD, "csrf_token": token_of(form.text),
                                       "next": ""}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/me/"
    return client


def test_clinician_resident_and_auditor_end_to_end(site):
    pid, id_no = site["pid"], site["patient"].id_no
    doctor = staff(site["engine"], "dr_c")
    assert doctor.get("/share/").status_code == 200
    found = doctor.post("/share/find", data={"id_no": id_no, "csrf_token": token_of(doctor.get("/share/").text)})
    assert found.status_code == 200 and f"/share/patients/{pid}" in found.text
    assert id_no not in found.text and id_no[:6] in found.text  # masked
    refused = doctor.get(f"/share/patients/{pid}")  # the page where authorization is asked for
    assert 'data-code="NO_AUTHORIZATION"' in refused.text and "未获得患者授权" in refused.text
    assert 'id="counts"' in refused.text and "年" in refused.text
    assert 'id="timeline"' not in refused.text and site["patient"].name not in refused.text
    with site["engine"].connect() as conn:
        lab_id = conn.execute(select(Record.id).where(Record.person_id == pid, Record.dataset == "lab_report")
                              .limit(1)).scalar_one()
    assert doctor.get(f"/share/patients/{pid}/documents/{lab_id}").status_code == 403

    me = resident(site)
    own = me.get("/me/")
    assert own.status_code == 200 and own.text.count('class="doc-link"') >= 4  # two institutions' documents
    consents = me.get("/me/consents")
    r = me.post("/me/consents", data={"csrf_token": token_of(consents.text), "reader_scope": "chosen",
                                      "reader_orgs": [site["c"][0]], "source_scope": "all", "category_scope": "all",
                                      "days": "30"}, follow_redirects=False)
    assert r.status_code == 303
    listed = me.get("/me/consents").text
    grant_id = re.search(r'<tr data-id="(\d+)" data-state="active"', listed)[1]

    timeline = doctor.get(f"/share/patients/{pid}")
    assert timeline.status_code == 200 and 'id="timeline"' in timeline.text
    assert site["a"][1] in timeline.text and site["b"][1] in timeline.text
    assert "可互认" in timeline.text  # the lab reports of the last two days are inside their windows
    lab = re.search(r'<tr data-dataset="lab_report">.*?href="(/share/patients/[^"]+/documents/\d+)"', timeline.text, re.S)[1]
    doc = doctor.get(lab)
    assert doc.status_code == 200 and "参考值范围" in doc.text and 'id="doc-items"' in doc.text
    assert "可互认" in doc.text and id_no not in doc.text

    log = me.get("/me/access-log").text
    assert "王*" in log and "王大夫" not in log and site["c"][1] in log and "内科" in log
    assert "查看病历文档（检验报告）" in log and f"授权同意 #{grant_id}" in log

    revoked = me.post(f"/me/consents/{grant_id}/revoke", data={"csrf_token": token_of(listed)}, follow_redirects=False)
    assert revoked.status_code == 303
    assert 'data-code="NO_AUTHORIZATION"' in doctor.get(f"/share/patients/{pid}").text  # revoking ends access at once
    assert doctor.get(lab).status_code == 403

    page = doctor.get(f"/share/patients/{pid}")
    short = doctor.post(f"/share/patients/{pid}/break-glass", data={"csrf_token": token_of(page.text),
                                                                   "reason_code": "critical", "reason_text": "急"})
    assert short.status_code == 400 and "至少4个字" in short.text
    r = doctor.post(f"/share/patients/{pid}/break-glass", data={"csrf_token": token_of(page.text), "reason_code": "critical",
                                                               "reason_text": "患者昏迷，急诊抢救需了解既往史"}, follow_redirects=False)
    assert r.status_code == 303 and 'id="timeline"' in doctor.get(f"/share/patients/{pid}").text
    assert "紧急调阅" in me.get("/me/access-log").text

    auditor = staff(site["engine"], "aud")
    queue = auditor.get("/audit/")
    assert queue.status_code == 200 and "share.break_glass" not in queue.text and "紧急调阅" in queue.text
    seqs = re.findall(r'<tr data-seq="(\d+)">', queue.text)
    assert seqs
    r = auditor.post(f"/audit/review/{seqs[0]}", data={"csrf_token": token_of(queue.text), "verdict": "appropriate",
                                                       "note": "抢救属实"}, follow_redirects=False)
    assert r.status_code == 303
    assert seqs[0] not in re.findall(r'<tr data-seq="(\d+)">', auditor.get("/audit/").text)
    search = auditor.get("/audit/search")
    hits = auditor.post("/audit/search", data={"csrf_token": token_of(search.text), "id_no": id_no, "username": "dr_c"})
    assert hits.status_code == 200 and hits.text.count("<tr data-seq=") >= 3 and id_no not in hits.text


def test_every_area_checks_the_role_and_the_form(site):
    pid, other_pid = site["pid"], site["other_pid"]
    anonymous = TestClient(create_app(site["engine"]))
    for path, login in (("/share/", "/login"), ("/audit/", "/login"), ("/me/consents", "/me/login"), ("/ops/", "/login")):
        r = anonymous.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{login}?next="), path
    doctor, auditor, ops, me = staff(site["engine"], "dr_c"), staff(site["engine"], "aud"), staff(site["engine"], "ops"), resident(site)
    refused = {doctor: ("/me/", "/me/access-log", "/audit/", "/ops/"), auditor: ("/share/", "/me/", "/ops/"),
               ops: ("/share/", "/me/", "/audit/"), me: ("/share/", f"/share/patients/{pid}", "/audit/", "/ops/")}
    for client, paths in refused.items():
        for path in paths:
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 403 and "无权访问" in r.text, path
    # forms without the session's token are refused and change nothing
    assert doctor.post("/share/find", data={"id_no": site["patient"].id_no, "csrf_token": "forged"}).status_code == 403
    assert me.post("/me/consents", data={"csrf_token": "forged", "reader_scope": "all", "source_scope": "all",
                                         "category_scope": "all", "days": "30"}).status_code == 403
    assert "暂无授权" in me.get("/me/consents").text
    assert me.post("/me/codes", data={"csrf_token": "forged"}).status_code == 403
    # object-level: another patient's document is absent, for the resident and for a clinician
    with site["engine"].connect() as conn:
        foreign = conn.execute(select(Record.id).where(Record.person_id == other_pid, Record.dataset == "lab_report")
                               .limit(1)).scalar_one()
    assert me.get(f"/me/documents/{foreign}").status_code == 404
    code = me.post("/me/codes", data={"csrf_token": token_of(me.get("/me/consents").text)})
    given = re.search(r'id="issued-code">(\d{6})<', code.text)[1]
    page = doctor.get(f"/share/patients/{pid}")
    bad = doctor.post(f"/share/patients/{pid}/code", data={"csrf_token": token_of(page.text),
                                                          "code": "000000" if given != "000000" else "111111"})
    assert bad.status_code == 403 and "授权码错误" in bad.text
    ok = doctor.post(f"/share/patients/{pid}/code", data={"csrf_token": token_of(page.text), "code": given},
                     follow_redirects=False)
    assert ok.status_code == 303 and 'id="timeline"' in doctor.get(f"/share/patients/{pid}").text
    assert doctor.get(f"/share/patients/{pid}/documents/{foreign}").status_code == 404
    assert 'data-code="NO_AUTHORIZATION"' in doctor.get(f"/share/patients/{other_pid}").text


def test_row_ids_beyond_64_bits_are_a_page_not_a_500(site):
    """An authorization or audit event id longer than the database's integers (a hand-edited
    address) was handed to the SQLite driver, which raised OverflowError: a 500. Now a 400
    page in Chinese, and an id in range that is not the reader's stays a refusal."""
    me, auditor = resident(site), staff(site["engine"], "aud")
    token = token_of(me.get("/me/consents").text)
    for big in ("99999999999999999999999", "9223372036854775808", "-9223372036854775809", "0"):
        r = me.post(f"/me/consents/{big}/revoke", data={"csrf_token": token})
        assert r.status_code == 400 and "请求参数错误" in r.text and "authorization_id" in r.text, (big, r.text[:300])
        page = auditor.get("/audit/")
        r = auditor.post(f"/audit/review/{big}", data={"csrf_token": token_of(page.text), "verdict": "ok"})
        assert r.status_code == 400 and "请求参数错误" in r.text, (big, r.text[:300])
    assert me.post("/me/consents/9223372036854775807/revoke", data={"csrf_token": token}).status_code == 404
    # and where an address's number reaches SQLite unbounded, its driver's OverflowError is
    # the 400 PostgreSQL's DataError gets, not a 500
    from sqlalchemy import Integer, bindparam

    engine = site["engine"]
    app = create_app(engine)

    @app.get("/api/v1/overflow-probe")
    def probe(n: int) -> dict:
        with engine.connect() as conn:
            return {"n": conn.execute(select(bindparam("n", n, Integer))).scalar_one()}

    probe_client = TestClient(app, raise_server_exceptions=False)
    assert probe_client.get("/api/v1/overflow-probe", params={"n": 5}).json() == {"n": 5}
    if engine.dialect.name == "sqlite":
        r = probe_client.get("/api/v1/overflow-probe", params={"n": 2**70})
        assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_DATA", r.text


def test_a_stale_logout_says_so_and_a_residents_error_is_headed_as_theirs(site):
    """退出 with a token that is not the session's (a page left open across a re-login) ended
    nothing while sending the login page, so the person believed they were out: now a page
    says the logout did not happen, with a working 退出 in its header. Error pages carry the
    area's own header (a resident's is not the 运维看板's)."""
    me = resident(site)
    stale = me.post("/logout", data={"csrf_token": "stale"}, follow_redirects=False)
    assert stale.status_code == 403 and "退出未完成" in stale.text and "居民" in stale.text
    assert "/ops/uploads" not in stale.text  # no operator menu for a resident
    assert me.get("/me/consents", follow_redirects=False).status_code == 200  # still in, as the page says
    out = me.post("/logout", data={"csrf_token": token_of(stale.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/me/login"
    assert me.get("/me/consents", follow_redirects=False).status_code == 303
    me = resident(site)
    bad = me.get("/me/consents", params={"days": "9" * 500})
    if bad.status_code >= 400:
        assert "居民健康档案" in bad.text and "运维看板" not in bad.text, bad.text[:400]
    refused = me.post("/me/consents/0/revoke", data={"csrf_token": token_of(me.get("/me/consents").text)})
    assert refused.status_code == 400 and "居民健康档案" in refused.text and "运维看板" not in refused.text

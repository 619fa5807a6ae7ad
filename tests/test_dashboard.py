"""The dashboard behind its login (TestClient, SQLite and PostgreSQL): redirects, wrong
passwords, CSRF, session expiry, escaping of names, and quality findings in the feedback API."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from phip.api.app import create_app
from phip.orgs.keys import create_key
from phip.quality.run import analyse
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.synth.generator import Generator
from phip.accounts import AuthError, create_user
from phip.accounts.tables import User, WebSession
from tests.web_support import PASSWORD, SCRIPT, login


@pytest.fixture()
def client(engine):  # noqa: ANN001
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    return TestClient(create_app(engine))


def test_login_required_and_password_checked(client, engine):
    r = client.get("/ops/findings?code=QC_NOT_LINKED", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/ops/findings")
    assert client.get("/ops/uploads.xlsx", follow_redirects=False).status_code == 303
    bad = login(client, "wrong password!")
    assert bad.status_code == 303 and "error=" in bad.headers["location"]
    assert "phip_session" not in bad.cookies
    with engine.connect() as conn:
        stored = conn.execute(select(User.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    ok = login(client)
    assert ok.status_code == 303 and ok.headers["location"] == "/ops/uploads"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/ops/uploads")
    assert page.status_code == 200 and "数据上传统计" in page.text and "值班员" in page.text
    with pytest.raises(AuthError):
        create_user(engine, "weak", "short")


def test_login_form_needs_its_csrf_token(client):
    client.get("/login")
    r = client.post("/login", data={"username": "ops", "password": PASSWORD, "csrf_token": "forged"}, follow_redirects=False)
    assert "phip_session" not in r.cookies and "error=" in r.headers["location"]


def test_sessions_expire(client, engine):
    login(client)
    assert client.get("/ops/", follow_redirects=False).status_code == 200
    with engine.begin() as conn:
        conn.execute(update(WebSession).values(expires_at=platform_now() - timedelta(seconds=1)))
    assert client.get("/ops/", follow_redirects=False).status_code == 303


def test_forms_need_the_session_csrf_token(client, engine, orgs):
    login(client)
    code = orgs[0][0]
    page = client.get("/ops/onboarding").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    r = client.post(f"/ops/onboarding/{code}/network", data={"status": "pending", "csrf_token": "forged"})
    assert "CSRF" in r.text

    def network() -> str:
        with engine.connect() as conn:
            return conn.execute(select(Institution.network_status).where(Institution.code == code)).scalar_one()

    assert network() == "connected"
    r = client.post(f"/ops/onboarding/{code}/network", data={"status": "pending", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and network() == "pending"
    # what cannot be saved is said (it redirected as if saved)
    bogus = client.post(f"/ops/onboarding/{code}/network", data={"status": "bogus", "csrf_token": token})
    assert bogus.status_code == 400 and "网络状态“bogus”无效" in bogus.text and network() == "pending"
    nope = client.post("/ops/onboarding/NOPE/network", data={"status": "connected", "csrf_token": token})
    assert nope.status_code == 404 and "“NOPE”不存在" in nope.text


def test_names_are_text_and_identifiers_masked(client, engine, pipeline, orgs):
    code = orgs[0][0]
    now = platform_now()
    with engine.begin() as conn:  # connected a month ago: its planted late visit is late, not history
        conn.execute(update(Institution).where(Institution.code == code).values(
            name=f"{SCRIPT}医院", first_upload_at=now - timedelta(days=30)))
    gen = Generator(seed=21)
    batches = {ds: recs for _, ds, recs in gen.day([(code, "x")], now.date(), visits=12, admissions=6, now=now)}
    planted = gen.plant_quality(batches)
    target = next(p for p in planted if p.code == "QC_SUM_MISMATCH")
    batches[target.dataset][target.index]["name"] = SCRIPT
    id_no = batches[target.dataset][target.index]["id_no"]
    for ds, recs in batches.items():
        for r in recs:
            r["org_name"] = "x"
        pipeline.ingest(code, ds, recs, now=now)
    analyse(engine, code, now.date() - timedelta(days=7), now.date(), as_of=now + timedelta(days=10))
    login(client)
    for path in ("/ops/", f"/ops/institutions/{code}", f"/ops/findings?org={code}&code=QC_SUM_MISMATCH", "/ops/onboarding",
                 "/ops/uploads?region=220100"):
        html = client.get(path).text
        assert SCRIPT not in html, path
        assert id_no not in html, path
    findings = client.get(f"/ops/findings?org={code}&code=QC_SUM_MISMATCH").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in findings
    assert f"{id_no[:6]}********{id_no[-4:]}" in findings
    assert "&lt;script&gt;" in client.get(f"/ops/institutions/{code}").text

    # the hospital fetches its quality findings with its key (additive to rejections)
    key = create_key(engine, code, "test")[1]
    fb = client.get("/api/v1/feedback", params={"quality": "true"}, headers={"Authorization": f"Bearer {key}"}).json()
    got = {(q["dataset"], q["record_key"], q["code"]) for q in fb["quality"]}
    assert {(p.dataset, p.key, p.code) for p in planted} <= got
    assert "quality" not in client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"}).json()


def test_errors_on_the_dashboard_are_pages_with_their_status(client):
    """A person reads the dashboard: a bad parameter, an unknown page or institution, a %00
    is a page in the site's frame with the right status and a Chinese message; the API keeps
    answering JSON."""
    login(client)
    cases = {"/ops/findings?page=0": (400, "【page】应不小于 1"), "/ops/uploads.pdf": (400, "应为以下之一：xlsx、csv"),
             "/ops/institutions/NOPE": (404, "医疗机构“NOPE”不存在"), "/ops/nope": (404, "接口或页面不存在"),
             "/ops/findings?code=%00": (400, "空字符")}
    for path, (status, said) in cases.items():
        r = client.get(path)
        assert r.status_code == status and r.headers["content-type"].startswith("text/html"), (path, r.text[:200])
        assert said in r.text and "<title>提示" in r.text, (path, r.text)
    # a period the dashboard cannot read is said, as any unreadable period is (year 0 used to
    # escape as a ValueError: a 500)
    year_zero = client.get("/ops/uploads?period=0000-01")
    assert year_zero.status_code == 400 and "0000-01" in year_zero.text
    api = client.get("/api/v1/feedback?limit=0")
    assert api.headers["content-type"].startswith("application/json")
    client.cookies.clear()  # not logged in: to the login first, whatever is wrong with the address
    for path in ("/ops/findings?page=0", "/ops/nope"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/ops/"), (path, r.status_code)


def test_the_login_page_says_only_its_own_messages(client):
    """After a refused login the redirect carries a code, and the page says that code's fixed
    message: text written into the address (a link someone sends) is never shown as the
    platform's own words."""
    bad = login(client, password="wrong password!")
    assert bad.headers["location"].startswith("/login?error=LOGIN_FAILED")
    assert "用户名或密码错误" in client.get(bad.headers["location"]).text
    phishing = client.get("/login", params={"error": "系统已迁移，请前往 http://evil.example 登录并输入身份证号"})
    assert phishing.status_code == 200 and "evil.example" not in phishing.text and 'id="login-error"' not in phishing.text
    assert client.get("/login", params={"error": "LOGIN_LOCKED", "minutes": "99999"}).status_code in (400, 422)


def test_repeated_wrong_passwords_lock_the_account_not_the_right_user(client, engine):
    """Five wrong passwords lock the account for a quarter of an hour, the right password
    included (it is not even checked), with a Chinese message; another account from the same
    address still logs in until the address reaches its own limit."""
    for _ in range(5):
        r = login(client, password="wrong password!")
        assert r.status_code == 303 and "error=" in r.headers["location"]
    locked = login(client)
    assert "error=LOGIN_LOCKED" in locked.headers["location"]
    assert re.search(r"登录失败次数过多，请1[45]分钟后再试", client.get(locked.headers["location"]).text)
    assert "phip_session" not in locked.cookies
    create_user(engine, "ops2", PASSWORD)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    other = client.post("/login", data={"username": "ops2", "password": PASSWORD, "csrf_token": token, "next": "/ops/"},
                        follow_redirects=False)
    assert other.headers["location"] == "/ops/"


def test_wrong_api_keys_are_throttled_per_address(client):
    """The rate limit of valid keys runs after authentication; wrong keys are limited per address
    on their own, so guessing a key costs time: 401 ten times, then 429 with Retry-After."""
    answers = [client.get("/api/v1/feedback", headers={"Authorization": f"Bearer guess{i}"}) for i in range(11)]
    assert [a.status_code for a in answers] == [401] * 10 + [429]
    assert int(answers[-1].headers["Retry-After"]) > 0 and answers[-1].json()["error"]["code"] == "RATE_LIMITED"


# what is tested is which store each read goes to; the primary's back end does not change it
@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_statistics_read_from_the_replica_sign_in_from_the_primary(engine, orgs, tmp_path):
    """With a read store configured (a streaming replica in a deployment; here a second store
    holding other data), the upload statistics and their export come from it, while signing in
    and the session stay on the primary, which holds no record at all."""
    from phip.runtime import build_pipeline, prepare
    from phip.store.db import make_engine

    replica = prepare(make_engine(f"sqlite:///{tmp_path / 'replica.db'}"))
    now = platform_now().replace(microsecond=0)
    visits = next(r for _, _, r in Generator(seed=3).day(orgs[:1], now.date(), visits=7, admissions=1, now=now,
                                                         datasets=["outpatient_visit"]))
    assert build_pipeline(replica).ingest(orgs[0][0], "outpatient_visit", visits, now=now).accepted == 7
    create_user(engine, "ops", PASSWORD, display_name="值班员")

    def visits_of(app) -> str:  # noqa: ANN001 - the 门急诊 figure of the institution in the month's CSV
        client = TestClient(app)
        assert login(client).status_code == 303
        rows = list(csv.DictReader(io.StringIO(client.get(f"/ops/uploads.csv?period={now:%Y-%m}").content.decode("utf-8-sig"))))
        return next(r for r in rows if orgs[0][1] in r.values())["门急诊信息-上传人次"]

    assert visits_of(create_app(engine, reads=replica)) == "7"
    assert visits_of(create_app(engine)) == "0"
    replica.dispose()


def test_report_filters_that_cannot_be_read_are_said_not_replaced(client):
    """/ops/uploads?period=2026-02-30 answered 200 with this month's figures under the filter
    the reader had typed; the page and its exports now say what is wrong instead."""
    login(client)
    for params, said in (({"period": "2026-02-30"}, "“2026-02-30”不是有效日期"),
                         ({"period": "2026-12..2026-01"}, "结束早于开始"), ({"period": "abc"}, "无法识别的统计期“abc”"),
                         ({"level": "bogus"}, "统计口径“bogus”无效"), ({"sort": "nope"}, "排序列“nope”无效")):
        for path in ("/ops/uploads", "/ops/uploads.xlsx", "/ops/uploads.csv"):
            r = client.get(path, params=params)
            assert r.status_code == 400 and said in r.text and "统计期的写法" in r.text, (path, params, r.text[:300])
    assert client.get("/ops/uploads", params={"period": "2026-11", "level": "region"}).status_code == 200  # the old name
    assert client.get("/ops/uploads").status_code == 200

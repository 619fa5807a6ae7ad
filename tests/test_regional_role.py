"""The regional read-only role (区域卫健委只读角色, issue 22), TestClient on SQLite and PostgreSQL:
a city's reader sees its own institutions on every /ops/ page and export and no other region's,
another region's institution page is refused, every write is refused, identifiers stay
masked; the CLI refuses a region code the register does not know."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from datetime import datetime, time, timedelta
from io import BytesIO, StringIO

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from phip.accounts import AuthError, create_user
from phip.accounts.tables import User
from phip.api.app import create_app
from phip.orgs.service import SEED, region_orgs
from phip.quality.rules import load_supervision_rules
from phip.quality.run import analyse
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.synth.generator import Generator
from phip.synth.internet import InternetGenerator

PASSWORD = "correct horse battery"
REGION = "220100"  # 长春市
OWN = ("12220104412001376B", "长春中医药大学附院")  # 长春市朝阳区 (220104)
OTHER = ("12220202412028771W", "吉林市人民医院")  # 吉林市 (220200)
OWN_NET = ("12220102MB1C2400HU", "吉林大学中日联谊医院互联网医院")  # 长春市南关区 (220102)
OTHER_NET = ("12220802MB1C2401K7", "白城微医互联网医院")  # 白城市 (220800)
NOW = datetime.combine(platform_now().date(), time(12, 0))
DAY = NOW.date() - timedelta(days=1)
MONTH = f"{DAY:%Y-%m}"


def _register() -> list[dict[str, str]]:
    with SEED.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _outside(region: str) -> list[tuple[str, str]]:
    """Codes and names of the register's institutions outside ``region``; a name that is part
    of an inside one's is left out (it would show as a part of that name)."""
    rows = [r for r in _register() if r["kind"] in ("hospital", "internet_hospital")]  # systems are the province's
    inside = [r["name"] for r in rows if region in (r["region_code"], r["county_code"])]
    return [(r["code"], r["name"]) for r in rows if region not in (r["region_code"], r["county_code"])
            and not any(r["name"] in n for n in inside)]


def _inside(region: str) -> list[str]:
    return [r["name"] for r in _register() if region in (r["region_code"], r["county_code"])]


def assert_only_own(text: str, own: tuple[str, str] | None = OWN, region: str = REGION) -> None:
    """``own`` is on the page (None: some institution of the region), no other region's is."""
    assert own[1] in text if own else any(n in text for n in _inside(region))
    leaked = [(c, n) for c, n in _outside(region) if c in text or n in text]
    assert not leaked, leaked[:5]


def load(engine, pipeline) -> None:  # noqa: ANN001
    """A day of two hospitals in two cities (with planted errors: findings and rejections) and a
    day of two internet hospitals in two cities, then quality and supervision runs of each."""
    gen = Generator(seed=5, error_rate=0.2)
    for org, ds, recs in gen.day([OWN, OTHER], DAY, visits=8, admissions=2, now=NOW):
        pipeline.ingest(org, ds, recs, now=NOW)
    net = InternetGenerator([OWN_NET, OTHER_NET], OWN, seed=5, violation_rate=0.5)
    for batch in (net.register(NOW - timedelta(days=3)), net.day(DAY, NOW, 12)):
        for org, ds, recs in batch.batches:
            pipeline.ingest(org, ds, recs, now=NOW)
    for org, _ in (OWN, OTHER):
        analyse(engine, org, DAY - timedelta(days=1), DAY, as_of=NOW)
    for org, _ in (OWN_NET, OTHER_NET):
        analyse(engine, org, DAY - timedelta(days=1), DAY, as_of=NOW + timedelta(days=3),
                rules=load_supervision_rules(), mark=False)


def login(client: TestClient, username: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token, "next": ""},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ops/", r.headers.get("location")


@pytest.fixture()
def client(engine, pipeline):  # noqa: ANN001
    load(engine, pipeline)
    create_user(engine, "wjw", PASSWORD, "regional", "长春市卫健委", region_code=REGION)
    c = TestClient(create_app(engine))
    login(c, "wjw")
    return c


def xlsx_text(body: bytes) -> str:
    wb = load_workbook(BytesIO(body))
    return "\n".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None)


# --- the region and the account -----------------------------------------------------------------

def test_region_orgs_take_cities_and_counties(engine):
    city, county = region_orgs(engine, REGION), region_orgs(engine, "220104")
    assert OWN[0] in city and OWN_NET[0] in city and OTHER[0] not in city and OTHER_NET[0] not in city
    assert OWN[0] in county and OWN_NET[0] not in county and county < city


def test_regional_account_needs_a_known_region(engine):
    for code, region in (("UNKNOWN_REGION", "999999"), ("UNKNOWN_REGION", "220000"), ("REGION_REQUIRED", None)):
        with pytest.raises(AuthError) as exc:
            create_user(engine, "wjw", PASSWORD, "regional", region_code=region)
        assert exc.value.code == code
    with pytest.raises(AuthError) as exc:
        create_user(engine, "ops", PASSWORD, "operator", region_code=REGION)
    assert exc.value.code == "REGION_NOT_ALLOWED"
    create_user(engine, "wjw", PASSWORD, "regional", region_code="220104")
    with engine.connect() as conn:
        assert conn.execute(select(User.role, User.region_code).where(User.username == "wjw")).one() == ("regional", "220104")


def test_cli_creates_a_regional_account_and_refuses_an_unknown_region(engine, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PHIP_DATA_DIR": str(tmp_path), "PHIP_DATABASE_URL": url, "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "phip.cli", "accounts", "create", *args, "--password-stdin"],
                              env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=300)

    bad = run("wjw", "--role", "regional", "--region", "229999")
    assert bad.returncode == 2 and "UNKNOWN_REGION" in bad.stderr and "行政区划代码“229999”" in bad.stderr
    missing = run("wjw", "--role", "regional")
    assert missing.returncode == 2 and "REGION_REQUIRED" in missing.stderr
    ok = run("wjw", "--role", "regional", "--region", REGION)
    assert ok.returncode == 0, ok.stderr
    with engine.connect() as conn:
        assert conn.execute(select(User.region_code).where(User.username == "wjw")).scalar_one() == REGION


# --- every page and every export ----------------------------------------------------------------

def test_overview_shows_the_region_only(client):
    page = client.get("/ops/")
    assert page.status_code == 200 and "长春市概览" in page.text
    assert_only_own(page.text, None)  # the overview lists the institutions not uploading
    regions = page.text.split('id="region-status"')[1].split("</table>")[0]
    assert "长春市" in regions and "吉林市" not in regions and "白城市" not in regions


def test_overview_figures_count_the_region_only(client, engine):
    from phip.reports import overview

    page = client.get("/ops/").text
    within = region_orgs(engine, REGION)
    today = platform_now().date()
    cards = dict(re.findall(r'id="card-(\w+)">([\d,]+)<', page))
    assert cards["month"].replace(",", "") == str(overview.totals(engine, today, within=within)["month"])
    assert overview.totals(engine, today, within=within)["month"] < overview.totals(engine, today)["month"]
    with engine.connect() as conn:
        hospitals = conn.execute(select(Institution.code).where(Institution.kind == "hospital",
                                                                Institution.code.in_(within))).all()
    assert cards["total"] == str(len(hospitals))
    trend = re.search(r'id="trend-data">(.*?)</script>', page, re.S)[1]
    assert sum(int(n) for n in re.search(r'"values": \[([^\]]*)\]', trend)[1].split(",")) == \
        sum(n for _, n in overview.daily_uploads(engine, today - timedelta(days=29), today, within=within))


def test_uploads_page_forces_the_region(client):
    for params in ({"period": MONTH}, {"period": MONTH, "region": "220200"}, {"period": MONTH, "level": "city"}):
        page = client.get("/ops/uploads", params=params)
        assert page.status_code == 200
        if params.get("level") == "city":
            assert "长春市" in page.text and "吉林市" not in page.text and "全省" not in page.text
        else:
            assert_only_own(page.text)
    select_box = client.get("/ops/uploads").text.split('id="f-region"')[1].split("</select>")[0]
    assert "长春市" in select_box and "吉林市" not in select_box and "全省" not in select_box


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_uploads_exports_hold_the_region_only(client, fmt):
    r = client.get(f"/ops/uploads.{fmt}", params={"period": MONTH, "region": "220200", "extras": "true"})
    assert r.status_code == 200
    text = xlsx_text(r.content) if fmt == "xlsx" else r.content.decode("utf-8")
    assert_only_own(text)
    if fmt == "csv":
        rows = list(csv.reader(StringIO(text)))
        assert any(OWN[1] in row for row in rows)


def test_own_institution_page_and_another_regions_is_refused(client):
    own = client.get(f"/ops/institutions/{OWN[0]}")
    assert own.status_code == 200 and OWN[1] in own.text
    other = client.get(f"/ops/institutions/{OTHER[0]}")
    assert other.status_code == 404 and "不在本辖区" in other.text
    assert OTHER[1] not in other.text and "机构代码" not in other.text


def test_rejections_pages_of_another_region_are_refused(client):
    dataset = "outpatient_visit"
    for path in (f"/ops/institutions/{OWN[0]}/rejections", f"/ops/institutions/{OWN[0]}/rejections/{dataset}"):
        r = client.get(path)
        assert r.status_code == 200 and OWN[1] in r.text
    for path in (f"/ops/institutions/{OTHER[0]}/rejections", f"/ops/institutions/{OTHER[0]}/rejections/{dataset}"):
        r = client.get(path, params={"state": "all"})
        assert r.status_code == 404 and OTHER[1] not in r.text and "不在本辖区" in r.text


def test_findings_page_lists_the_regions_findings_only(client, engine):
    from phip.quality import service as quality

    page = client.get("/ops/findings")
    assert page.status_code == 200
    assert_only_own(page.text)
    total = quality.find(engine, within=region_orgs(engine, REGION), size=1)[1]
    assert total and total < quality.find(engine, size=1)[1]  # the other city has findings too
    assert f'<small id="findings-total">共 {total:,} 条</small>' in page.text
    orgs = page.text.split('name="org"')[1].split("</select>")[0]
    assert OWN[0] in orgs and OTHER[0] not in orgs
    asked = client.get("/ops/findings", params={"org": OTHER[0]}).text
    assert OTHER[0] not in asked.split("</form>")[-1] and OTHER[1] not in asked


def test_findings_examples_stay_masked(client, engine):
    from phip.quality import service as quality

    within = region_orgs(engine, REGION)
    items, _ = quality.find(engine, within=within, size=50, role="regional")
    shown = [v for i in items for v in i.example.values()]
    assert shown and all("*" in v for v in shown)
    page = client.get("/ops/findings").text
    assert any(v in page for v in shown)
    as_operator, _ = quality.find(engine, within=within, size=50, role="operator")
    assert [i.example for i in items] == [i.example for i in as_operator]  # never more than an operator


def test_onboarding_page_shows_the_region_and_no_write_form(client):
    page = client.get("/ops/onboarding")
    assert page.status_code == 200
    assert_only_own(page.text)
    assert "/network" not in page.text and "设为" not in page.text
    assert "业务系统" not in page.text  # the province's systems are no region's


@pytest.mark.parametrize("scope", ["all", "provincial"])
def test_onboarding_xlsx_holds_the_region_only(client, scope):
    r = client.get("/ops/onboarding.xlsx", params={"scope": scope})
    assert r.status_code == 200
    text = xlsx_text(r.content)
    leaked = [(c, n) for c, n in _outside(REGION) if n in text]
    assert not leaked, leaked[:5]
    if scope == "all":
        assert OWN[1] in text and text.startswith("截至") and "长春市" in text.split("\n")[0]


def test_supervision_page_shows_the_regions_internet_hospital_only(client):
    page = client.get("/ops/supervision/", params={"month": MONTH})
    assert page.status_code == 200
    assert_only_own(page.text, OWN_NET)
    assert OTHER_NET[0] not in page.text
    asked = client.get("/ops/supervision/", params={"month": MONTH, "org": OTHER_NET[0]}).text
    assert OTHER_NET[1] not in asked


def test_supervision_report_holds_the_region_only(client, engine):
    from phip.quality.supervision_report import summary

    r = client.get("/ops/supervision/report.xlsx", params={"month": MONTH})
    assert r.status_code == 200
    text = xlsx_text(r.content)
    assert OWN_NET[1] in text and OTHER_NET[1] not in text and OTHER_NET[0] not in text
    rows = {row[0]: row for row in load_workbook(BytesIO(r.content))["概况"].iter_rows(min_row=3, values_only=True)}
    assert set(rows) == {OWN_NET[0], "*"}
    everywhere = summary(engine, DAY.replace(day=1), DAY, within=None).total.violations
    assert rows["*"][7] == rows[OWN_NET[0]][7] <= everywhere


def test_reply_form_is_a_blank_form(client):
    r = client.get("/ops/onboarding/reply-form.xlsx")
    assert r.status_code == 200 and OTHER[1] not in xlsx_text(r.content)


# --- writes, other areas, anonymous --------------------------------------------------------------

def test_setting_the_network_status_is_refused(client, engine):
    with engine.connect() as conn:
        before = conn.execute(select(Institution.network_status).where(Institution.code == OWN[0])).scalar_one()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ops/onboarding").text)[1]
    for status in ("pending", "connected"):
        r = client.post(f"/ops/onboarding/{OWN[0]}/network", data={"status": status, "csrf_token": token},
                        follow_redirects=False)
        assert r.status_code == 403 and "无权" in r.text
    with engine.connect() as conn:
        assert conn.execute(select(Institution.network_status).where(Institution.code == OWN[0])).scalar_one() == before


def test_other_areas_and_the_operator_api_are_closed(client):
    for path in ("/share/", "/audit/", "/metrics"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code in (401, 403), (path, r.status_code)
    home = client.get("/").text  # the province's figures are the operators'
    assert OTHER[1] not in home and OWN[1] not in home


def test_a_county_reader_sees_its_county_only(engine, pipeline):
    load(engine, pipeline)
    create_user(engine, "chaoyang", PASSWORD, "regional", region_code="220104")
    c = TestClient(create_app(engine))
    login(c, "chaoyang")
    page = c.get("/ops/onboarding").text
    assert_only_own(page, OWN, "220104")
    assert OWN_NET[1] not in c.get("/ops/supervision/", params={"month": MONTH}).text  # 南关区, not 朝阳区
    assert c.get(f"/ops/institutions/{OWN_NET[0]}").status_code == 404
    assert "长春市朝阳区" in c.get("/ops/").text


def test_anonymous_home_names_no_institution(engine):
    page = TestClient(create_app(engine)).get("/")
    assert page.status_code == 200
    names = [r["name"] for r in _register()]
    assert not [n for n in names if n in page.text]


def test_operator_still_reads_the_whole_province(engine, pipeline):
    load(engine, pipeline)
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    c = TestClient(create_app(engine))
    login(c, "ops")
    page = c.get("/ops/onboarding").text
    assert OWN[1] in page and OTHER[1] in page and "/network" in page
    assert OTHER_NET[1] in c.get("/ops/supervision/", params={"month": MONTH}).text

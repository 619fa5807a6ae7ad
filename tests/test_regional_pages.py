"""The regional read-only role's pages and exports (issue 22): a city's reader sees its own
institutions on every /ops/ page and export and no other region's, another region's
institution page is refused, writes are refused, identifiers stay masked.

Every test here only reads, so the store is loaded once per back end for the module (the
loading took 3–4 s a test); a test that changed it would belong in test_regional_role.py."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from io import BytesIO, StringIO

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, select

from phip.accounts import create_user
from phip.accounts.tables import User
from phip.api.app import create_app
from phip.orgs.service import region_orgs
from phip.runtime import build_pipeline
from phip.standard.validate import platform_now
from phip.store.models import Institution

from .conftest import empty_store
from .regional_support import (DAY, MONTH, OTHER, OTHER_NET, OWN, OWN_NET, PASSWORD, REGION, assert_only_own, load, login,
                               outside)


@pytest.fixture(scope="module")
def loaded(store_engine: Engine) -> Engine:
    engine = empty_store(store_engine)
    load(engine, build_pipeline(engine))
    create_user(engine, "wjw", PASSWORD, "regional", "长春市卫健委", region_code=REGION)
    return engine


@pytest.fixture()
def engine(loaded: Engine) -> Engine:
    """The module's loaded store, checked: another module's test emptying it in between
    would otherwise show as a confusing page."""
    with loaded.connect() as conn:
        assert conn.execute(select(User.username).where(User.username == "wjw")).first(), "the module's store was emptied"
    return loaded


@pytest.fixture()
def client(engine: Engine) -> TestClient:
    c = TestClient(create_app(engine))
    login(c, "wjw")
    return c


def xlsx_text(body: bytes) -> str:
    wb = load_workbook(BytesIO(body))
    return "\n".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None)


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
    leaked = [(c, n) for c, n in outside(REGION) if n in text]
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


# --- writes ------------------------------------------------------------------------------------------

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



"""The regional read-only role (区域卫健委只读角色, issue 22), TestClient on SQLite and PostgreSQL:
a city's reader sees its own institutions on every /ops/ page and export and no other region's,
another region's institution page is refused, every write is refused, identifiers stay
masked; the CLI refuses a region code the register does not know."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phip.accounts import AuthError, create_user
from phip.accounts.tables import User
from phip.api.app import create_app
from phip.orgs.service import region_orgs

from .regional_support import MONTH, OTHER, OTHER_NET, OWN, OWN_NET, PASSWORD, REGION, assert_only_own, load, login, register


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


# --- the pages and exports: test_regional_pages.py; writes, other areas, anonymous ----------------

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
    names = [r["name"] for r in register()]
    assert not [n for n in names if n in page.text]


def test_operator_still_reads_the_whole_province(engine, pipeline):
    load(engine, pipeline)
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    c = TestClient(create_app(engine))
    login(c, "ops")
    page = c.get("/ops/onboarding").text
    assert OWN[1] in page and OTHER[1] in page and "/network" in page
    assert OTHER_NET[1] in c.get("/ops/supervision/", params={"month": MONTH}).text

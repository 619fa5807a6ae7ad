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

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from phip.accounts import AuthError, create_user
from phip.accounts.tables import User
from phip.api.app import create_app
from phip.orgs.service import SEED, region_orgs
from phip.quality.rules import load_supervision_rules
from phip.quality.run import analyse
from phip.standard.validate import platform_now
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

"""What the regional-role tests share (issue 22): the register's institutions of two cities
(长春市 and the others), a day of activity for them with findings, and the login."""

from __future__ import annotations

import csv
import re
from datetime import datetime, time, timedelta

from fastapi.testclient import TestClient

from phip.orgs.service import SEED
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


def register() -> list[dict[str, str]]:
    with SEED.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def outside(region: str) -> list[tuple[str, str]]:
    """Codes and names of the register's institutions outside ``region``; a name that is part
    of an inside one's is left out (it would show as a part of that name)."""
    rows = [r for r in register() if r["kind"] in ("hospital", "internet_hospital")]  # systems are the province's
    inside = [r["name"] for r in rows if region in (r["region_code"], r["county_code"])]
    return [(r["code"], r["name"]) for r in rows if region not in (r["region_code"], r["county_code"])
            and not any(r["name"] in n for n in inside)]


def inside(region: str) -> list[str]:
    return [r["name"] for r in register() if region in (r["region_code"], r["county_code"])]


def assert_only_own(text: str, own: tuple[str, str] | None = OWN, region: str = REGION) -> None:
    """``own`` is on the page (None: some institution of the region), no other region's is."""
    assert own[1] in text if own else any(n in text for n in inside(region))
    leaked = [(c, n) for c, n in outside(region) if c in text or n in text]
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

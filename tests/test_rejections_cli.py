"""`phip quality rejections` and `phip orgs list` as an operator runs them (real processes),
on the SQLite and PostgreSQL stores of the `engine` fixture."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
from datetime import timedelta

from phip.standard.validate import platform_now
from phip.synth.generator import Generator
from tests.cli_support import run
from tests.cli_support import url_of as _url

pytestmark = pytest.mark.slow  # every test here runs phip in its own process

ORG = "12220104412001376B"
DS = "outpatient_visit"


def _spoilt(orgs):
    now = platform_now()
    records = next(r for _, _, r in Generator(seed=5).day([orgs[0]], now.date() - timedelta(days=1), visits=6,
                                                          admissions=1, datasets=[DS], now=now))
    records[0] = {**records[0], "visit_time": "昨天"}
    records[1] = {**records[1], "visit_time": {"tel": "13912345678"}}  # a phone where a time is expected
    records[2] = {**records[2], "visit_time": ["上午"]}
    return records


# four `phip quality rejections` processes: the groups are the dashboard's, read on both back
# ends in tests/test_rejections.py; the command line on the embedded default only
@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_quality_rejections_counts_once_and_masks(pipeline, engine, orgs, tmp_path):
    records = _spoilt(orgs)
    for _ in range(2):
        assert pipeline.ingest(ORG, DS, records).rejected == 3
    pipeline.ingest(ORG, DS, [records[2]])  # not yet corrected: still rejected
    url = _url(engine)
    body = json.loads(run(["quality", "rejections", "--json"], tmp_path, database_url=url).stdout)
    (group,) = body["groups"]
    assert (group["org_code"], group["dataset"], group["open"], group["times_seen"]) == (ORG, DS, 3, 7)
    by_key = {e["record_key"]: e for e in group["examples"]}
    assert set(by_key) == {records[0]["visit_no"], records[1]["visit_no"], records[2]["visit_no"]}
    assert by_key[records[2]["visit_no"]]["times_seen"] == 3
    assert by_key[records[0]["visit_no"]]["findings"][0]["code"] == "BAD_DATETIME"
    shown = json.dumps(body, ensure_ascii=False)
    for r in records[:3]:
        assert r["id_no"] not in shown and r["id_no"][:6] + "********" + r["id_no"][-4:] in shown
    assert "13912345678" not in shown and "139****5678" in shown

    table = run(["quality", "rejections", "--org", ORG, "--dataset", "3"], tmp_path, database_url=url).stdout
    assert "长春中医药大学附院" in table and "未纠正 3 条" in table and "BAD_DATETIME" in table
    assert records[0]["id_no"] not in table and records[0]["id_no"][-4:] in table

    # corrected: gone from the default list, kept with --all
    fixed = {**records[2], "visit_time": f"{platform_now() - timedelta(days=1):%Y-%m-%d} 09:00:00"}
    assert pipeline.ingest(ORG, DS, [fixed]).accepted == 1
    body = json.loads(run(["quality", "rejections", "--json"], tmp_path, database_url=url).stdout)
    assert body["groups"][0]["open"] == 2
    everything = json.loads(run(["quality", "rejections", "--all", "--json"], tmp_path, database_url=url).stdout)
    assert (everything["groups"][0]["open"], everything["groups"][0]["resolved"]) == (2, 1)
    resolved = [e for e in everything["groups"][0]["examples"] if e["resolved_at"]]
    assert [e["record_key"] for e in resolved] == [records[2]["visit_no"]]
    assert "没有未纠正的拒收记录" in run(["quality", "rejections", "--org", orgs[5][0]], tmp_path, database_url=url).stdout
    bad = run(["quality", "rejections", "--dataset", "nope"], tmp_path, check=False, database_url=url)
    assert bad.returncode == 2 and "UNKNOWN_DATASET" in bad.stderr


# eight `phip orgs list` processes: the listing itself is the dashboard's, tested on both back
# ends (tests/test_onboarding.py); the command line on the embedded default only
@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_orgs_list_whole_codes_filters_and_json(engine, tmp_path, primary_care_orgs):
    url = _url(engine)
    everything = json.loads(run(["orgs", "list", "--json"], tmp_path, database_url=url).stdout)
    primary = [e for e in everything if e["code"] in {code for code, _ in primary_care_orgs}]
    # the 66 of attachment 1, the 14 中省直 hospitals of seed 000, the primary-care centres
    assert len(primary) == 4 and len(everything) == 66 + 14 + 4  # internet hospitals are listed apart
    env = {**os.environ, "PHIP_DATABASE_URL": url, "PHIP_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "phip.cli", "orgs", "list"], env=env, capture_output=True, text=True,
                         timeout=120).stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    for org in everything:  # every code whole on an 80-column terminal; the names wrap instead
        assert org["code"] in out, org
    changchun = json.loads(run(["orgs", "list", "--region", "长春", "--json"], tmp_path, database_url=url).stdout)
    by_prefix = json.loads(run(["orgs", "list", "--region", "2201", "--json"], tmp_path, database_url=url).stdout)
    assert changchun == by_prefix and len(changchun) == sum(o["region_code"] == "220100" for o in everything) > 1
    named = json.loads(run(["orgs", "list", "--name", "中医", "--json"], tmp_path, database_url=url).stdout)
    assert named and all("中医" in o["name"] for o in named)
    assert len(named) == sum("中医" in o["name"] for o in everything)
    pull = json.loads(run(["orgs", "list", "--status", "pending", "--json"], tmp_path, database_url=url).stdout)
    assert {o["network"] for o in pull} <= {"pending"} and len(pull) == sum(o["network"] != "connected" for o in everything)
    both = json.loads(run(["orgs", "list", "--region", "长春", "--status", "已联通", "--json"], tmp_path,
                          database_url=url).stdout)
    assert all(o["region_code"] == "220100" and o["network"] == "connected" for o in both)
    bad = run(["orgs", "list", "--status", "asleep"], tmp_path, check=False, database_url=url)
    assert bad.returncode == 2 and "BAD_STATUS" in bad.stderr
    table = run(["orgs", "list", "--name", "长春中医药大学附院"], tmp_path, database_url=url).stdout
    assert "筛选出1家" in table and ORG in table

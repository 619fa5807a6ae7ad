"""Resident health records (基本公共卫生) as extension data sets: planted follow-ups give the
expected 规范管理率 per institution (exactly 4 counts, 3 does not, last year's do not), the
health-record figures for the upload statistics, the generator and the demo, the push API
and the CLI with its XLSX export."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select, update

from phip.api.app import create_app
from phip.demo import load_demo
from phip.orgs.keys import create_key
from phip.reports.chronic import chronic_report, to_xlsx
from phip.reports.health_records import health_record_counts
from phip.reports.period import parse_period
from phip.standard.catalog import load_standard
from phip.standard.validate import validator_for
from phip.store import models as m
from phip.synth.generator import Generator

STD = load_standard()
NOW = datetime(2026, 11, 20, 18, 0)
YEAR = parse_period("2026-01..2026-11")


def person(no: str, sex: str = "1") -> dict:
    return {"health_record_no": no, "name": f"居民{no[-3:]}", "sex_code": sex, "birth_date": "1955-03-02"}


def followup(org: tuple[str, str], no: str, day: str, seq: int) -> dict:
    return {"org_code": org[0], "org_name": org[1], "followup_no": f"F{no}-{seq}", **person(no), "followup_date": day,
            "followup_method_code": "1", "systolic_bp": 138, "diastolic_bp": 86, "followup_class_code": "1"}


def enrolment(org: tuple[str, str], no: str, disease: str, enrolled: str, ended: str | None = None) -> dict:
    rec = {"org_code": org[0], "org_name": org[1], **person(no), "disease_code": disease, "enrol_date": enrolled}
    if ended:
        rec.update(end_date=ended, end_reason_code="2")
    return rec


def visits(org, no: str, days: list[str]) -> list[dict]:  # noqa: ANN001
    return [followup(org, no, d, i) for i, d in enumerate(days)]


def plant(pipeline, a, b) -> None:  # noqa: ANN001
    """Institution a: P1 exactly 4 this year (standard); P2 3 this year + 2 last year (not);
    P3 enrolled, never followed (managed, not standard); P4 ended last year (not managed);
    P5 followed 4 times without an enrolment (managed, standard). Institution b: P6 with 5."""
    htn = [
        *visits(a, "A001", ["2026-01-10", "2026-04-08", "2026-07-09", "2026-10-12"]),
        *visits(a, "A002", ["2025-09-01", "2025-12-01", "2026-03-03", "2026-06-03", "2026-11-02"]),
        *visits(a, "A005", ["2026-02-01", "2026-05-01", "2026-08-01", "2026-11-01"]),
        *visits(b, "B006", ["2026-01-05", "2026-03-05", "2026-05-05", "2026-07-05", "2026-09-05"]),
    ]
    dm = visits(a, "A001", ["2026-02-10", "2026-05-10", "2026-08-10"])  # diabetes: 3, not standard
    enrol = [enrolment(a, "A001", "1", "2024-05-01"), enrolment(a, "A002", "1", "2025-08-20"),
             enrolment(a, "A003", "1", "2026-09-15"), enrolment(a, "A004", "1", "2023-01-01", ended="2025-06-30"),
             enrolment(a, "A001", "2", "2025-02-01"), enrolment(b, "B006", "1", "2026-01-02")]
    profiles = [{"org_code": o[0], "org_name": o[1], **person(no), "id_type_code": "99", "id_no": f"X{no}",
                 "build_date": "2026-11-01", "update_time": "2026-11-01 09:00:00"} for o, no in ((a, "A001"), (a, "A002"), (b, "B006"))]
    for org in (a, b):
        for ds, recs in (("hypertension_followup", htn), ("diabetes_followup", dm), ("chronic_disease_enrolment", enrol),
                         ("resident_profile", profiles)):
            mine = [r for r in recs if r["org_code"] == org[0]]
            if mine:
                receipt = pipeline.ingest(org[0], ds, mine, now=NOW)
                assert receipt.rejected == 0 and receipt.accepted == len(mine), (ds, receipt)


@pytest.fixture()
def planted(pipeline, primary_care_orgs):  # noqa: ANN001
    a, b = primary_care_orgs[0], primary_care_orgs[-1]  # 长春 and 吉林: two regions
    plant(pipeline, a, b)
    return a, b


def test_standard_management_rate_per_institution(engine, planted):
    a, b = planted
    report = chronic_report(engine, YEAR)
    rows = {r.key: r for r in report.rows}
    htn_a, dm_a = rows[a[0]].figures["hypertension"], rows[a[0]].figures["diabetes"]
    assert (htn_a.managed, htn_a.standard) == (4, 2)  # A001, A002, A003, A005; A001 and A005 have 4
    assert htn_a.rate == pytest.approx(0.5)
    assert htn_a.followups == 4 + 3 + 4  # last year's two are not in the period
    assert (dm_a.managed, dm_a.standard, dm_a.rate) == (1, 0, 0.0)
    htn_b = rows[b[0]].figures["hypertension"]
    assert (htn_b.managed, htn_b.standard, htn_b.rate) == (1, 1, 1.0)
    assert report.total.figures["hypertension"].managed == 5 and report.total.figures["hypertension"].standard == 3
    # a primary-care institution that sent nothing is listed with zeros and no rate
    idle = next(r for r in report.rows if r.key not in (a[0], b[0]))
    assert idle.figures["hypertension"].managed == 0 and idle.figures["hypertension"].rate is None
    regions = {r.key: r for r in chronic_report(engine, YEAR, "region").rows}
    assert regions["220100"].figures["hypertension"].standard == 2 and regions["220200"].figures["hypertension"].standard == 1


def test_year_to_date_and_earlier_years(engine, planted):
    a, _ = planted
    june = {r.key: r for r in chronic_report(engine, parse_period("2026-06")).rows}[a[0]].figures["hypertension"]
    # by the end of June: A001 2, A002 2 (+2 last year, not counted), A005 2, A003 not yet enrolled
    assert (june.managed, june.standard, june.followups) == (3, 0, 1)
    last_year = {r.key: r for r in chronic_report(engine, parse_period("2025-01..2025-12")).rows}[a[0]].figures["hypertension"]
    assert (last_year.managed, last_year.standard) == (3, 0)  # A001, A002, A004 (ended mid-2025)


def test_health_record_figures_for_the_upload_statistics(engine, planted):
    a, b = planted
    nov = health_record_counts(engine, parse_period("2026-11"))
    assert nov[a[0]].basic == 2 and nov[b[0]].basic == 1
    assert nov[a[0]].hypertension == 2 and nov[a[0]].diabetes == 0  # A002 and A005 on 2 and 1 November
    year = health_record_counts(engine, YEAR, [a[0]])
    assert set(year) == {a[0]}
    assert year[a[0]].hypertension == 11 + 1  # this year's follow-ups and A003's enrolment (2026-09-15)
    assert year[a[0]].diabetes == 3
    assert health_record_counts(engine, parse_period("2025-01..2025-12"))[a[0]].hypertension == 2 + 1  # A002's two and its enrolment


def test_xlsx_and_cli(engine, planted, tmp_path):
    a, _ = planted
    report = chronic_report(engine, YEAR)
    wb = load_workbook(__import__("io").BytesIO(to_xlsx(report)))
    ws = wb.active
    assert "高血压、2型糖尿病患者健康管理情况" in ws.cell(1, 1).value
    assert [ws.cell(2, c).value for c in (2, 6)] == ["高血压患者健康管理", "2型糖尿病患者健康管理"]
    assert [ws.cell(3, c).value for c in range(2, 6)] == ["管理人数", "随访人次", "规范管理人数", "规范管理率"]
    row = next(r for r in range(4, ws.max_row + 1) if ws.cell(r, 1).value == a[1])
    assert [ws.cell(row, c).value for c in range(2, 6)] == [4, 11, 2, 0.5]
    assert ws.cell(row, 5).number_format == "0.00%"

    from tests.cli_support import run, url_of as _url

    out = tmp_path / "chronic.xlsx"
    said = run(["reports", "chronic", "--period", "2026-01..2026-11", "--out", str(out)], tmp_path, database_url=_url(engine)).stdout
    assert "已导出" in said and load_workbook(out).active.cell(1, 1).value == ws.cell(1, 1).value
    shown = run(["reports", "chronic", "--period", "2026-11", "--level", "region"], tmp_path, database_url=_url(engine)).stdout
    assert "长春市" in shown and "规范管理率" in shown
    bad = run(["reports", "chronic", "--period", "2026-13"], tmp_path, check=False, database_url=_url(engine))
    assert bad.returncode != 0 and "BAD_PERIOD" in bad.stderr


def test_generator_writes_valid_resident_records_with_some_below_four():
    gen = Generator(seed=11)
    out: dict[str, list[dict]] = {}
    org = ("12220104412900001K", "长春市朝阳区南湖社区卫生服务中心")
    for code, ds_code, recs in gen.public_health(org, date(2025, 1, 1), NOW.date(), residents=80, now=NOW):
        assert code == org[0]
        out.setdefault(ds_code, []).extend(recs)
    assert set(out) == {"resident_profile", "chronic_disease_enrolment", "hypertension_followup", "diabetes_followup"}
    for ds_code, recs in out.items():
        validator = validator_for(STD, STD.dataset(ds_code))
        for r in recs:
            outcome = validator.validate(r, NOW)
            assert outcome.accepted and not outcome.findings, (ds_code, [f.message for f in outcome.findings])
    profiles = {r["health_record_no"] for r in out["resident_profile"]}
    assert len(profiles) == 80 and {r["health_record_no"] for r in out["hypertension_followup"]} <= profiles
    per_year = Counter(r["health_record_no"] for r in out["hypertension_followup"] if r["followup_date"].startswith("2025"))
    assert min(per_year.values()) < 4 <= max(per_year.values())
    assert all(n >= 1 for n in per_year.values()) and len(per_year) > 10
    # hospital days never carry resident records
    day = {ds for _, ds, _ in Generator(seed=1).day([org], NOW.date(), visits=3, admissions=1, now=NOW)}
    assert not day & set(out)


def test_demo_sends_resident_records_from_primary_care(engine, pipeline, primary_care_orgs):
    centres = [c for c, _ in primary_care_orgs]
    with engine.begin() as conn:  # the hospitals' days are not what this test is about
        conn.execute(update(m.Institution).where(m.Institution.code.not_in(centres)).values(network_status="pending"))
    receipt = load_demo(pipeline, days=1, visits=3, error_rate=0.0, residents=25)
    assert receipt.rejected == 0
    with engine.connect() as conn:
        got = dict(conn.execute(select(m.Record.dataset, func.count()).where(m.Record.dataset.in_(
            ("resident_profile", "hypertension_followup", "diabetes_followup", "chronic_disease_enrolment")))
            .group_by(m.Record.dataset)).all())
        senders = set(conn.execute(select(m.Record.org_code).where(m.Record.dataset == "hypertension_followup").distinct()).scalars())
    assert got["resident_profile"] == 25 * len(centres) and got["hypertension_followup"] > got["chronic_disease_enrolment"] / 2
    assert senders == set(centres)
    report = chronic_report(engine, parse_period(f"{receipt.received_at.year}-01..{receipt.received_at:%Y-%m}"))
    figures = [r.figures["hypertension"] for r in report.rows if r.key in centres]
    assert all(f.managed and f.rate is not None for f in figures)
    assert 0 < sum(f.standard for f in figures) < sum(f.managed for f in figures)  # some below four follow-ups


def test_push_api_takes_the_new_data_sets(engine, primary_care_orgs):
    org = primary_care_orgs[0]
    _, key = create_key(engine, org[0])
    client = TestClient(create_app(engine))
    gen = Generator(seed=4)
    batches = {ds: recs for _, ds, recs in gen.public_health(org, NOW.date() - timedelta(days=200), NOW.date() - timedelta(days=1),
                                                              residents=30, now=NOW)}
    for ds, recs in batches.items():
        r = client.post(f"/api/v1/datasets/{ds}/records", json=recs, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        assert r.json()["counts"]["accepted"] == len(recs), (ds, r.json()["counts"])
    with engine.connect() as conn:
        linked = conn.execute(select(func.count()).select_from(m.Record).where(
            m.Record.dataset == "hypertension_followup", m.Record.person_id.is_not(None))).scalar_one()
    assert linked == len(batches["hypertension_followup"])  # the EMPI linked every follow-up to its resident

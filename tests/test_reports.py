"""Upload statistics from counters: the figures equal what the records say, and stay the same
when the records are gone (the report never reads them); not reported ≠ reported zero; a
closed or unconnected institution does not count against its region; the XLSX holds the
report's numbers."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from openpyxl import load_workbook
from sqlalchemy import delete, func, select, update

from phip.reports import export
from phip.reports.onboarding import onboarding_status, set_network
from phip.reports.period import PeriodError, parse_period
from phip.reports.reported import import_reported
from phip.reports.sheet import SheetError
from phip.reports.tables import MeasureDaily, ReportedFigure
from phip.reports.uploads import COLUMNS, upload_report
from phip.store import models as m
from phip.synth.generator import Generator

DAYS = [date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 20)]
OCT = parse_period("2026-10")


def load(pipeline, orgs_):  # noqa: ANN001
    """Three days of two institutions in two regions, each day received the same evening."""
    gen = Generator(seed=5)
    for day in DAYS:
        now = datetime.combine(day, time(21, 0))
        for org, ds, recs in gen.day(orgs_, day, visits=8, admissions=2, now=now):
            assert pipeline.ingest(org, ds, recs, now=now).rejected == 0


def truth(engine, org: str) -> dict[str, int]:  # noqa: ANN001
    """The same figures computed the slow way, from the records (tests only)."""
    with engine.connect() as conn:
        rows = conn.execute(select(m.Record.dataset, m.Record.payload, m.Record.event_time).where(m.Record.org_code == org)).all()
    out = {"outpatient": 0, "lab_exam": 0, "lab_items": 0, "basic": 0, "discharges": 0, "hypertension": 0, "diabetes": 0}
    lab_reports: set[str] = set()
    for ds, payload, event in rows:
        in_oct = event.date().month == 10
        out["outpatient"] += ds == "outpatient_visit" and in_oct
        out["lab_exam"] += ds == "exam_report" and in_oct  # one record per exam report
        out["lab_items"] += ds == "lab_report" and in_oct  # one record per lab result item
        if ds == "lab_report" and in_oct:
            lab_reports.add(payload["report_no"])
        # 健康档案上传量: the public-health extension data sets (073–076), by their event day
        out["basic"] += ds == "resident_profile" and in_oct
        out["hypertension"] += in_oct and (ds == "hypertension_followup" or (
            ds == "chronic_disease_enrolment" and str(payload.get("disease_code")) == "1"))
        out["diabetes"] += in_oct and (ds == "diabetes_followup" or (
            ds == "chronic_disease_enrolment" and str(payload.get("disease_code")) == "2"))
        if ds == "inpatient_visit" and payload.get("discharge_time", "")[:7] == "2026-10":
            out["discharges"] += 1
    out["lab_exam"] += len(lab_reports)  # reports, not items: one unit for lab and exam
    return out


@pytest.fixture()
def two_orgs(orgs):  # noqa: ANN001
    return [orgs[0], next(o for o in orgs if o[1] == "梅河口市中心医院")]  # 长春 and 梅河口: two regions


def test_report_reads_counters_only(engine, pipeline, two_orgs):
    load(pipeline, two_orgs)
    expected = {code: truth(engine, code) for code, _ in two_orgs}
    with engine.connect() as conn:
        volume = dict(conn.execute(select(m.Record.org_code, func.count()).group_by(m.Record.org_code)).all())
    report = upload_report(engine, OCT, "institution")
    rows = {r.key: r for r in report.rows}
    for code, _ in two_orgs:
        row = rows[code]
        assert row.volume == volume[code] and row.days == 3
        assert {k: row.value(k) for k in expected[code]} == expected[code]
        assert row.outpatient > 0 and row.discharges >= 0 and row.lab_exam > 0
    # the records are gone: a report that read them would change; this one does not
    with engine.begin() as conn:
        conn.execute(delete(m.Record))
    again = {r.key: r for r in upload_report(engine, OCT, "institution").rows}
    for code, _ in two_orgs:
        assert [again[code].value(k) for k, _, _ in COLUMNS] == [rows[code].value(k) for k, _, _ in COLUMNS]
    regional = upload_report(engine, OCT, "region")
    assert len([r for r in regional.rows if r.volume]) == 2
    assert regional.total.volume == sum(volume.values()) and regional.total.days == 3
    nov = upload_report(engine, parse_period("2026-11"), "institution")
    assert nov.total.volume == 0 and nov.total.outpatient == 0


def test_discharge_counter_follows_corrections(engine, pipeline, orgs):
    gen = Generator(seed=6)
    now = datetime(2026, 10, 10, 20, 0)
    stays = [r for _, ds, recs in gen.day(orgs[:1], date(2026, 10, 1), visits=1, admissions=3, now=now,
                                          datasets=["inpatient_visit"]) for r in recs]
    open_stay = {k: v for k, v in stays[0].items() if k != "discharge_time"}
    pipeline.ingest(orgs[0][0], "inpatient_visit", [open_stay], now=now)

    def discharges(day: date) -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.sum(MeasureDaily.records), 0)).where(
                MeasureDaily.measure == "discharges", MeasureDaily.day == day)).scalar_one()

    assert discharges(date(2026, 10, 5)) == 0
    pipeline.ingest(orgs[0][0], "inpatient_visit", [{**open_stay, "discharge_time": "2026-10-05 10:00:00"}], now=now)
    assert discharges(date(2026, 10, 5)) == 1  # discharged on a later update: counted then
    pipeline.ingest(orgs[0][0], "inpatient_visit", [{**open_stay, "discharge_time": "2026-10-06 09:00:00"}], now=now)
    assert (discharges(date(2026, 10, 5)), discharges(date(2026, 10, 6))) == (0, 1)  # a corrected day moves


def write_csv(path, rows):  # noqa: ANN001
    path.write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    return path


def test_reported_figures_keep_not_reported_apart_from_zero(engine, pipeline, two_orgs, tmp_path):
    load(pipeline, two_orgs)
    (a, a_name), (b, _) = two_orgs
    f = write_csv(tmp_path / "r.csv", [["医疗机构", "统计期", "门急诊人次", "出院人次"],
                                       [a_name, "2026年10月", "48", ""], [b, "2026-10", "0", "7"]])
    result = import_reported(engine, f)
    assert (result.rows, result.not_reported) == (2, 1)
    rows = {r.key: r for r in upload_report(engine, OCT, "institution").rows}
    assert rows[a].outpatient_reported == 48 and rows[a].discharges_reported is None
    assert rows[a].rate_text("outpatient") == f"{rows[a].outpatient / 48 * 100:.2f}%"
    assert rows[a].rate_text("discharges") == "未报告"
    assert rows[b].rate_text("outpatient") == "报告为0" and rows[b].outpatient_rate is None
    other = next(r for r in rows.values() if r.key not in (a, b))
    assert other.rate_text("outpatient") == "未报告"
    # a bad row: clear message with the row number, nothing written
    bad = write_csv(tmp_path / "bad.csv", [["机构代码", "统计期", "门急诊人次", "出院人次"], [a, "2026-11", "12", "3"],
                                           [b, "2026-11", "-5", "1"]])
    with pytest.raises(SheetError, match="第3行") as err:
        import_reported(engine, bad)
    assert err.value.code == "BAD_COUNT"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ReportedFigure)).scalar_one() == 2


def test_region_rate_leaves_out_reported_zero(engine, pipeline, orgs, tmp_path):
    """An institution that reported zero has no rate of its own; its uploads must not push
    its region's rate up (they did: 49 uploaded against 40 reported showed 122.50%)."""
    region = [o for o in orgs if o[0] in {r.code for r in onboarding_status(engine) if r.region_name == "长春市"}][:2]
    load(pipeline, region)
    (a, _), (zero, _) = region
    import_reported(engine, write_csv(tmp_path / "r.csv", [["机构代码", "统计期", "门急诊人次", "出院人次"],
                                                           [a, "2026-10", "40", "10"], [zero, "2026-10", "0", "0"]]))
    rows = {r.key: r for r in upload_report(engine, OCT, "institution").rows}
    assert rows[zero].outpatient > 0 and rows[zero].rate_text("outpatient") == "报告为0"
    city = next(r for r in upload_report(engine, OCT, "region").rows if r.key == rows[a].region_code)
    assert city.rate_text("outpatient") == rows[a].rate_text("outpatient") == f"{rows[a].outpatient / 40 * 100:.2f}%"


def test_region_rate_leaves_out_closed_and_unconnected(engine, pipeline, orgs, tmp_path):
    region = [o for o in orgs if o[0] in {r.code for r in onboarding_status(engine) if r.region_name == "长春市"}][:3]
    load(pipeline, region[:2])
    write_csv(tmp_path / "r.csv", [["机构代码", "统计期", "门急诊人次", "出院人次"],
                                   *[[code, "2026-10", "100", "10"] for code, _ in region]])
    import_reported(engine, tmp_path / "r.csv")
    set_network(engine, region[2][0], "pending")  # reported, not connected: must not drag the rate down
    with engine.begin() as conn:
        conn.execute(update(m.Institution).where(m.Institution.code == region[1][0]).values(status="closed"))
    rows = {r.key: r for r in upload_report(engine, OCT, "institution", region_code="220100").rows}
    changchun = next(r for r in upload_report(engine, OCT, "region").rows if r.key == "220100")
    assert changchun.outpatient_reported == 100  # only the active, connected institution that reported
    assert changchun.rate_text("outpatient") == f"{rows[region[0][0]].outpatient / 100 * 100:.2f}%"
    assert changchun.outpatient == sum(r.outpatient for r in rows.values())  # the upload itself still counts


def test_xlsx_and_csv_hold_the_report(engine, pipeline, two_orgs, tmp_path):
    load(pipeline, two_orgs)
    write_csv(tmp_path / "r.csv", [["机构代码", "统计期", "门急诊人次", "出院人次"], [two_orgs[0][0], "2026-10", "30", "0"]])
    import_reported(engine, tmp_path / "r.csv")
    report = upload_report(engine, OCT, "institution", sort="volume")
    path = tmp_path / "r.xlsx"
    export.to_xlsx(report, path)
    ws = load_workbook(path).active
    assert ws.cell(1, 1).value == export.title(report) and "2026年10月1日-10月31日" in ws.cell(1, 1).value
    assert header_rows(ws) == tuple(h.rstrip("\t") for h in PROVINCIAL_HEADER)  # every hospital, laid out as the provincial-hospital table
    for i, row in enumerate([*report.rows, report.total]):
        got = [ws.cell(export.FIRST_DATA_ROW + i, c).value for c in range(1, len(report.columns) + 2)]
        assert got == [row.name, *export.cells(report, row)]
    i = next(i for i, r in enumerate(report.rows) if r.key == two_orgs[0][0])
    first = report.rows[i]
    assert ws.cell(export.FIRST_DATA_ROW + i, 4).value == pytest.approx(first.outpatient / 30)
    assert ws.cell(export.FIRST_DATA_ROW + i, 6).value == "报告为0"
    csv_text = export.to_csv(report)
    assert csv_text.startswith("\ufeff医疗机构接入单位,数据上传量,门急诊信息-上传人次,") and f"{first.outpatient / 30 * 100:.2f}%" in csv_text
    assert [r.volume for r in report.rows] == sorted((r.volume for r in report.rows), reverse=True)


# The header rows of seed 003's tables, as printed there (tab-separated, merged cells empty).
CITY_HEADER = ("接入单位\t数据上传量\t数据上传天数\t门急诊信息\t\t出院信息\t\t健康档案上传量\t\t",
               "\t\t\t上传人次\t上传率\t上传人次\t上传率\t基本信息\t高血压\t糖尿病")
PROVINCIAL_HEADER = ("医疗机构接入单位\t数据上传量\t门急诊信息\t\t出院信息\t\t检验检查上传量\t数据上传天数",
                     "\t\t上传人次\t上传率\t上传人次\t上传率\t\t")


def header_rows(ws) -> tuple[str, str]:  # noqa: ANN001
    """Rows 2 and 3 of an export, spelled as the seed prints them (trailing tabs dropped)."""
    def row(r: int) -> str:
        return "\t".join("" if c.value is None else str(c.value) for c in ws[r]).rstrip("\t")
    return row(2), row(3)


# the export's layout against the seed, on the embedded default only (31 s on PostgreSQL): the
# report's queries run on both back ends in the tests above
@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_city_and_county_tables_are_the_seeds(engine, pipeline, orgs, tmp_path):
    """The exported header rows equal seed 003's, text for text, and every number equals the
    report's (what the page shows); county rows add up to their city. One hospital per region
    and one per county of 长春 upload (every region and county has a row either way; loading
    all 86 hospitals took a minute per back end)."""
    with engine.connect() as conn:
        county_of = dict(conn.execute(select(m.Institution.code, m.Institution.county_code)).all())
        region_of = dict(conn.execute(select(m.Institution.code, m.Institution.region_code)).all())
    chosen = {region_of[code]: (code, name) for code, name in reversed(orgs)}
    chosen.update({county_of[code]: (code, name) for code, name in reversed(orgs)
                   if region_of[code] == "220100" and county_of[code]})
    load(pipeline, list(chosen.values()))
    hospitals = upload_report(engine, OCT, "institution").rows
    for level, title in (("city", "各市区域健康信息平台数据上传省平台情况"), ("county", "区域健康信息平台数据上传省平台情况")):
        report = upload_report(engine, OCT, level)
        path = tmp_path / f"{level}.xlsx"
        export.to_xlsx(report, path)
        ws = load_workbook(path).active
        assert ws.cell(1, 1).value == f"{title}(2026年10月1日-10月31日)"
        assert header_rows(ws) == tuple(h.rstrip("\t") for h in CITY_HEADER)
        for i, row in enumerate([*report.rows, report.total]):
            got = [ws.cell(export.FIRST_DATA_ROW + i, c).value for c in range(1, len(report.columns) + 2)]
            assert got == [row.name, *export.cells(report, row)]
        assert sum(r.volume for r in report.rows) == report.total.volume > 0
    counties = upload_report(engine, OCT, "county").rows
    assert len(counties) > len(upload_report(engine, OCT, "city").rows)
    for county in counties:
        inside = [h for h in hospitals if (county_of[h.key] or h.region_code) == county.key]
        assert county.name != county.key  # named from the GB/T 2260 table
        assert inside and sum(h.outpatient for h in inside) == county.outpatient
        assert sum(h.volume for h in inside) == county.volume
    changchun = [c for c in counties if c.volume and county_of_region(c.key) == "220100"]
    city = next(r for r in upload_report(engine, OCT, "city").rows if r.key == "220100")
    assert len(changchun) > 3 and sum(c.volume for c in changchun) == city.volume  # a city is its counties


def county_of_region(county: str) -> str:
    from phip.orgs.codes import regions

    return regions()[county].parent if county in regions() else county


def test_provincial_table_is_the_seeds_and_lists_the_provincial_hospitals(engine, pipeline, orgs, tmp_path):
    """The seed's 各省属医疗机构 table: its title and header rows, one row per hospital whose
    隶属关系 is 中央 or 省属, nobody else, and the same numbers as the all-hospitals table."""
    from phip.reports.onboarding import PROVINCIAL

    with engine.connect() as conn:
        provincial = set(conn.execute(select(m.Institution.code).where(
            m.Institution.affiliation.in_(PROVINCIAL), m.Institution.kind == "hospital")).scalars())
    other = next(o for o in orgs if o[0] not in provincial)
    load(pipeline, [o for o in orgs if o[0] in provincial][:2] + [other])
    report = upload_report(engine, OCT, "provincial")
    assert len(provincial) >= 14 and {r.key for r in report.rows} == provincial
    path = tmp_path / "provincial.xlsx"
    export.to_xlsx(report, path)
    ws = load_workbook(path).active
    assert ws.cell(1, 1).value == "各省属医疗机构数据上传省平台情况(2026年10月1日-10月31日)"
    assert header_rows(ws) == tuple(h.rstrip("\t") for h in PROVINCIAL_HEADER)
    every = {r.key: r for r in upload_report(engine, OCT, "institution").rows}
    for i, row in enumerate(report.rows):
        assert [ws.cell(export.FIRST_DATA_ROW + i, c).value for c in range(1, len(report.columns) + 2)] == \
            [row.name, *export.cells(report, every[row.key])]
    assert report.total.volume == sum(r.volume for r in report.rows) < sum(r.volume for r in every.values())
    assert sum(1 for r in report.rows if r.volume) == 2


def test_health_record_columns_count_the_public_health_data_sets(engine, pipeline, primary_care_orgs):
    """基本信息 / 高血压 / 糖尿病 come from resident health records, not from hospital visits."""
    org = primary_care_orgs[0]
    gen = Generator(seed=9)
    now = datetime(2026, 11, 2, 21, 0)
    for code, ds, recs in gen.public_health(org, date(2026, 1, 1), date(2026, 10, 31), residents=30, now=now):
        assert pipeline.ingest(code, ds, recs, now=now).rejected == 0
    row = next(r for r in upload_report(engine, OCT, "institution").rows if r.key == org[0])
    expected = truth(engine, org[0])
    assert (row.basic, row.hypertension, row.diabetes) == (expected["basic"], expected["hypertension"], expected["diabetes"])
    year = upload_report(engine, parse_period("2026-01..2026-10"), "city")
    assert sum(r.hypertension for r in year.rows) > 0 and sum(r.basic for r in year.rows) == 30


def test_extras_follow_the_seeds_columns(engine, pipeline, two_orgs):
    load(pipeline, two_orgs)
    plain = upload_report(engine, OCT, "city")
    extra = upload_report(engine, OCT, "region", extras=True)  # "region": the city level's older name
    assert extra.level == "city" and extra.columns[: len(plain.columns)] == plain.columns
    assert [k for k, _, _ in extra.columns[len(plain.columns):]] == ["rejected", "lab_items"]
    assert export.header_labels(extra)[-2:] == ["附：平台统计-拒收", "附：平台统计-检验结果项目数"]


def test_part_month_periods_prorate_the_reported_figure(engine, pipeline, two_orgs, tmp_path):
    load(pipeline, two_orgs)
    org = two_orgs[0][0]
    write_csv(tmp_path / "r.csv", [["机构代码", "统计期", "门急诊人次", "出院人次"], [org, "2026-10", "310", ""]])
    import_reported(engine, tmp_path / "r.csv")
    part = parse_period("2026-10-01..2026-10-10")  # 10 of October's 31 days
    row = next(r for r in upload_report(engine, part, "institution").rows if r.key == org)
    assert row.outpatient_reported == 100 and row.discharges_reported is None
    assert row.outpatient_rate == pytest.approx(row.outpatient / 100)
    report = upload_report(engine, part, "institution")
    assert any("折算" in n for n in report.notes)
    assert not any("折算" in n for n in upload_report(engine, OCT, "institution").notes)


@pytest.mark.parametrize(("text", "start", "end"), [
    ("2021-03", date(2021, 3, 1), date(2021, 3, 31)),
    ("2021-03..2021-04", date(2021, 3, 1), date(2021, 4, 30)),
    ("2021年3月1日~2021年4月30日", date(2021, 3, 1), date(2021, 4, 30)),
    ("2024.2", date(2024, 2, 1), date(2024, 2, 29)),
])
def test_periods(text, start, end):
    p = parse_period(text)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("text", ["2021-13", "2021-04..2021-03", "last month", "2021-02-30", "0000-01", "0000-01-01", "9999-12..10000-01"])
def test_bad_periods(text):
    with pytest.raises(PeriodError):
        parse_period(text)


def test_recount_rebuilds_a_measure_from_the_records(engine, pipeline, two_orgs):
    """A measure added after the data arrived counts the history once recounted, and a second
    recount gives the same counters (it replaces, never adds)."""
    from phip.reports.measures import recount

    load(pipeline, two_orgs)
    before = upload_report(engine, OCT, "institution").total.lab_exam
    with engine.begin() as conn:
        conn.execute(delete(MeasureDaily).where(MeasureDaily.measure == "lab_reports"))
    assert upload_report(engine, OCT, "institution").total.lab_exam < before
    counted = recount(engine, "lab_reports")
    assert counted > 0 and upload_report(engine, OCT, "institution").total.lab_exam == before
    assert recount(engine, "lab_reports") == counted
    assert upload_report(engine, OCT, "institution").total.lab_exam == before


def test_tile_map_places_every_city_once_and_bands_its_rate(engine, pipeline, two_orgs, tmp_path):
    from phip.orgs.codes import regions, tiles
    from phip.reports.overview import rates_by_city

    cities = {c for c, r in regions().items() if r.region and r.level != "province"}  # the city table's rows
    assert set(tiles()) == cities and len(set(tiles().values())) == len(cities)  # one tile each, none stacked
    load(pipeline, two_orgs)
    (a, _), (b, _) = two_orgs
    set_network(engine, b, "connected")  # a region's rate counts its connected institutions
    uploaded = {r.key: r.outpatient for r in upload_report(engine, OCT, "institution").rows}
    import_reported(engine, write_csv(tmp_path / "r.csv", [["机构代码", "统计期", "门急诊人次", "出院人次"],
                                                           [a, "2026-10", str(uploaded[a]), ""],
                                                           [b, "2026-10", str(uploaded[b] * 4), ""]]))
    by_code = {t["code"]: t for t in rates_by_city(engine, date(2026, 10, 20))["tiles"]}
    assert set(by_code) == cities
    assert (by_code["220100"]["band"], by_code["220100"]["outpatient"]) == ("high", "100.00%")
    assert (by_code["220581"]["band"], by_code["220581"]["outpatient"]) == ("low", "25.00%")  # 省直管 梅河口
    assert by_code["220800"]["band"] == "none" and by_code["220800"]["outpatient"] == "未报告"
    assert (by_code["220100"]["col"], by_code["220100"]["row"]) == (tiles()["220100"][0] + 1, tiles()["220100"][1] + 1)

"""Mutual recognition (检查检验结果互认): generated lab and exam results of one patient carried
to other institutions; windows from the catalogue decide what is recognisable, what is a
repeat (QC_REPEAT_TEST) and what the report counts and prices."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from phip.quality.run import analyse
from phip.quality.tables import QualityFinding
from phip.recognition import load_catalog, recognizable
from phip.recognition.catalog import Catalog, CatalogError
from phip.reports import export
from phip.reports.period import Period
from phip.reports.recognition import recognition_report
from phip.standard.catalog import load_standard
from phip.store.models import Record
from phip.synth.generator import Generator

D0 = date.today() - timedelta(days=25)
PERSON = ("patient_id", "name", "sex_code", "birth_date", "id_type_code", "id_no")


def shifted(rec: dict, dataset: str, days: int, org: tuple[str, str], **changes: object) -> dict:
    """A copy of a generated record moved ``days`` later to another institution."""
    out = {**rec, "org_code": org[0], "org_name": org[1], **changes}
    for f in load_standard().dataset(dataset).fields:
        if f.type == "datetime" and out.get(f.name) and f.name not in changes:
            out[f.name] = (datetime.fromisoformat(str(out[f.name])) + timedelta(days=days)).isoformat(sep=" ")
    return out


@pytest.fixture()
def patient(engine, pipeline, orgs):  # noqa: ANN001
    """One generated patient at institution A on day D0: a blood routine item (WBC), a glucose
    (GLU) and a CT, received the next evening; their other results are left out."""
    a = orgs[0]
    received = datetime.combine(D0 + timedelta(days=1), time(23, 59))
    wanted = ["patient_info", "outpatient_visit", "lab_report", "exam_report", "fee_detail"]
    batches = {ds: recs for _, ds, recs in Generator(seed=31).day([a], D0, visits=20, admissions=0, now=received,
                                                                   datasets=wanted)}
    labs = batches["lab_report"]
    report_no = next(r["report_no"] for r in labs if sum(x["report_no"] == r["report_no"] for x in labs) >= 2
                     and r.get("id_no"))
    items = [r for r in labs if r["report_no"] == report_no][:2]
    who = {k: items[0][k] for k in PERSON if k in items[0]}
    items[0].update(item_local_code="WBC", item_name="白细胞计数")
    items[1].update(item_local_code="GLU", item_name="葡萄糖")
    ct = {**batches["exam_report"][0], **who, "visit_no": items[0]["visit_no"], "exam_modality_code": "CT",
          "exam_site": "胸部", "report_no": "CT-A-1"}
    ct.update(apply_time=items[0]["apply_time"] if "apply_time" in items[0] else items[0]["report_time"],
              exam_time=items[0]["report_time"], report_time=items[0]["report_time"])
    ct.pop("audit_time", None)
    batches["lab_report"] = [r for r in labs if r.get("id_no") != who["id_no"]] + items
    batches["exam_report"] = [r for r in batches["exam_report"][1:] if r.get("id_no") != who["id_no"]] + [ct]
    for ds, recs in batches.items():
        assert pipeline.ingest(a[0], ds, recs, now=received).rejected == 0, ds
    with engine.connect() as conn:
        person = conn.execute(select(Record.person_id).where(Record.dataset == "lab_report",
                                                             Record.record_key == f"{report_no}|{items[0]['item_no']}")).scalar_one()
    visit = next(v for v in batches["outpatient_visit"] if v.get("id_no") == who["id_no"])
    return {"a": a, "items": items, "ct": ct, "person": person, "visit": visit, "fee": batches["fee_detail"][0]}


def carry(pipeline, p, org, days: int, tag: str, received: datetime | None = None) -> list[dict]:  # noqa: ANN001
    """The patient's two lab items done again at ``org`` ``days`` later."""
    recs = [shifted(r, "lab_report", days, org, report_no=f"{tag}-{r['report_no']}") for r in p["items"]]
    when = received or datetime.fromisoformat(recs[0]["report_time"]) + timedelta(hours=2)
    assert pipeline.ingest(org[0], "lab_report", recs, now=when).rejected == 0
    return recs


def repeat_findings(engine, org_code: str) -> dict:  # noqa: ANN001
    analyse(engine, org_code, D0, D0 + timedelta(days=20), dataset="lab_report")
    with engine.connect() as conn:
        rows = conn.execute(select(QualityFinding).where(QualityFinding.org_code == org_code,
                                                         QualityFinding.code == "QC_REPEAT_TEST")).all()
    return {r.record_key.split("|")[0].split("-")[0] + ":" + str(r.detail["item"]): r for r in rows}


def test_repeats_inside_the_window_are_findings(engine, pipeline, orgs, patient):
    a, b, c, e = patient["a"], orgs[1], orgs[2], orgs[3]
    carry(pipeline, patient, b, 2, "B")  # both items within their windows (7 and 14 days)
    carry(pipeline, patient, c, 10, "C")  # blood routine expired (7 days), glucose not (14 days)
    # ordered the day after, before A's result reached the platform (A sent it at 23:59 that day): no
    # repeat; E sent its own days later, after B and C had ordered theirs
    carry(pipeline, patient, e, 1, "E", received=datetime.combine(D0 + timedelta(days=12), time(9)))
    found_b = repeat_findings(engine, b[0])
    assert sorted(found_b) == ["B:白细胞计数", "B:葡萄糖"]
    wbc = found_b["B:白细胞计数"]
    assert wbc.dimension == "uniqueness" and a[1] in wbc.message and "7天" in wbc.message
    assert wbc.detail["earlier_org_code"] == a[0]
    assert sorted(repeat_findings(engine, c[0])) == ["C:葡萄糖"]
    assert repeat_findings(engine, e[0]) == {}
    assert repeat_findings(engine, a[0]) == {}  # the first result is no repeat


def test_recognizable_follows_windows_and_quality_assessment(engine, pipeline, orgs, patient):
    a, b = patient["a"], orgs[1]
    carry(pipeline, patient, b, 2, "B")
    reported = datetime.fromisoformat(patient["items"][0]["report_time"])
    person = [patient["person"]]

    def seen(at: datetime) -> set[tuple[str, str]]:
        return {(r.org_code, r.item.code) for r in recognizable(engine, person, at)}

    assert seen(reported + timedelta(days=3)) == {(a[0], "WBC"), (a[0], "GLU"), (a[0], "CT:胸部"), (b[0], "WBC"), (b[0], "GLU")}
    assert seen(reported + timedelta(days=8)) == {(a[0], "GLU"), (a[0], "CT:胸部"), (b[0], "WBC"), (b[0], "GLU")}
    assert seen(reported + timedelta(days=29)) == {(a[0], "CT:胸部")}
    assert seen(reported + timedelta(days=31)) == set()
    assert recognizable(engine, ["nobody"], reported) == []
    # A failed its external quality assessment of glucose before the result: not recognisable
    eqa = {"org_code": a[0], "org_name": a[1], "lab_name": "检验科", "eqa_organizer": "省临床检验中心", "eqa_year": D0.year,
           "eqa_round": "1", "item_local_code": "GLU", "item_name": "葡萄糖", "sample_no": "S1", "item_pass_flag": False,
           "evaluation_date": (D0 - timedelta(days=30)).isoformat()}
    assert pipeline.ingest(a[0], "lab_center", [eqa], now=reported).rejected == 0
    assert seen(reported + timedelta(days=3)) == {(a[0], "WBC"), (a[0], "CT:胸部"), (b[0], "WBC"), (b[0], "GLU")}


def test_report_counts_recognised_repeated_and_cost(engine, pipeline, orgs, patient, tmp_path):
    b, c, d = orgs[1], orgs[2], orgs[3]
    carry(pipeline, patient, b, 2, "B")
    carry(pipeline, patient, c, 10, "C")
    fee = shifted(patient["fee"], "fee_detail", 2, b, fee_detail_no="FB1", charge_item_local_code="X-CBC",
                  charge_item_name="血常规", unit_price=25.0, quantity=1, amount=25.0, refund_flag=False,
                  **{k: patient["items"][0][k] for k in PERSON if k in patient["items"][0] and k != "sex_code" and k != "birth_date"})
    assert pipeline.ingest(b[0], "fee_detail", [fee], now=datetime.fromisoformat(fee["charge_time"]) + timedelta(hours=1)).rejected == 0
    visit = shifted(patient["visit"], "outpatient_visit", 3, d, visit_no="MZ-D-1")  # at D without any test
    assert pipeline.ingest(d[0], "outpatient_visit", [visit], now=datetime.fromisoformat(visit["visit_time"]) + timedelta(hours=1)).rejected == 0

    report = recognition_report(engine, Period(D0, D0 + timedelta(days=20)))
    rows = {r.key: r for r in report.rows}
    rb, rc, rd = rows[b[0]], rows[c[0]], rows[d[0]]
    assert rb.repeated == 2 and rb.repeat_cost == 25.0 and rb.unpriced >= 1  # glucose has no fee at B
    assert rb.opportunities >= 2 and rb.recognised == rb.opportunities - 2
    assert rc.repeated == 1  # glucose only
    # at D: B's two results (newest) and A's CT were usable and nothing was repeated
    assert (rd.opportunities, rd.recognised, rd.repeated) == (3, 3, 0)
    assert rd.saved_cost == 25.0  # the blood routine priced at B (D has no fee): the province's median
    assert rows[patient["a"][0]].repeated == 0
    assert report.total.repeated == 3 and report.total.recognised == sum(r.recognised for r in report.rows)
    assert rd.rate == 1.0 and rows[orgs[5][0]].rate is None

    region = recognition_report(engine, Period(D0, D0 + timedelta(days=20)), "region")
    assert sum(r.repeated for r in region.rows) == 3 and region.total.opportunities == report.total.opportunities
    data = export.recognition_xlsx(report, tmp_path / "r.xlsx")
    assert data[:2] == b"PK"
    ws = load_workbook(tmp_path / "r.xlsx").active
    assert "互认" in ws.cell(1, 1).value and ws.cell(2, 3).value == "已互认（项）"
    by_name = {ws.cell(r, 1).value: [ws.cell(r, k).value for k in range(2, 9)] for r in range(3, ws.max_row + 1)}
    assert by_name[d[1]][:3] == [3, 3, 0] and by_name["全省合计"][2] == 3


def test_catalog_is_checked_and_covers_the_generated_items(tmp_path):
    from phip.synth import vocab

    cat = load_catalog()
    assert isinstance(cat, Catalog) and cat.longest_window == 30
    assert all(cat.lab_item(code, name) for code, name, *_ in vocab.LAB_ITEMS)
    assert cat.lab_item(" wbc ").code == "WBC" and cat.lab_item("x", "血糖").code == "GLU"
    assert cat.classify("exam_report", {"exam_modality_code": "ES"}) is None  # endoscopy: not recognised
    bad = tmp_path / "w.yaml"
    bad.write_text("categories:\n  x: {name: X, dataset: lab_report, window_days: 0}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="window_days"):
        load_catalog(bad)

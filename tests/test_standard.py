"""The standard as data: coverage and coherence of the 72 data sets of the docking notice, the
resident health-record extensions after them, and their value domains."""

from __future__ import annotations

import jsonschema
import pytest
from openpyxl import load_workbook

from phip.standard import export
from phip.standard.catalog import load_standard
from phip.synth.generator import Generator

STD = load_standard()


ALL = len(STD.datasets)  # the notice's 72 and the extensions


def test_seventy_two_datasets_numbered_like_the_notice():
    assert [d.number for d in STD.notice_datasets] == list(range(1, 73))
    assert len({d.number for d in STD.datasets}) == ALL and all(d.number > 72 for d in STD.datasets if not d.notice)
    assert {d.code for d in STD.datasets if d.category == "public_health"} == {
        "resident_profile", "hypertension_followup", "diabetes_followup", "chronic_disease_enrolment"}
    assert {d.category for d in STD.datasets if not d.notice} == {"public_health", "internet_hospital"}
    assert all(d.category == "internet_hospital" for d in STD.datasets if 81 <= d.number <= 99)
    assert STD.dataset("1").code == "patient_info"
    assert STD.dataset("门诊/急诊就诊记录").code == "outpatient_visit"
    assert STD.dataset(72).name == "临检中心信息"


@pytest.mark.parametrize("ds", STD.datasets, ids=lambda d: d.code)
def test_dataset_is_complete(ds):
    assert len(ds.fields) >= 8
    assert ds.natural_key and ds.event_time
    assert ds.fields[0].name == "org_code"
    for f in ds.fields:
        assert f.type in ("string", "text", "code", "int", "decimal", "date", "datetime", "bool")
        if f.type == "code":
            assert f.domain in STD.domains, f"{ds.code}.{f.name} is bound to no known domain"
        if f.name.endswith("_code") and not f.name.endswith("_local_code") and f.name not in ("org_code", "dept_code"):
            assert f.type == "code", f"{ds.code}.{f.name} looks coded but has no value domain"
    if ds.category in ("patient", "outpatient", "prescription", "fee", "inpatient", "emr", "surgery", "nursing", "consent",
                       "public_health"):
        assert {"patient_id", "name"} <= set(ds.person), f"{ds.code} names no person"


def test_patient_master_data_is_rich():
    assert len(STD.dataset("patient_info").fields) >= 25


def test_required_value_domains():
    for id, minimum in {"sex": 4, "id_type": 8, "ethnicity": 56, "marital_status": 8, "abo_blood": 5, "rh_blood": 4,
                        "visit_type": 4, "admission_route": 4, "discharge_disposition": 6, "payment_method": 9}.items():
        assert len(STD.domain(id).codes) >= minimum, id
    ethnic = STD.domain("ethnicity").code_map
    assert ethnic["01"] == "汉族" and ethnic["56"] == "基诺族"
    assert STD.domain("icd10").kind == "code_system" and STD.domain("icd9cm3").pattern


def test_jsonschema_export_accepts_generated_records_and_rejects_bad_ones(tmp_path):
    paths = export.export_jsonschema(STD, tmp_path)
    assert len(paths) == ALL and (tmp_path / "outpatient_visit.schema.json").exists()
    schema = export.dataset_schema(STD, STD.dataset("outpatient_visit"))
    assert schema["properties"]["sex_code"]["enum"] == ["0", "1", "2", "9"]
    assert schema["properties"]["name"]["title"] == "患者姓名"
    assert "visit_no" in schema["required"]
    gen = Generator(seed=5)
    import datetime as dt

    for _, code, records in gen.day([("12220104412001376B", "测试医院")], dt.date.today() - dt.timedelta(days=1),
                                    visits=5, admissions=2):
        validator = jsonschema.Draft202012Validator(export.dataset_schema(STD, STD.dataset(code)))
        for r in records:
            errors = list(validator.iter_errors(r))
            assert not errors, (code, errors[0].message)
    bad = {"org_code": "x", "sex_code": "7"}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))


def test_html_and_xlsx_exports(tmp_path):
    page = export.export_html(STD, tmp_path).read_text(encoding="utf-8")
    assert "全民健康信息平台医疗机构数据采集标准" in page and "<script" not in page
    assert page.count("<h2 id=") == ALL + 1
    wb = load_workbook(export.export_xlsx(STD, tmp_path), read_only=True)
    names = wb.sheetnames
    assert names[:2] == ["封面", "数据集目录"] and "01 患者基本信息" in names and "值域 民族代码" in names
    assert sum(1 for n in names if n[:2].isdigit()) == ALL and len(set(names)) == len(names)
    assert all(n.isascii() is False for n in names), "every sheet name is Chinese"
    cover = {r[0]: r[1] for r in wb["封面"].iter_rows(values_only=True) if r and r[0]}
    assert cover["发布单位"] == STD.issuer == "省卫生健康信息中心" and cover["版本"] == STD.version
    assert cover["发布日期"] == STD.published and "吉林省" in wb["封面"]["A1"].value
    rows = list(wb["值域 民族代码"].iter_rows(values_only=True))
    assert len(rows) == 2 + 58
    assert "吉林省" in page and STD.published in page and STD.issuer in page


def test_sheet_titles_are_excel_safe_and_unique():
    taken: set[str] = set()
    first = export.sheet_title("出院/转院[记录]:" + "长" * 40, taken)
    second = export.sheet_title("出院/转院[记录]:" + "长" * 40, taken)
    assert len(first) == len(second) == 31 and first != second
    assert not set("[]:*?/\\") & set(first + second)


def test_schema_id_follows_the_publishing_address(monkeypatch):
    ds = STD.dataset("outpatient_visit")
    monkeypatch.delenv("PHIP_STANDARD_BASE_URL", raising=False)
    assert export.dataset_schema(STD, ds)["$id"] == f"urn:phip:standard:{STD.version}:outpatient_visit"
    monkeypatch.setenv("PHIP_STANDARD_BASE_URL", "https://wsjkw.jl.gov.cn/phip/standard/")
    assert export.dataset_schema(STD, ds)["$id"] == (
        f"https://wsjkw.jl.gov.cn/phip/standard/{STD.version}/outpatient_visit.schema.json")


def test_platform_yaml_files_load_alike_with_libyaml_and_pure_python():
    """The platform's data files go through libyaml when PyYAML has it (phip.datafiles):
    every file must give exactly what the pure-Python safe loader gives."""
    from pathlib import Path

    import yaml

    from phip import datafiles

    files = sorted(Path(datafiles.__file__).parent.glob("*/data/**/*.yaml"))
    assert len(files) > ALL  # the data sets and the other areas' files
    for path in files:
        assert datafiles.load_yaml(path) == yaml.safe_load(path.read_text(encoding="utf-8")), path.name

"""The probe's matching rules, without a database: synonyms in English, pinyin and Chinese, English
names read word by word, sample values that veto a match, and how a join target is chosen."""

from __future__ import annotations

import pytest

from phip.collect.probe import ColumnInfo, TableInfo, _edges, score, translations, words
from phip.standard.catalog import load_standard

STD = load_standard()
PATIENT = STD.dataset("patient_info")


@pytest.mark.parametrize(("field", "names"), [
    ("sex_code", ["gender", "sex", "XB", "xb", "xingbie", "SEX_CODE"]),
    ("birth_date", ["date_of_birth", "birthday", "birth_date", "CSRQ", "csrq", "DateOfBirth"]),
    ("id_no", ["identification_no", "id_card", "idcard", "SFZH", "sfzh", "ID_CARD_NO"]),
    ("name", ["name", "patient_name", "BRXM", "xingming"]),
    ("phone", ["phone_no", "mobile", "LXDH", "tel"]),
])
def test_column_names_in_english_pinyin_and_initials(field, names):
    spec = PATIENT.field(field)
    kind = "DATE" if spec.type == "date" else "VARCHAR(40)"
    for name in names:
        s, reason = score(spec, ColumnInfo(name, kind, None), PATIENT.code)
        assert s >= 80, (field, name, s)
        assert reason
    # and not for a column that means something else
    assert score(spec, ColumnInfo("remark", "VARCHAR(40)", None), PATIENT.code)[0] == 0


@pytest.mark.parametrize(("field", "comment"), [
    ("sex_code", "性别"), ("birth_date", "出生日期"), ("id_no", "身份证号"), ("name", "病人姓名"), ("id_no", "证件号码"),
])
def test_chinese_comments_on_cryptic_names(field, comment):
    spec = PATIENT.field(field)
    kind = "DATE" if spec.type == "date" else "VARCHAR(40)"
    assert score(spec, ColumnInfo("F007", kind, comment), PATIENT.code)[0] >= 90


def test_sample_values_confirm_or_veto():
    id_no = PATIENT.field("id_no")
    good = ColumnInfo("id_card", "VARCHAR(18)", None, samples=["110101199003070014", "22010219850312002X"])
    bad = ColumnInfo("id_card", "VARCHAR(18)", None, samples=["A123", "B456", "C789"])
    assert score(id_no, good, PATIENT.code)[0] > score(id_no, bad, PATIENT.code)[0]
    birth = PATIENT.field("birth_date")
    assert score(birth, ColumnInfo("CSRQ", "INTEGER", "出生日期"), PATIENT.code)[0] == 0  # never a date on a number
    texts = ColumnInfo("CSRQ", "VARCHAR(8)", "出生日期", samples=["19850312", "20010101"])
    junk = ColumnInfo("CSRQ", "VARCHAR(8)", "出生日期", samples=["abc", "xyz"])
    assert score(birth, texts, PATIENT.code)[0] >= 90 and score(birth, junk, PATIENT.code)[0] < 50


def test_english_names_read_word_by_word():
    assert words("registerType") == ["register", "type"] and words("MAIN_DIAG_CODE") == ["main", "diag", "code"]
    assert translations("registerType") == ("挂号类别",)
    assert "主诊断代码" in translations("mainDiagCode")
    assert translations("xyzType") == ()  # an unknown word: no reading
    assert translations("id") == ()  # one word is for the name lists
    reg = STD.dataset("outpatient_registration")
    assert score(reg.field("registration_type_code"), ColumnInfo("registerType", "VARCHAR(10)", None), reg.code)[0] >= 80


def _t(name: str, cols: list[str], pk: str | None = "id") -> TableInfo:
    return TableInfo(name, None, 0, [ColumnInfo(c, "INTEGER", None) for c in cols], primary_key=[pk] if pk else [])


def test_join_targets_by_convention():
    items = _t("dms_medicine_item_record", ["id", "prescription_id", "drug_id"])
    tables = [items, _t("dms_herbal_prescription_record", ["id", "registration_id"]),
              _t("dms_medicine_prescription_record", ["id", "registration_id"]), _t("dms_drug", ["id", "code"]),
              _t("dms_non_drug_item_record", ["id", "registration_id"]), _t("dms_registration", ["id", "patient_id"]),
              _t("pms_patient", ["id", "name"])]
    edges = {(col, target.name) for kind, col, target, *_ in _edges(tables)["dms_medicine_item_record"]}
    assert ("prescription_id", "dms_medicine_prescription_record") in edges  # words shared with the items table
    assert ("drug_id", "dms_drug") in edges  # the table named so, not dms_non_drug_item_record
    assert ("patient_id", "pms_patient") in {(c, t.name) for _, c, t, *_ in _edges(tables)["dms_registration"]}

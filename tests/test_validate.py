"""Record validation: each rule with the finding code, field and Chinese message hospitals see."""

from __future__ import annotations

from datetime import datetime

import pytest

from phip.standard.catalog import load_standard
from phip.standard.validate import MESSAGES, validator_for

STD = load_standard()
NOW = datetime(2026, 11, 22, 12, 0, 0)
ORG = "12220104412001376B"


def visit(**overrides):
    base = {
        "org_code": ORG, "org_name": "长春中医药大学附院", "visit_no": "MZ0001", "patient_id": "P0001",
        "name": "张三", "sex_code": "2", "birth_date": "1949-12-31", "id_type_code": "01", "id_no": "11010519491231002X",
        "visit_type_code": "1", "dept_code": "0301", "dept_name": "心血管内科", "visit_time": "2026-11-21 09:30:00",
        "diagnosis_code": "I10.x00", "diagnosis_name": "原发性高血压",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def check(record, dataset="outpatient_visit"):
    return validator_for(STD, STD.dataset(dataset)).validate(record, NOW)


def codes(outcome):
    return {(f.code, f.field, f.severity) for f in outcome.findings}


def test_clean_record_is_normalised():
    out = check(visit(sex_code=2, id_no="１１０１０５１９４９１２３１００２x", visit_time="2026/11/21 09:30", name="  张三\u3000"))
    assert out.accepted and not out.findings
    r = out.record
    assert r["sex_code"] == "2" and r["id_no"] == "11010519491231002X" and r["name"] == "张三"
    assert r["visit_time"] == datetime(2026, 11, 21, 9, 30)


@pytest.mark.parametrize("spelling", ["2026-11-21T09:30:00", "2026-11-21 09:30:00", "20261121093000",
                                      "20261121T093000", "2026-11-21T01:30:00Z", "2026.11.21 09:30:00"])
def test_datetime_spellings(spelling):
    out = check(visit(visit_time=spelling))
    assert out.accepted and out.record["visit_time"] == datetime(2026, 11, 21, 9, 30)


@pytest.mark.parametrize(
    "overrides, code, field",
    [
        ({"visit_no": None}, "REQUIRED", "visit_no"),  # the natural key
        ({"visit_no": "  "}, "REQUIRED", "visit_no"),
        ({"visit_no": "M" * 40}, "TOO_LONG", "visit_no"),
        ({"visit_no": ["MZ1"]}, "BAD_VALUE_TYPE", "visit_no"),
        ({"visit_time": None}, "REQUIRED", "visit_time"),  # the event time
        ({"visit_time": "2026-02-30 10:00:00"}, "BAD_DATETIME", "visit_time"),
        ({"visit_time": "2026-11-23 10:00:00"}, "DATE_IN_FUTURE", "visit_time"),
        ({"visit_time": "1899-11-21 10:00:00"}, "DATE_BEFORE_1900", "visit_time"),
        ({"dept_name": "心内\x00科"}, "NUL_CHARACTER", "dept_name"),
    ],
)
def test_what_cannot_be_stored_is_rejected(overrides, code, field):
    out = check(visit(**overrides))
    assert not out.accepted
    assert (code, field, "error") in codes(out)
    message = next(f.message for f in out.findings if f.code == code)
    assert "【" in message  # Chinese label of the field


@pytest.mark.parametrize(
    "overrides, code, field, stored",
    [
        # a value of the wrong type or outside its value domain is left out of the stored record
        ({"sex_code": "7"}, "NOT_IN_DOMAIN", "sex_code", None),
        ({"age_years": "三十"}, "BAD_INT", "age_years", None),
        ({"total_fee": "abc"}, "BAD_DECIMAL", "total_fee", None),
        ({"first_visit_flag": "maybe"}, "BAD_BOOL", "first_visit_flag", None),
        ({"birth_date": "1985-13-02"}, "BAD_DATE", "birth_date", None),
        ({"birth_date": "1899-12-31"}, "DATE_BEFORE_1900", "birth_date", None),
        ({"name": ["张三"]}, "BAD_VALUE_TYPE", "name", None),
        ({"name": True}, "BAD_VALUE_TYPE", "name", None),  # it was stored as the name "1"
        ({"dept_name": False}, "BAD_VALUE_TYPE", "dept_name", None),
        ({"sex_code": None}, "REQUIRED", "sex_code", None),
        # a value of the right type that breaks a rule is kept as sent
        ({"diagnosis_code": "高血压"}, "BAD_CODE_FORMAT", "diagnosis_code", "高血压"),
        ({"dept_name": "科" * 51}, "TOO_LONG", "dept_name", "科" * 51),
        ({"age_years": 200}, "OUT_OF_RANGE", "age_years", 200),
        ({"registration_time": "2026-11-21 10:00:00"}, "TIME_ORDER", "visit_time", datetime(2026, 11, 21, 9, 30)),
    ],
)
def test_other_defects_are_warnings_on_a_stored_record(overrides, code, field, stored):
    out = check(visit(**overrides))
    assert out.accepted, out.findings
    assert (code, field, "warning") in codes(out)
    assert out.record.get(field) == stored
    message = next(f.message for f in out.findings if f.code == code)
    assert "【" in message
    assert ("该值未保存" in message) == (stored is None and code != "REQUIRED")


def test_a_value_far_beyond_its_length_is_not_kept():
    out = check(visit(dept_name="科" * 40_000))
    assert out.accepted and "dept_name" not in out.record
    assert ("TOO_LONG", "dept_name", "warning") in codes(out)


def test_non_usccc_org_code_only_warns():
    out = check(visit(org_code="X"))
    assert out.accepted and ("USCC_FORMAT", "org_code", "warning") in codes(out)


PATIENT = {"org_code": ORG, "org_name": "x", "patient_id": "P1", "name": "张三", "sex_code": "1",
           "birth_date": "1949-12-31", "id_type_code": "01", "id_no": "110105194912310021",
           "create_time": "2026-01-01 08:00:00", "update_time": "2026-01-01 08:00:00"}


def test_an_invalid_id_number_gets_the_same_verdict_in_every_data_set():
    visit_out = check(visit(id_no="110105194912310021"))
    patient_out = check(PATIENT, "patient_info")
    for out in (visit_out, patient_out):
        assert out.accepted and out.record["id_no"] == "110105194912310021"  # kept as sent
        assert ("ID_NO_CHECKSUM", "id_no", "warning") in codes(out)
        # the message never repeats the number itself
        assert all("110105194912310021" not in f.message for f in out.findings)
    assert {f.code for f in visit_out.findings if f.field == "id_no"} == {f.code for f in patient_out.findings if f.field == "id_no"} - {"ID_NO_SEX_MISMATCH"}


def test_a_patient_without_an_id_number_is_kept():
    for id_no in (None, "", "1101051949"):
        out = check({**PATIENT, "id_no": id_no}, "patient_info")
        assert out.accepted, out.findings
        assert {f.severity for f in out.findings} == {"warning"}


def test_every_failed_id_check_is_named():
    # region 00, month 31, wrong check character, 17th digit odd (male) on a woman, another birth date
    out = check({**PATIENT, "id_no": "000105195631010013", "sex_code": "2", "birth_date": "1956-01-01"}, "patient_info")
    assert out.accepted
    found = {f.code for f in out.findings if f.field == "id_no"}
    assert found == {"ID_NO_REGION", "ID_NO_BIRTH", "ID_NO_CHECKSUM", "ID_NO_SEX_MISMATCH"}
    # a truncated number: its format, and what its readable digits still say
    out = check({**PATIENT, "id_no": "11010519491231002", "sex_code": "1"}, "patient_info")
    found = {f.code for f in out.findings if f.field == "id_no"}
    assert found == {"ID_NO_FORMAT", "ID_NO_SEX_MISMATCH"}  # digit 17 is 2: female
    out = check({**PATIENT, "id_no": "11010519491231002", "birth_date": "1949-12-30"}, "patient_info")
    assert {f.code for f in out.findings if f.field == "id_no"} == {"ID_NO_FORMAT", "ID_NO_BIRTH_MISMATCH", "ID_NO_SEX_MISMATCH"}


def test_id_number_upgrade_and_consistency():
    out = check(visit(id_no="110105491231002", birth_date="1949-12-31", sex_code="2"))
    assert out.accepted
    assert out.record["id_no"] == "11010519491231002X"
    found = codes(out)
    assert ("ID_NO_UPGRADED", "id_no", "warning") in found
    assert ("ID_NO_SEX_MISMATCH", "id_no", "warning") not in found  # 17th digit 2 is even: female
    out = check(visit(birth_date="1950-01-01"))
    assert ("ID_NO_BIRTH_MISMATCH", "id_no", "warning") in codes(out)


def test_a_fifteen_digit_number_takes_the_century_of_the_records_birth_date():
    """15-digit numbers were issued before 1999, but hospital systems also cut the century out
    of later numbers: when the record's birth date says 20YYMMDD for the same digits, the
    18-digit form is 20YY (the EMPI then links it to the person holding that 18-digit number)."""
    out = check(visit(id_no="110105050312002", birth_date="2005-03-12", sex_code="2"))
    assert out.accepted and out.record["id_no"].startswith("11010520050312002")
    assert ("ID_NO_BIRTH_MISMATCH", "id_no", "warning") not in codes(out)
    out = check(visit(id_no="110105050312002", birth_date="1905-03-12", sex_code="2"))
    assert out.record["id_no"].startswith("11010519050312002")


def test_passport_numbers_are_not_checked_as_id_cards():
    out = check(visit(id_type_code="03", id_no="E12345678"))
    assert out.accepted and not out.findings


def test_domain_aliases_and_unknown_fields():
    out = check(visit(payment_method_code="1", hobby="钓鱼"))
    assert out.accepted and out.record["payment_method_code"] == "01"
    assert "hobby" not in out.record
    assert ("UNKNOWN_FIELD", "hobby", "warning") in codes(out)


def test_phone_is_normalised_or_warned():
    record = {"org_code": ORG, "org_name": "x", "patient_id": "P1", "name": "张三", "sex_code": "2",
              "birth_date": "1949-12-31", "id_type_code": "01", "id_no": "11010519491231002X",
              "create_time": "2026-01-01 08:00:00", "update_time": "2026-01-01 08:00:00", "phone": "138 0431 1234"}
    out = check(record, "patient_info")
    assert out.record["phone"] == "13804311234"
    out = check({**record, "phone": "12345"}, "patient_info")
    assert out.accepted and ("PHONE_FORMAT", "phone", "warning") in codes(out)


def test_not_an_object():
    out = check(["a", "b"])
    assert not out.accepted and out.findings[0].code == "NOT_AN_OBJECT"
    # said in the words of JSON, not Python's type names (int, str, NoneType)
    assert [check(v).findings[0].message for v in (7, "x", None, ["a"], True)] == [
        f"记录必须是JSON对象（键值对），实际为{kind}" for kind in ("数值", "文本", "null", "数组", "true/false")]


def test_every_message_template_is_chinese():
    for code, (severity, template) in MESSAGES.items():
        assert severity in ("error", "warning")
        assert code.isupper()
        assert any("\u4e00" <= ch <= "\u9fff" for ch in template) or template in ("{reason}", "【{label}】{detail}")


def test_dates_and_times_decoded_by_a_driver_are_taken_as_they_are():
    from datetime import date, timedelta, timezone

    utc = timezone(timedelta(0))
    out = check(visit(birth_date=datetime(1949, 12, 31, 0, 0), visit_time=datetime(2026, 11, 21, 9, 30, 0, 123456)))
    assert out.accepted and not out.findings
    assert out.record["birth_date"] == date(1949, 12, 31) and out.record["visit_time"] == datetime(2026, 11, 21, 9, 30)
    assert check(visit(visit_time=date(2026, 11, 21))).record["visit_time"] == datetime(2026, 11, 21)
    aware = check(visit(visit_time=datetime(2026, 11, 21, 1, 30, tzinfo=utc)))  # 01:30 UTC is 09:30 in Beijing
    assert aware.record["visit_time"] == datetime(2026, 11, 21, 9, 30)
    future = check(visit(visit_time=datetime(2026, 11, 23, 9, 30)))  # the checks still apply
    assert not future.accepted and ("DATE_IN_FUTURE", "visit_time", "error") in codes(future)


_SAMPLES = [
    "", " ", "  A01  ", "A01.001", "I10.x00", "I10.X00", "高血压", "心血管内科", " 张三\u3000", "ＡＢＣ１２３", "1", "01", "2",
    " 2 ", "9", "true", "否", "Y", "x" * 300, "2026-11-21", "2026-11-21 09:30:00", "2026-11-21T09:30:00", "2026-02-30",
    "2026-13-01 09:30:00", "1899-12-31", "20261121", 0, 1, 2, -1, 37, 150, 10**20, True, False, 1.0, 1.5, 12.11,
    float("nan"), None, [], {"a": 1}, "A01\x00", "张\x00三", "1\x00", "2026-11-21\x00", 2.2010219340628352e17,
    999999999999999.0, "2.20102E+17",
]


def test_shortcuts_give_exactly_what_the_converters_give(monkeypatch):
    """The validator takes the usual values (text, codes, ICD codes, dates, JSON integers and
    booleans) without calling the field's converter; every field of every data set, given
    the usual and the unusual, must come out as the converter alone makes it: same value,
    same findings."""
    from phip.standard import fields
    from phip.standard import validate as v

    seen = set()  # one field per kind of field (type, value domain, length, pattern, bounds …)
    for dataset in STD.datasets:
        fast = v.RecordValidator(dataset, STD)
        monkeypatch.setattr(v, "shortcut", lambda spec, standard: (fields.OTHER, None))
        slow = v.RecordValidator(dataset, STD)
        monkeypatch.undo()
        for spec in dataset.fields:
            kind = (spec.type, spec.domain, spec.length, spec.scale, spec.pattern, spec.min, spec.max, spec.check,
                    spec.required, spec.allow_future)
            if kind in seen:
                continue
            seen.add(kind)
            for value in _SAMPLES:
                a, b = fast.validate({spec.name: value}, NOW), slow.validate({spec.name: value}, NOW)
                assert (a.record, a.findings) == (b.record, b.findings), (dataset.code, spec.name, value)
                if a.record:
                    assert [type(x) for x in a.record.values()] == [type(x) for x in b.record.values()]


def test_a_nul_character_is_rejected_in_every_kind_of_field():
    """PostgreSQL stores no U+0000: whatever the field (text, code, ICD code, date, pattern),
    a value carrying one is an error on that field, never a stored value."""
    seen = set()
    for dataset in STD.datasets:
        validator = validator_for(STD, dataset)
        for spec in dataset.fields:
            if (spec.type, spec.domain, spec.pattern) in seen:
                continue
            seen.add((spec.type, spec.domain, spec.pattern))
            for value in ("A01.001\x00", "\x00", "高血压\x00", "2026-11-21\x00", "1\x00"):
                out = validator.validate({spec.name: value}, NOW)
                assert out.record is None, (dataset.code, spec.name, value)
                assert ("NUL_CHARACTER", spec.name) in [(f.code, f.field) for f in out.findings], (dataset.code, spec.name)


def test_long_numbers_that_lost_their_digits_are_said_so():
    """An 18-digit ID number typed into Excel as a number reads back as 2.2010219340628352e17
    (…283520): stored as text it would be a wrong number, so it is an error that says why.
    Exported to CSV it reads 2.20102E+17: the ID and phone checks say what probably happened.
    Whole numbers Excel does hold exactly (15 digits) are still taken."""
    lost = check(visit(visit_no=2.2010219340628352e17))
    assert not lost.accepted and codes(lost) == {("NUMBER_PRECISION_LOST", "visit_no", "error")}
    assert "文本格式" in lost.findings[0].message
    assert check(visit(visit_no=999999999999999.0)).record["visit_no"] == "999999999999999"
    sci = check(visit(id_no="2.20102E+17"))
    id_finding = next(f for f in sci.findings if f.field == "id_no")
    assert "科学计数法" in id_finding.message and "2.20102" not in id_finding.message  # never echoed
    phone = check({"patient_id": "P1", "name": "张三", "phone": "1.38001E+10"}, dataset="patient_info")
    assert any(f.code == "PHONE_FORMAT" and "科学计数法" in f.message for f in phone.findings)


def test_an_excel_id_number_typed_as_a_number_is_not_stored_rounded(tmp_path):
    from openpyxl import Workbook

    from phip.ingest.readers import read_records

    wb = Workbook()
    wb.active.append(["visit_no", "id_no", "age_years"])
    wb.active.append(["MZ1", 220102193406283534, 40.0])
    wb.save(tmp_path / "v.xlsx")
    (row,) = list(read_records(tmp_path / "v.xlsx", STD.dataset("outpatient_visit")))
    assert row["age_years"] == 40 and isinstance(row["age_years"], int)
    assert isinstance(row["id_no"], float)  # left for validation to refuse, not rounded into …283520
    out = check(visit(id_no=row["id_no"]))
    assert ("NUMBER_PRECISION_LOST", "id_no", "warning") in codes(out) and "id_no" not in out.record


def test_a_record_carrying_a_whole_foreign_row_gets_eleven_warnings_not_three_hundred():
    """A hospital system sending its own internal columns: the first ten unknown fields are
    named, the rest counted in one finding; the record itself is kept."""
    extra = {f"HIS_COL_{i:03d}": i for i in range(300)}
    out = check(visit(**extra))
    assert out.accepted
    unknown = [f for f in out.findings if f.code.startswith("UNKNOWN_FIELD")]
    assert [f.field for f in unknown[:10]] == [f"HIS_COL_{i:03d}" for i in range(10)]
    assert len(unknown) == 11 and unknown[10].code == "UNKNOWN_FIELDS_MORE" and unknown[10].field is None
    assert "另有290个字段" in unknown[10].message and "HIS_COL_010" in unknown[10].message
    assert len(check(visit(**dict(list(extra.items())[:10]))).findings) == 10  # ten are still named one by one


def test_a_message_quotes_at_most_200_characters_of_a_value():
    """A cell that swallowed the rest of a file was quoted whole in its finding (99,718
    characters served in every feedback answer); the quote is cut, its length said."""
    out = check(visit(sex_code="男" + "x" * 5000))
    message = next(f.message for f in out.findings if f.code == "NOT_IN_DOMAIN")
    assert len(message) < 400 and "（共5001字）" in message, message

"""The institution register (issue 22) on SQLite and PostgreSQL: add, change, close and re-open
with history; code tables (GB/T 2260, grades, categories, affiliations) enforced; the demo
register's rows valid and their placeholders marked; XLSX import all-or-nothing; the CLI."""

from __future__ import annotations

import csv
import json

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from phip.orgs import codes
from phip.orgs.register import (
    RegisterError, add_institution, check, history, placeholders, set_status, update_institution,
)
from phip.orgs.register_sheet import COLUMNS, export_register, import_register
from phip.orgs.service import SEED
from phip.orgs.tables import InstitutionChange
from phip.standard.checks import uscc_check_char
from phip.standard.sheet import SheetError
from phip.store.models import Institution
from tests.cli_support import run


def uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


NEW = uscc("12220122MB0000001")
SEED_000_HOSPITALS = ["吉林大学第一医院", "吉林大学第一医院（二部）", "吉林大学第二医院", "吉林大学中日联谊医院", "吉林大学口腔医院",
                      "省人民医院", "省中医药科学院第一临床医院", "省妇幼保健院", "省脑科医院", "省结核病医院", "省职业病防治院",
                      "省肿瘤医院", "省前卫医院", "省一汽总医院"]
SEED_000_SYSTEMS = ["人口宏观管理与决策信息系统", "出生医学证明管理系统", "电子居民健康卡省级管理平台", "基层领导驾驶舱系统",
                    "基层医疗卫生机构管理信息系统", "卫生统计直报系统", "药品药械采购服务平台", "儿童免疫规划信息系统"]


def row(engine, code):  # noqa: ANN001, ANN201
    with engine.connect() as conn:
        return conn.execute(select(Institution.__table__).where(Institution.code == code)).first()._mapping


def test_demo_register_rows_are_valid_and_hold_seed_000():
    with SEED.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:  # every code, region, county, grade, category and affiliation from its table
        check({k: v for k, v in r.items() if k in ("code", "name", "kind", "region_code", "county_code", "level",
                                                     "category", "affiliation", "ownership", "docking_method", "placeholder")
               and v is not None} | {"_region_code": r["region_code"]})
    by_name = {r["name"]: r for r in rows}
    for name in SEED_000_HOSPITALS:
        assert by_name[name]["kind"] == "hospital" and by_name[name]["affiliation"] in ("10", "20"), name
        assert "code" in by_name[name]["placeholder"]  # made-up codes are marked
    assert all(by_name[n]["kind"] == "business_system" for n in SEED_000_SYSTEMS)
    assert by_name["政务信息资源共享交换平台"]["kind"] == "external_system"
    attachment_1 = [r for r in rows if r["kind"] == "hospital" and r["name"] not in SEED_000_HOSPITALS]
    assert len(attachment_1) >= 66 and all({"code", "level", "docking_method"} <= set(r["placeholder"].split(";"))
                                           for r in attachment_1[:66])


def test_changbaishan_is_flagged_not_a_gb_code():
    zone = codes.regions()["229900"]
    assert zone.name == "长白山保护开发区" and not zone.gb2260 and zone.level == "zone" and zone.region
    assert all(r.gb2260 for c, r in codes.regions().items() if c != "229900")
    assert codes.regions()["220184"].parent == "220100"  # 公主岭 under 长春 since 2020


def test_add_update_close_reopen_keep_history(engine):
    add_institution(engine, {"code": NEW, "name": "农安县测试医院", "region_code": "220100", "county_code": "220122",
                             "level": "二级甲等", "category": "综合医院", "affiliation": "县属", "docking_method": "数据采集"}, "张三")
    r = row(engine, NEW)
    assert (r["region_name"], r["level"], r["category"], r["affiliation"], r["docking_method"], r["status"]) == (
        "长春市", "二级甲等", "A100", "50", "pull", "active")
    change = update_institution(engine, NEW, {"level": "31", "name": "农安县第二测试医院"}, "李四")
    assert {(f, o, n) for f, o, n in change.fields} == {("level", "二级甲等", "三级甲等"), ("name", "农安县测试医院", "农安县第二测试医院")}
    assert update_institution(engine, NEW, {"level": "三级甲等"}, "李四").fields == []  # no change, no history
    set_status(engine, NEW, "closed", "王五")
    with pytest.raises(RegisterError) as closed_twice:
        set_status(engine, NEW, "closed", "王五")
    assert closed_twice.value.code == "ALREADY_CLOSED"
    set_status(engine, NEW, "active", "王五")
    changes = history(engine, NEW)
    assert [(c.action, c.field, c.old_value, c.new_value, c.changed_by) for c in changes[:2]] == [
        ("reopen", "status", "closed", "active", "王五"), ("close", "status", "active", "closed", "王五")]
    assert {(c.field, c.old_value, c.new_value) for c in changes if c.action == "update"} == {
        ("level", "二级甲等", "三级甲等"), ("name", "农安县测试医院", "农安县第二测试医院")}
    assert {c.field for c in changes if c.action == "add"} >= {"code", "name", "region_code", "county_code", "level"}


@pytest.mark.parametrize(("values", "code", "field"), [
    ({"region_code": "229901"}, "BAD_REGION", "region_code"),
    ({"region_code": "220122"}, "BAD_REGION", "region_code"),  # a county is not a region
    ({"region_code": "220100", "county_code": "220202"}, "BAD_COUNTY", "county_code"),  # 昌邑区 is 吉林市's
    ({"region_code": "220100", "level": "四级甲等"}, "BAD_GRADE", "level"),
    ({"region_code": "220100", "category": "X999"}, "BAD_CATEGORY", "category"),
    ({"region_code": "220100", "affiliation": "乡属"}, "BAD_AFFILIATION", "affiliation"),
    ({"region_code": "220100", "docking_method": "邮寄"}, "BAD_METHOD", "docking_method"),
    ({"region_code": "220100", "code": NEW[:-1] + ("0" if NEW[-1] != "0" else "1")}, "BAD_CODE", "code"),
])
def test_bad_values_are_refused_with_field_and_nothing_written(engine, values, code, field):
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(Institution)).scalar_one()
    with pytest.raises(RegisterError) as exc:
        add_institution(engine, {"code": NEW, "name": "某医院", **values}, "t")
    assert (exc.value.code, exc.value.field) == (code, field) and exc.value.message
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Institution)).scalar_one() == before
        assert conn.execute(select(func.count()).select_from(InstitutionChange)).scalar_one() == 0


def test_duplicates_refused(engine, orgs):
    with pytest.raises(RegisterError) as dup:
        add_institution(engine, {"code": orgs[0][0], "name": "另一家", "region_code": "220100"}, "t")
    assert dup.value.code == "DUPLICATE_ORG"
    with pytest.raises(RegisterError) as name:
        update_institution(engine, orgs[0][0], {"name": orgs[1][1]}, "t")
    assert name.value.code == "DUPLICATE_NAME"


def test_a_value_set_by_a_person_is_no_longer_a_placeholder(engine, orgs):
    code = orgs[0][0]
    assert {"level", "docking_method"} <= placeholders(row(engine, code))
    update_institution(engine, code, {"level": "三级甲等"}, "t")  # confirmed, even unchanged
    left = placeholders(row(engine, code))
    assert "level" not in left and "docking_method" in left


def _sheet(path, header, rows):  # noqa: ANN001, ANN202
    wb = Workbook()
    ws = wb.active
    ws.append(["吉林省医疗机构登记表"])  # a title above the header, as people write them
    ws.append(header)
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_import_register_adds_and_changes_all_or_nothing(engine, orgs, tmp_path):
    header = ["机构代码", "机构名称", "地区代码", "县区代码", "医院等级", "隶属关系", "状态"]
    good = _sheet(tmp_path / "good.xlsx", header, [
        [NEW, "榆树市测试医院", "220100", "220182", "二级甲等", "县属", "在用"],
        [orgs[0][0], orgs[0][1], None, None, "三级乙等", None, "关停"],
    ])
    result = import_register(engine, good, "导入员")
    assert (result.added, result.updated) == (1, 1)
    assert row(engine, orgs[0][0])["level"] == "三级乙等" and row(engine, orgs[0][0])["status"] == "closed"
    assert row(engine, orgs[0][0])["county_code"] is not None  # a blank cell leaves the value
    bad = _sheet(tmp_path / "bad.xlsx", header, [
        [uscc("12220182MB0000002"), "另一家测试医院", "220100", None, "二级甲等", None, None],
        [orgs[1][0], orgs[1][1], "220100", "220202", None, None, None],  # county of 吉林市
    ])
    with pytest.raises(SheetError) as exc:
        import_register(engine, bad, "导入员")
    assert exc.value.code == "BAD_COUNTY" and exc.value.message.startswith("第4行")
    with engine.connect() as conn:
        assert conn.execute(select(Institution.code).where(Institution.name == "另一家测试医院")).first() is None
    assert import_register(engine, good, "导入员").unchanged == 2  # replayed: nothing changes


def test_export_reimports_unchanged(engine, tmp_path):
    path = tmp_path / "register.xlsx"
    path.write_bytes(export_register(engine))
    header = [c.value for c in next(load_workbook(path).active.iter_rows(max_row=1))]
    assert header == [names[0] for names in COLUMNS.values()]
    result = import_register(engine, path, "t")
    assert result.added == 0 and result.updated == 0


# the command line over the register service, which test_register_pages and the tests above
# run on both back ends: the embedded default only
@pytest.mark.slow
@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_cli_add_update_close_reopen_history(engine, tmp_path):
    url = engine.url.render_as_string(hide_password=False)
    run(["orgs", "add", NEW, "--name", "德惠市测试医院", "--region", "220100", "--county", "220183", "--level", "二级甲等",
         "--by", "张三"], tmp_path, database_url=url)
    bad = run(["orgs", "update", NEW, "--county", "222401"], tmp_path, check=False, database_url=url)
    assert bad.returncode == 2 and "BAD_COUNTY" in bad.stderr
    run(["orgs", "update", "德惠市测试医院", "--level", "三级乙等", "--by", "李四"], tmp_path, database_url=url)
    run(["orgs", "close", NEW], tmp_path, database_url=url)
    assert json.loads(run(["orgs", "list", "--name", "德惠市测试", "--status", "closed", "--json"], tmp_path,
                          database_url=url).stdout)[0]["code"] == NEW
    run(["orgs", "reopen", NEW], tmp_path, database_url=url)
    out = run(["orgs", "history", NEW], tmp_path, database_url=url).stdout
    assert "李四" in out and "三级乙等" in out and "重新启用" in out and "关停" in out

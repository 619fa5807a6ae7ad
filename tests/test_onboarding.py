"""Onboarding (seed 000) and the reply form (attachment 3 of seed 002), on SQLite and PostgreSQL:
network status from pushes, 实现 → 中断 after PHIP_ONBOARDING_DAYS, business systems through
their data sets, the weekly XLSX and sentence, the form imported exactly as the notice lays it
out, the blank template, and the dashboard's links."""

from __future__ import annotations

import re
from datetime import timedelta
from io import BytesIO

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from phip.api.app import create_app
from phip.orgs.register import history
from phip.reports.onboarding import onboarding_status, set_network
from phip.reports.onboarding_sheet import HEADER, summary_sentence, to_xlsx, weekly_rows
from phip.reports.reply_form import blank_form, import_reply, region_contacts
from phip.standard.sheet import SheetError
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.synth.generator import Generator
from phip.accounts import create_user

SEED_HEADER = ["序号", "名称", "网络联通", "数据上传", "数据分析"]  # seed 000, as printed
SENTENCE = re.compile(r"^截至\d{1,2}月\d{1,2}日，全省(\d+)家(中省直)?医院、(\d+)个卫生健康业务系统实现与省全民健康信息平台网络联通。"
                      r"其中，(\d+)家医院实现部分电子病历类存量数据上传至省平台，(\d+)家医院完成上传存量数据分析。")


def push(pipeline, org, day, datasets=("outpatient_visit",), source="api"):  # noqa: ANN001, ANN201
    now = platform_now()
    gen = Generator(seed=3)
    for org_code, ds, records in gen.day([(org, "x")], day, visits=3, admissions=1, datasets=list(datasets), now=now):
        pipeline.ingest(org_code, ds, records, source=source, now=now)


def status(engine, code, **kw):  # noqa: ANN001, ANN201
    return next(s for s in onboarding_status(engine, **kw) if s.code == code)


def test_a_push_proves_the_link_and_uploads_revert_to_interrupted(engine, pipeline, orgs, monkeypatch):
    code = orgs[0][0]
    set_network(engine, code, "pending", "t")
    before = status(engine, code)
    assert (before.network, before.labels["upload"], before.link_at) == ("pending", "待实现", None)
    today = platform_now().date()
    push(pipeline, code, today - timedelta(days=1))
    now = status(engine, code)
    assert now.network == "connected" and now.link_at is not None and now.labels["upload"] == "实现"
    assert now.network_set == "pending"  # the setting is kept for when the evidence is old
    later = platform_now() + timedelta(days=8)  # default 7 days without data: 中断, with the date
    gone = status(engine, code, now=later)
    assert gone.network == "pending" and gone.interrupted and not gone.uploading
    assert gone.labels["upload"] == f"中断（{today:%Y-%m-%d}起）" or gone.labels["upload"].startswith("中断（")
    assert gone.last_data is not None and gone.labels["upload"] == f"中断（{gone.last_data + timedelta(days=1):%Y-%m-%d}起）"
    monkeypatch.setenv("PHIP_ONBOARDING_DAYS", "30")
    assert status(engine, code, now=later).uploading  # the window is a setting
    assert [c.new_value for c in history(engine, code) if c.field == "network_status"] == ["pending"]


def test_a_file_import_does_not_prove_the_network(engine, pipeline, orgs):
    code = orgs[1][0]
    set_network(engine, code, "pending", "t")
    push(pipeline, code, platform_now().date(), source="file")
    s = status(engine, code)
    assert s.network == "pending" and s.uploading and s.network_basis.startswith("人工设置")


def test_business_systems_reach_uploading_only_through_their_data_sets(engine, pipeline):
    today = platform_now().date()
    push(pipeline, "BS0006", today, datasets=("outpatient_visit",))  # not a data set of 卫生统计直报
    assert not status(engine, "BS0006").uploading
    push(pipeline, "BS0006", today, datasets=("outpatient_workload",))
    assert status(engine, "BS0006").labels["upload"] == "实现"
    birth = status(engine, "BS0002")  # 出生医学证明: no data set carries it
    assert birth.no_dataset and birth.labels["upload"] == "待实现（无承载数据集）" and birth.analysed is None


def test_weekly_xlsx_is_laid_out_as_seed_000(engine, pipeline, orgs):
    push(pipeline, orgs[0][0], platform_now().date())
    wb = load_workbook(BytesIO(to_xlsx(engine)))
    ws = wb.active
    cells = [[c for c in r] for r in ws.iter_rows(values_only=True)]
    assert list(cells[1]) == SEED_HEADER == list(HEADER)
    m = SENTENCE.match(cells[0][0])
    assert m, cells[0][0]
    headings = [r[0] for r in cells[2:] if r[1] is None]
    assert headings == ["医疗机构", "业务系统", "外部系统"]
    body = [r for r in cells[2:] if r[1] is not None]
    hospitals = body[: len(body) - 9]  # 8 business systems and 1 external system follow
    assert [r[0] for r in hospitals] == list(range(1, len(hospitals) + 1))
    assert int(m[1]) == sum(r[2] == "已联通" for r in hospitals) and int(m[4]) == sum(r[3] == "实现" for r in hospitals) == 1
    assert int(m[3]) == sum(r[2] == "已联通" for r in body[len(hospitals): len(hospitals) + 8])
    provincial = weekly_rows(engine, "provincial")
    assert {"吉林大学第一医院", "省人民医院"} <= {s.name for s in provincial}
    assert orgs[0][1] not in {s.name for s in provincial}  # a city's hospital is not 中省直
    assert "中省直医院" in summary_sentence(provincial, platform_now().date(), "provincial")


def attachment_3(path, region="长春", contacts=(("王秋月", "科长", "88906388", "15568811110"),), rows=()):  # noqa: ANN001, ANN201
    """The form typed into XLSX as the notice prints it (line breaks in the headers included)."""
    wb = Workbook()
    ws = wb.active
    ws.append(["对接工作回执"])
    ws.append([f"市（州）：{region}"])
    ws.append(["一、地区卫生健康行政部门"])
    ws.append(["序号", "对接工作联系人", "职务", "办公电话", "手机号"])
    for n, c in enumerate(contacts, 1):
        ws.append([n, *c])
    ws.append(["..."])
    ws.append(["二、医疗机构"])
    ws.append(["序号", "医疗机构名称", "对接工作\n负责人", "职务", "手机号", "对接\n方式", "对接开始时间"])
    ws.append(["例", "长春市XX医院", "张XX", "主任", "155xxxxxxx", "数据采集", "2021.5.6"])
    for n, r in enumerate(rows, 1):
        ws.append([n, *r])
    ws.append(["..."])
    wb.save(path)
    return path


def test_reply_form_as_attachment_3_imports_both_sections(engine, tmp_path):
    form = attachment_3(tmp_path / "reply.xlsx", rows=[
        ("长春市人民医院", "刘某", "信息科主任", "13844890765", "接口对接", "2021.5.6"),
        ("长春市儿童医院", "赵某", "科长", "15568811110", "数据采集", "2021-05-08"),
    ])
    result = import_reply(engine, form)
    assert (result.region_code, result.contacts, result.institutions) == ("220100", 1, 2)
    [contact] = region_contacts(engine, "220100")
    assert (contact.name, contact.title, contact.office_phone, contact.mobile) == ("王秋月", "科长", "88906388", "15568811110")
    with engine.connect() as conn:
        r = conn.execute(select(Institution.__table__).where(Institution.name == "长春市儿童医院")).one()
    assert (r.contact_name, r.docking_method, str(r.docking_start)) == ("赵某", "pull", "2021-05-08")
    assert "docking_method" not in (r.placeholder or "")  # the reply gave it
    assert any(c.action == "reply" and c.field == "contact_name" and c.new_value == "赵某" for c in history(engine, r.code))
    again = attachment_3(tmp_path / "again.xlsx", contacts=(("相东飞", "处长", "88906388", None),))
    import_reply(engine, again)  # a new form replaces the region's contacts
    assert [c.name for c in region_contacts(engine, "220100")] == ["相东飞"]


@pytest.mark.parametrize(("rows", "code"), [
    ([("长春市人民医院", "刘某", "主任", "12345", "接口对接", "2021.5.6")], "BAD_PHONE"),
    ([("长春市人民医院", "刘某", "主任", "13844890765", "邮寄", "2021.5.6")], "BAD_METHOD"),
    ([("长春市人民医院", "刘某", "主任", "13844890765", "接口对接", "五月")], "BAD_DATE"),
    ([("不存在的医院", "刘某", "主任", "13844890765", "接口对接", "2021.5.6")], "UNKNOWN_ORG"),
    ([("吉林市人民医院", "刘某", "主任", "13844890765", "接口对接", "2021.5.6")], "WRONG_REGION"),
])
def test_bad_reply_rows_write_nothing(engine, tmp_path, rows, code):
    form = attachment_3(tmp_path / "bad.xlsx", rows=[("长春市中医院", "钱某", "主任", "13844890765", "接口对接", "2021.5.6"), *rows])
    with pytest.raises(SheetError) as exc:
        import_reply(engine, form)
    assert exc.value.code == code and exc.value.message.startswith("第")
    assert region_contacts(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(Institution.contact_name).where(Institution.name == "长春市中医院")).scalar_one() is None


def test_unknown_layout_refused_naming_the_header(engine, tmp_path):
    wb = Workbook()
    wb.active.append(["医疗机构名称", "负责人", "对接方式"])  # a plain table, not the notice's form
    wb.active.append(["长春市人民医院", "刘某", "接口对接"])
    wb.save(tmp_path / "plain.xlsx")
    with pytest.raises(SheetError) as exc:
        import_reply(engine, tmp_path / "plain.xlsx")
    assert exc.value.code == "BAD_LAYOUT"
    assert "序号、医疗机构名称、对接工作负责人、职务、手机号、对接方式、对接开始时间" in exc.value.message
    assert "序号、对接工作联系人、职务、办公电话、手机号" in exc.value.message


def test_blank_template_filled_in_imports(engine, tmp_path):
    wb = load_workbook(BytesIO(blank_form()))
    ws = wb.active
    ws["A2"] = "市（州）：吉林市"
    values = [[c.value for c in r] for r in ws.iter_rows()]
    one = next(i for i, r in enumerate(values) if r[1] == "对接工作联系人") + 2  # 1-based row of contact 1
    ws.cell(one, 2, "孙某")
    ws.cell(one, 5, "13912345678")
    two = next(i for i, r in enumerate(values) if r[1] == "医疗机构名称") + 3  # after the example row
    for col, v in enumerate(["吉林市人民医院", "周某", "主任", "13912345678", "数据采集", "2021.5.10"], 2):
        ws.cell(two, col, v)
    wb.save(tmp_path / "filled.xlsx")
    result = import_reply(engine, tmp_path / "filled.xlsx")
    assert (result.region_name, result.contacts, result.institutions) == ("吉林市", 1, 1)


def test_dashboard_links_exports_and_placeholder_marks(engine, orgs):
    create_user(engine, "ops", "correct horse battery", display_name="值班员")
    client = TestClient(create_app(engine))
    assert client.get("/ops/onboarding.xlsx", follow_redirects=False).status_code == 303  # login first
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    client.post("/login", data={"username": "ops", "password": "correct horse battery", "csrf_token": token, "next": "/ops/"})
    html = client.get("/ops/onboarding").text
    assert 'href="/ops/onboarding.xlsx"' in html and 'href="/ops/onboarding/reply-form.xlsx"' in html and "（示例值）" in html
    sheet = load_workbook(BytesIO(client.get("/ops/onboarding.xlsx").content)).active
    assert [c.value for c in sheet[2]] == SEED_HEADER
    form = load_workbook(BytesIO(client.get("/ops/onboarding/reply-form.xlsx").content)).active
    assert form["A1"].value == "对接工作回执"
    inst = client.get(f"/ops/institutions/{orgs[0][0]}").text
    assert inst.count("（示例值）") >= 3  # code, grade and docking method are demo values

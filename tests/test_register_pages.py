"""The register page (机构登记, /ops/register) on SQLite and PostgreSQL through TestClient: the
list and its filters, add, change, close and re-open with their history, a refused value
shown in the form with nothing written, CSRF, XLSX import (all or nothing) and export equal to
the page, and the regional reader (its region only, read-only, another region's a 404)."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select, update

from phip.accounts import create_user
from phip.api.app import create_app
from phip.orgs.register import history, registered
from phip.orgs.register_sheet import export_register
from phip.orgs.service import region_orgs
from phip.orgs.tables import InstitutionChange
from phip.standard.checks import uscc_check_char
from phip.store.models import Institution
from tests.regional_support import OTHER, OWN, PASSWORD, REGION, assert_only_own, login

NEW = "12220122MB0000001" + uscc_check_char("12220122MB0000001")
PHONE = "13912345678"


@pytest.fixture()
def ops(engine):  # noqa: ANN001
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    client = TestClient(create_app(engine))
    login(client, "ops")
    return client


@pytest.fixture()
def wjw(engine):  # noqa: ANN001
    create_user(engine, "wjw", PASSWORD, "regional", "长春市卫健委", region_code=REGION)
    client = TestClient(create_app(engine))
    login(client, "wjw")
    return client


def token(client: TestClient, path: str = "/ops/register") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)[1]


def shown_codes(html: str) -> list[str]:
    return re.findall(r'<tr data-code="([^"]+)"', html)


def state(engine) -> tuple[list[tuple], int]:  # noqa: ANN001
    """Every register row and the number of history rows: what "nothing written" compares."""
    with engine.connect() as conn:
        rows = conn.execute(select(Institution.__table__).order_by(Institution.code)).all()
        changes = conn.execute(select(func.count()).select_from(InstitutionChange)).scalar_one()
    return [tuple(r) for r in rows], changes


def form_of(html: str, form_id: str) -> dict[str, str | list[str]]:
    """The fields a browser sends for a form as rendered: inputs' values, selected options."""
    form = html.split(f'id="{form_id}"')[1].split("</form>")[0]
    data: dict[str, str | list[str]] = dict(re.findall(r'<input name="(\w+)" id="[^"]+" value="([^"]*)"', form))
    data["csrf_token"] = re.search(r'name="csrf_token" value="([^"]+)"', form)[1]
    for name, body in re.findall(r'<select name="(\w+)".*?>(.*?)</select>', form, re.S):
        picked = re.search(r'<option value="([^"]*)" selected>', body)
        data[name] = picked[1] if picked else ""
    return data


def valid_new(**values: str) -> dict[str, str]:
    return {"code": NEW, "kind": "hospital", "name": "农安县测试医院", "region_code": "220100", "county_code": "220122",
            "level": "二级甲等", **values}


# --- the list -------------------------------------------------------------------------------------

def test_list_shows_the_register_with_filters_and_placeholders(ops, engine):
    page = ops.get("/ops/register")
    assert page.status_code == 200 and "机构登记" in page.text
    rows = registered(engine)
    assert shown_codes(page.text) == [r["code"] for r in rows]
    assert f'id="reg-count">共 {len(rows)} 家<' in page.text
    own = page.text.split(f'data-code="{OWN[0]}"')[1].split("</tr>")[0]
    assert OWN[1] in own and "长春市" in own and "中医（综合）医院" in own and "接口对接" in own and "在用" in own
    assert own.count("（示例值）") == 5  # code, level, category, affiliation, docking method, as the seed lists them
    for params, keep in (({"region": "220200"}, lambda r: r["region_code"] == "220200"),
                         ({"kind": "business_system"}, lambda r: r["kind"] == "business_system"),
                         ({"q": "中医"}, lambda r: "中医" in r["name"]),
                         ({"q": OWN[0].lower()}, lambda r: r["code"] == OWN[0]),
                         ({"region": "220100", "kind": "internet_hospital"},
                          lambda r: r["region_code"] == "220100" and r["kind"] == "internet_hospital")):
        page = ops.get("/ops/register", params=params).text
        wanted = [r["code"] for r in rows if keep(r)]
        assert wanted and shown_codes(page) == wanted, params
        assert f"共 {len(wanted)} 家（登记总数 {len(rows)}）" in page
    assert shown_codes(ops.get("/ops/register", params={"status": "closed"}).text) == []


# --- add, change, close, re-open --------------------------------------------------------------------

def test_a_refused_value_is_shown_in_the_form_and_nothing_written(ops, engine):
    before = state(engine)
    r = ops.post("/ops/register", data={"csrf_token": token(ops), **valid_new(region_code="229901")})
    assert r.status_code == 422
    assert re.search(r'id="add-error">地区代码“229901”不是吉林省的市（州）级区划代码', r.text)
    assert '<label class="bad"><span>地区' in r.text and 'id="add-region_code" aria-invalid="true"' in r.text
    assert 'value="农安县测试医院"' in r.text and '<option value="229901" selected>229901（无效）</option>' in r.text
    assert 'id="add-panel" open' in r.text
    assert state(engine) == before


def test_add_registers_the_institution_with_its_history(ops, engine):
    r = ops.post("/ops/register", data={"csrf_token": token(ops), **valid_new(category="A100", docking_method="pull")},
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/ops/register?done=add&code={NEW}"
    page = ops.get(r.headers["location"]).text
    assert "已登记新机构：农安县测试医院" in page and NEW in shown_codes(page)
    with engine.connect() as conn:
        row = conn.execute(select(Institution.__table__).where(Institution.code == NEW)).one()._mapping
    assert (row["name"], row["region_name"], row["county_code"], row["category"], row["docking_method"]) == (
        "农安县测试医院", "长春市", "220122", "A100", "pull")
    added = history(engine, NEW)
    assert {c.action for c in added} == {"add"} and {c.changed_by for c in added} == {"ops"}
    assert {"code", "name", "region_code", "level"} <= {c.field for c in added}


def test_change_close_and_reopen_keep_history(ops, engine):
    code = OWN[0]
    forged = ops.get(f"/ops/register/{code}?done=close").text  # a link that says what did not happen
    assert "已关停：不再计入统计" not in forged and 'id="close-submit"' in forged
    page = ops.get(f"/ops/register/{code}").text
    assert page.count('name="confirm"') == 5  # a placeholder field of the form can be confirmed as it is
    sent = {**form_of(page, "edit-form"), "level": "三级乙等", "confirm": ["affiliation"]}
    r = ops.post(f"/ops/register/{code}", data=sent, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/ops/register/{code}?done=update"
    with engine.connect() as conn:
        row = conn.execute(select(Institution.level, Institution.placeholder).where(Institution.code == code)).one()
    assert row.level == "三级乙等"
    assert row.placeholder == "code;county_code;category;docking_method;network_status"  # the untouched ones kept
    again = ops.post(f"/ops/register/{code}", data=form_of(ops.get(f"/ops/register/{code}").text, "edit-form"),
                     follow_redirects=False)
    assert again.headers["location"].endswith("?done=same")

    csrf = token(ops, f"/ops/register/{code}")
    assert ops.post(f"/ops/register/{code}/close", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    closed = ops.get(f"/ops/register/{code}?done=close").text
    assert "已关停：不再计入统计" in closed and 'id="reopen-submit"' in closed
    twice = ops.post(f"/ops/register/{code}/close", data={"csrf_token": csrf})
    assert twice.status_code == 422 and f"{OWN[1]}已关停" in twice.text
    assert shown_codes(ops.get("/ops/register", params={"status": "closed"}).text) == [code]
    assert ops.post(f"/ops/register/{code}/reopen", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303

    changes = [(c.action, c.field, c.old_value, c.new_value) for c in history(engine, code)]
    assert changes[:2] == [("reopen", "status", "closed", "active"), ("close", "status", "active", "closed")]
    assert ("update", "level", "三级甲等", "三级乙等") in changes
    table = ops.get(f"/ops/register/{code}").text.split('id="reg-history"')[1]
    for words in ("重新启用", "关停", "医院等级", "三级甲等", "三级乙等", "ops"):
        assert words in table, words


def test_a_refused_change_keeps_the_input_and_writes_nothing(ops, engine):
    code = OWN[0]
    before = state(engine)
    sent = {**form_of(ops.get(f"/ops/register/{code}").text, "edit-form"), "county_code": "220202", "name": "新名称医院"}
    r = ops.post(f"/ops/register/{code}", data=sent)
    assert r.status_code == 422 and "县区代码220202（昌邑区）不属于地区220100" in r.text
    assert 'id="edit-county_code" aria-invalid="true"' in r.text and 'value="新名称医院"' in r.text
    assert state(engine) == before


def test_forms_without_the_session_csrf_token_are_refused(ops, engine, tmp_path):
    before = state(engine)
    sheet = tmp_path / "register.xlsx"
    sheet.write_bytes(export_register(engine))
    for csrf in ("", "forged"):
        posts = [("/ops/register", {"data": {"csrf_token": csrf, **valid_new()}}),
                 (f"/ops/register/{OWN[0]}", {"data": {"csrf_token": csrf, "name": "新名称医院", "region_code": REGION}}),
                 (f"/ops/register/{OWN[0]}/close", {"data": {"csrf_token": csrf}}),
                 ("/ops/register/import", {"data": {"csrf_token": csrf}, "files": {"file": ("r.xlsx", sheet.read_bytes())}})]
        for path, body in posts:
            r = ops.post(path, **body)
            assert r.status_code == 403 and "CSRF校验失败" in r.text, (path, csrf)
    assert state(engine) == before


# --- import and export ----------------------------------------------------------------------------

def edited_export(engine, tmp_path: Path, changes: dict[tuple[str, str], str]) -> bytes:  # noqa: ANN001
    """The exported register with cells changed: (institution code, header) → new value."""
    wb = load_workbook(BytesIO(export_register(engine)))
    ws = wb.active
    header = [c.value for c in ws[1]]
    rows = {ws.cell(n, 1).value: n for n in range(2, ws.max_row + 1)}
    for (code, column), value in changes.items():
        ws.cell(rows[code], header.index(column) + 1, value)
    path = tmp_path / "edited.xlsx"
    wb.save(path)
    return path.read_bytes()


def test_import_of_an_edited_export_changes_what_was_edited(ops, engine, tmp_path):
    body = edited_export(engine, tmp_path, {(OWN[0], "医院等级"): "三级乙等"})
    r = ops.post("/ops/register/import", data={"csrf_token": token(ops)},
                 files={"file": ("机构登记表.xlsx", body)}, follow_redirects=False)
    total = len(registered(engine))
    assert r.status_code == 303 and r.headers["location"] == f"/ops/register?done=import&added=0&updated=1&unchanged={total - 1}"
    assert f"导入完成：新登记 0 家，修改 1 家，无变化 {total - 1} 家" in ops.get(r.headers["location"]).text
    changes = {(c.action, c.field, c.new_value, c.changed_by) for c in history(engine, OWN[0])}
    assert ("import", "level", "三级乙等", "ops") in changes and {c[0] for c in changes} == {"import"}


def test_a_bad_import_writes_nothing_and_names_the_row(ops, engine, tmp_path):
    before = state(engine)
    body = edited_export(engine, tmp_path, {(OWN[0], "医院等级"): "三级乙等", (OTHER[0], "地区代码"): "229901"})
    r = ops.post("/ops/register/import", data={"csrf_token": token(ops)}, files={"file": ("r.xlsx", body)})
    assert r.status_code == 422
    refusal = r.text.split('id="import-error"')[1].split("</table>")[0]
    row = next(n for n, rec in enumerate(registered(engine), start=2) if rec["code"] == OTHER[0])
    assert f"<td>{row}</td><td>地区代码</td>" in refusal and f"第{row}行地区代码“229901”" in refusal and "未导入任何数据" in refusal
    assert state(engine) == before
    empty = ops.post("/ops/register/import", data={"csrf_token": token(ops)}, files={"file": ("r.txt", b"no header")})
    assert empty.status_code == 422 and "找不到表头" in empty.text and state(engine) == before


def test_an_upload_over_the_cap_is_refused(ops, engine, monkeypatch):
    from phip.web import register_pages

    monkeypatch.setattr(register_pages, "MAX_UPLOAD", 4096)  # the cap is read per upload
    before = state(engine)
    r = ops.post("/ops/register/import", data={"csrf_token": token(ops)}, files={"file": ("r.xlsx", export_register(engine))})
    assert r.status_code == 422 and "请分批导入" in r.text and state(engine) == before
    missing = ops.post("/ops/register/import", data={"csrf_token": token(ops)})
    assert missing.status_code == 422 and "请选择要导入的机构登记表" in missing.text


@pytest.mark.parametrize("params", [{}, {"region": "220200"}, {"q": "医院", "kind": "hospital"}])
def test_export_holds_the_rows_of_the_page(ops, params):
    page = ops.get("/ops/register", params=params).text
    r = ops.get("/ops/register.xlsx", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "filename*=UTF-8''%E6%9C%BA%E6%9E%84%E7%99%BB%E8%AE%B0%E8%A1%A8-" in r.headers["content-disposition"]
    ws = load_workbook(BytesIO(r.content)).active
    assert ws.cell(1, 1).value == "机构代码"
    exported = [(row[0], row[1]) for row in ws.iter_rows(min_row=2, values_only=True)]
    names = dict(re.findall(r'<tr data-code="([^"]+)"[^>]*>.*?<a href="[^"]+">([^<]+)</a>', page, re.S))
    assert exported == [(code, names[code]) for code in shown_codes(page)]


# --- the regional reader --------------------------------------------------------------------------

def test_regional_reader_reads_its_region_only(wjw, engine):
    page = wjw.get("/ops/register")
    assert page.status_code == 200
    assert set(shown_codes(page.text)) == region_orgs(engine, REGION)
    assert_only_own(page.text)
    for form in ("add-form", "import-form", "edit-form", "/close", "/reopen"):
        assert form not in page.text
    assert shown_codes(wjw.get("/ops/register", params={"region": "220200"}).text) == []
    text = xlsx_codes(wjw.get("/ops/register.xlsx").content)
    assert set(text) == region_orgs(engine, REGION)
    own = wjw.get(f"/ops/register/{OWN[0]}")
    assert own.status_code == 200 and OWN[1] in own.text and "edit-form" not in own.text and "close-submit" not in own.text
    other = wjw.get(f"/ops/register/{OTHER[0]}")
    assert other.status_code == 404 and "不在本辖区（长春市）" in other.text and OTHER[1] not in other.text


def xlsx_codes(body: bytes) -> list[str]:
    return [row[0] for row in load_workbook(BytesIO(body)).active.iter_rows(min_row=2, values_only=True)]


def test_regional_reader_changes_nothing(wjw, engine, tmp_path):
    before = state(engine)
    csrf = token(wjw)
    sheet = edited_export(engine, tmp_path, {(OWN[0], "医院等级"): "三级乙等"})
    for path, body in (("/ops/register", {"data": {"csrf_token": csrf, **valid_new()}}),
                       (f"/ops/register/{OWN[0]}", {"data": {"csrf_token": csrf, "level": "三级乙等", "region_code": REGION}}),
                       (f"/ops/register/{OWN[0]}/close", {"data": {"csrf_token": csrf}}),
                       (f"/ops/register/{OTHER[0]}/close", {"data": {"csrf_token": csrf}}),
                       ("/ops/register/import", {"data": {"csrf_token": csrf}, "files": {"file": ("r.xlsx", sheet)}})):
        r = wjw.post(path, **body)
        assert r.status_code == 403 and "无权" in r.text, path
    assert state(engine) == before


def test_contact_phone_masked_for_the_regional_reader(ops, wjw, engine):
    with engine.begin() as conn:
        conn.execute(update(Institution).where(Institution.code == OWN[0]).values(
            contact_name="王主任", contact_phone=PHONE))
    operator = ops.get(f"/ops/register/{OWN[0]}").text
    assert f'id="reg-phone">{PHONE}<' in operator  # staff phones: operators call them, as on the onboarding page
    regional = wjw.get(f"/ops/register/{OWN[0]}").text
    assert 'id="reg-phone">139****5678<' in regional and PHONE not in regional


def test_a_workbook_that_breaks_while_read_or_unpacks_too_far_is_refused(ops, engine, tmp_path):
    """Workbooks that open and then fail rows later (a billion laughs, cut short, a missing
    shared string) and one that unpacks to 65 MB: refused with the row or the size, 422 not
    500, nothing imported."""
    from .workbook_support import hostile_workbooks

    before = state(engine)
    books = hostile_workbooks(tmp_path, ["机构代码", "机构名称"], [["12220104MB0000001A", "甲医院"], ["12220104MB0000002B", "乙医院"],
                                                                 ["12220104MB0000003C", "丙医院"]])
    for name, says in (("laughs", "无法继续读取"), ("truncated", "无法继续读取"), ("no_string", "无法继续读取"),
                       ("bomb", "超过 64 MB 上限")):
        r = ops.post("/ops/register/import", data={"csrf_token": token(ops)}, files={"file": ("r.xlsx", books[name].read_bytes())})
        assert r.status_code == 422 and says in r.text, (name, r.status_code)
    assert state(engine) == before

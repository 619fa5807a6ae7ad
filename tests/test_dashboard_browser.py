"""The dashboard in headless Chromium (Debian chromium driven by Playwright) against a real
`phip serve` process: log in, open every page, filter and sort the upload table, download
the XLSX and check it against the page, screenshots, no console error, and script payloads
in institution and patient names shown as text (no dialog ever opens)."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from phip.runtime import build_pipeline
from phip.quality.run import analyse
from phip.orgs.codes import tiles as region_tiles
from phip.reports.reported import import_reported
from phip.runtime import prepare
from phip.privacy import mask_name
from phip.standard.validate import platform_now
from phip.store.db import make_engine
from phip.store.models import Institution
from phip.synth.generator import Generator
from phip.accounts import create_user
from tests.serve_support import serving

pytestmark = pytest.mark.slow  # headless Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ORG_SCRIPT = '<script>alert("org")</script>长春测试医院'
PATIENT_SCRIPT = '<img src=x onerror=alert("p")>'
PASSWORD = "correct horse battery"


def prepare_store(data_dir) -> tuple[str, str]:  # noqa: ANN001
    engine = prepare(make_engine(f"sqlite:///{data_dir / 'phip.db'}"))
    pipeline = build_pipeline(engine)
    now = platform_now()
    codes = ["12220104412001376B", "122201024120041126", "12220581412090428M"]  # two in 长春, one in 梅河口
    with engine.begin() as conn:
        conn.execute(update(Institution).where(Institution.code == codes[0]).values(name=ORG_SCRIPT))
    gen = Generator(seed=31)
    for offset in (1, 0):
        day = now.date() - timedelta(days=offset)
        for code in codes:
            batches = {ds: recs for _, ds, recs in gen.day([(code, "x")], day, visits=12, admissions=6, now=now)}
            if offset == 0 and code == codes[0]:
                planted = gen.plant_quality(batches)
                sum_bad = next(p for p in planted if p.code == "QC_SUM_MISMATCH")
                batches[sum_bad.dataset][sum_bad.index]["name"] = PATIENT_SCRIPT
            for ds, recs in batches.items():
                assert pipeline.ingest(code, ds, recs, now=now).rejected == 0
    for code in codes:
        analyse(engine, code, now.date() - timedelta(days=7), now.date())
    month = f"{now:%Y-%m}"
    (data_dir / "reported.csv").write_text(
        f"机构代码,统计期,门急诊人次,出院人次\n{codes[0]},{month},40,\n{codes[1]},{month},0,20\n", encoding="utf-8")
    import_reported(engine, data_dir / "reported.csv")
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    engine.dispose()
    return codes[0], month


def cell_text(row, col: str) -> str:  # noqa: ANN001
    return row.locator(f'td[data-col="{col}"]').inner_text().strip()


@pytest.mark.slow
def test_dashboard_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    org_code, month = prepare_store(tmp_path)
    shots = tmp_path / "screens"
    shots.mkdir()
    errors: list[str] = []
    dialogs: list[str] = []
    with serving(tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True, locale="zh-CN", viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        page.goto(f"{base}/ops/")
        assert "/login" in page.url
        page.fill("#username", "ops")
        page.fill("#password", "not the password")
        page.click("#login-submit")
        assert "用户名或密码错误" in page.inner_text("#login-error")
        page.fill("#username", "ops")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/ops/")
        assert int(page.inner_text("#card-uploading")) == 3 and int(page.inner_text("#card-analysed")) == 3
        page.wait_for_selector("#trend-chart canvas")  # ECharts drew the trend from the vendored script
        page.screenshot(path=str(shots / "overview.png"), full_page=True)

        page.goto(f"{base}/ops/uploads")
        page.fill("#f-period", month)
        page.select_option("#f-level", "institution")
        page.select_option("#f-region", "220100")
        page.click("#f-submit")
        page.wait_for_url(re.compile(r".*region=220100.*"))
        page.click('thead a[data-sort="volume"]')  # sort by upload volume, descending
        page.wait_for_url(re.compile(r".*sort=volume.*"))
        rows = page.locator("#upload-table tbody tr")
        assert rows.count() == changchun_count()
        volumes = [int(cell_text(rows.nth(i), "volume").replace(",", "")) for i in range(rows.count())]
        assert volumes == sorted(volumes, reverse=True) and volumes[0] > 0
        assert rows.nth(0).locator("td.name").inner_text().startswith(ORG_SCRIPT) or ORG_SCRIPT in page.inner_text("#upload-table")
        page.screenshot(path=str(shots / "uploads.png"), full_page=True)
        with page.expect_download() as info:
            page.click("#export-xlsx")
        xlsx = tmp_path / "uploads.xlsx"
        info.value.save_as(xlsx)
        ws = load_workbook(xlsx).active
        assert ws.cell(1, 1).value == page.inner_text("#report-title")
        cols = [a.get_attribute("data-col") for a in rows.nth(0).locator("td[data-col]").all()]
        exported = ws.max_column - 1  # the seed's columns; the page adds the platform's own after them
        assert cols[exported:] == ["rejected", "lab_items"]
        cols = cols[:exported]
        for i in range(rows.count()):
            row = rows.nth(i)
            assert ws.cell(4 + i, 1).value == row.locator("td.name a").inner_text()
            for j, col in enumerate(cols):
                value, shown = ws.cell(4 + i, 2 + j).value, cell_text(row, col)
                if isinstance(value, float):
                    assert f"{value * 100:.2f}%" == shown, (i, col)
                elif isinstance(value, int):
                    assert f"{value:,}" == shown, (i, col)
                else:
                    assert value == shown, (i, col)
        assert "未报告" in page.inner_text("#upload-table") and "报告为0" in page.inner_text("#upload-table")

        page.goto(f"{base}/ops/institutions/{org_code}")
        assert page.inner_text("#inst-name") == ORG_SCRIPT  # the payload is text on the page
        page.wait_for_selector("#inst-chart canvas")
        assert "QC_SUM_MISMATCH" in page.inner_text("#inst-top")
        page.screenshot(path=str(shots / "institution.png"), full_page=True)

        page.goto(f"{base}/ops/findings")
        page.select_option("#q-org", org_code)
        page.select_option("#q-code", "QC_SUM_MISMATCH")
        page.click("#findings-filters button")
        page.wait_for_url(re.compile(r".*code=QC_SUM_MISMATCH.*"))
        table = page.inner_text("#findings-table")
        assert mask_name(PATIENT_SCRIPT) in table and PATIENT_SCRIPT not in table  # names masked (issue 19)
        assert re.search(r"证件号码 \d{6}\*{8}\d{3}[\dX]", table)
        page.screenshot(path=str(shots / "findings.png"), full_page=True)

        page.goto(f"{base}/ops/onboarding")
        before = page.locator("table.onboarding tr", has_text="长春市中医院").first.inner_text()
        assert "已联通" in before
        page.locator("table.onboarding tr", has_text="长春市中医院").first.locator("button").click()
        page.wait_for_load_state()
        assert "待联通" in page.locator("table.onboarding tr", has_text="长春市中医院").first.inner_text()
        page.screenshot(path=str(shots / "onboarding.png"), full_page=True)

        page.click("header .logout button")
        page.wait_for_url(re.compile(r".*/login.*"))
        page.goto(f"{base}/ops/")
        assert "/login" in page.url
        browser.close()
    assert errors == []
    assert dialogs == []
    assert sorted(f.name for f in shots.iterdir()) == ["findings.png", "institution.png", "onboarding.png", "overview.png", "uploads.png"]


def changchun_count() -> int:
    import csv

    from phip.orgs.service import SEED

    with SEED.open(encoding="utf-8") as f:
        return sum(r["region_code"] == "220100" and (r.get("kind") or "hospital") == "hospital" for r in csv.DictReader(f))


@pytest.mark.slow
def test_rejections_page_in_chromium(tmp_path):
    """From the institution page to its rejections of a data set: the masked example is on the
    page, the full ID number and phone are not, and a script in a rejected name stays text."""
    from playwright.sync_api import sync_playwright

    engine = prepare(make_engine(f"sqlite:///{tmp_path / 'phip.db'}"))
    now = platform_now()
    org = "12220104412001376B"
    records = next(r for _, _, r in Generator(seed=41).day([(org, "x")], now.date() - timedelta(days=1), visits=5,
                                                           admissions=1, datasets=["outpatient_visit"], now=now))
    bad = [{**records[0], "visit_time": PATIENT_SCRIPT},
           {**records[1], "visit_time": {"电话": "13912345678"}}]
    pipeline = build_pipeline(engine)
    for _ in range(2):  # re-read: one rejection each
        assert pipeline.ingest(org, "outpatient_visit", bad, now=now).rejected == 2
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    engine.dispose()
    id_no = bad[0]["id_no"]
    errors: list[str] = []
    dialogs: list[str] = []
    with serving(tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{base}/ops/institutions/{org}")
        assert "/login" in page.url
        page.fill("#username", "ops")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/ops/institutions/{org}")
        assert "门诊/急诊就诊记录" in page.inner_text("#inst-rejections")
        page.click("#inst-rejections a")
        page.wait_for_url(f"{base}/ops/institutions/{org}/rejections/outpatient_visit")
        assert "未纠正 2 条" in page.inner_text("#rej-total")
        table = page.inner_text("#rej-table")
        assert f"{id_no[:6]}********{id_no[-4:]}" in table  # the masked example
        assert "139****5678" in table and "BAD_DATETIME" in table and PATIENT_SCRIPT in table  # as text
        assert mask_name(bad[0]["name"]) in table and bad[0]["name"] not in table
        html = page.content()
        assert id_no not in html and "13912345678" not in html
        rows = page.locator("#rej-table tbody tr")
        assert [rows.nth(i).locator("td").nth(3).inner_text() for i in range(rows.count())] == ["2", "2"]  # times seen
        page.screenshot(path=str(tmp_path / "rejections.png"), full_page=True)
        browser.close()
    assert errors == [] and dialogs == []


def test_api_docs_render_in_chromium(tmp_path):
    """The vendored Swagger UI reads the OpenAPI 3.1 document FastAPI serves and draws every
    operation; nothing is fetched from outside the platform."""
    from playwright.sync_api import sync_playwright

    prepare(make_engine(f"sqlite:///{tmp_path / 'phip.db'}")).dispose()
    errors: list[str] = []
    outside: list[str] = []
    with serving(tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) and not r.url.startswith("data:") else None)
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert "Unable to render this definition" not in page.inner_text("body")
        openapi = page.request.get(f"{base}/openapi.json").json()
        assert openapi["openapi"].startswith("3.1")
        documented = {path for path, ops in openapi["paths"].items() for _ in ops}
        assert {p.replace("\u200b", "") for p in paths} == documented  # every documented path drawn
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
        browser.close()
    assert not errors, errors
    assert not outside, outside


@pytest.mark.slow
def test_every_page_at_desktop_and_phone_width(tmp_path):
    """Every page a person opens (public, /ops/, /audit/) renders at desktop and phone width with
    no console error and no page wider than its screen; the overview's charts and tile map are
    drawn; a screenshot of each. (/share/ and /me/: tests/test_portal_browser.py.)"""
    from playwright.sync_api import sync_playwright

    org_code, _ = prepare_store(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'phip.db'}")
    create_user(engine, "aud", PASSWORD, "auditor", "审计员")
    engine.dispose()
    public = ["/", "/login", "/me/login"]
    ops = ["/ops/", "/ops/uploads", "/ops/uploads?level=provincial", f"/ops/institutions/{org_code}",
           "/ops/findings", "/ops/onboarding", "/ops/supervision/", "/ops/register", f"/ops/register/{org_code}"]
    audit = ["/audit/", "/audit/search"]
    shots = tmp_path / "screens"
    shots.mkdir()
    overflow: list[tuple[str, str, int]] = []
    with serving(tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name, viewport in (("desktop", {"width": 1400, "height": 900}), ("phone", {"width": 390, "height": 844})):
            errors: list[str] = []

            def visit(page, path: str, name: str = name, viewport: dict = viewport) -> None:  # noqa: ANN001
                response = page.goto(f"{base}{path}")
                assert response is not None and response.status == 200, (name, path)
                if path == "/ops/":
                    for chart in ("#trend-chart", "#funnel-chart", "#rates-chart"):
                        page.wait_for_selector(f"{chart} canvas")
                    tiles = page.locator("#rate-tiles .tile")  # the tile map: every region, none off screen
                    assert tiles.count() == len(region_tiles())
                    assert all(b and b["x"] >= 0 and b["x"] + b["width"] <= viewport["width"]
                               for b in (tiles.nth(k).bounding_box() for k in range(tiles.count())))
                shot = shots / f"{name}{path.replace('/', '_').replace('?', '_')}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 5000
                wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                if wide > 1:  # wide tables scroll inside their own box, the page does not
                    overflow.append((name, path, wide))

            def logged_in(user: str):  # noqa: ANN202
                page = browser.new_context(locale="zh-CN", viewport=viewport).new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                if user:
                    page.goto(f"{base}/login")
                    page.fill("#username", user)
                    page.fill("#password", PASSWORD)
                    page.click("#login-submit")
                    page.wait_for_url(re.compile(r".*/(ops|audit)/.*"))
                return page

            for paths, user in ((public, ""), (ops, "ops"), (audit, "aud")):
                page = logged_in(user)
                for path in paths:
                    visit(page, path)
            assert errors == [], (name, errors)
        browser.close()
    assert overflow == []
    assert len(list(shots.iterdir())) == 2 * len(public + ops + audit)
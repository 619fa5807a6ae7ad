"""The supervision dashboard in headless Chromium against a real `phip serve` process: log in,
open /ops/supervision/, filter by hospital and by rule, download the monthly XLSX and check
it against the page; no console error."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from phip.quality.rules import load_supervision_rules
from phip.quality.run import analyse
from phip.runtime import build_pipeline, prepare
from phip.standard.validate import platform_now
from phip.store.db import make_engine
from phip.synth.internet import KINDS, InternetGenerator
from phip.accounts import create_user
from tests.serve_support import serving

pytestmark = pytest.mark.slow  # headless Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery"
HOSPITALS = [("12220102MB1C2400HU", "吉林大学中日联谊医院互联网医院"), ("12220802MB1C2401K7", "白城微医互联网医院")]
ENTITY = ("12220104412001376B", "长春中医药大学附院")


def prepare_store(data_dir) -> str:  # noqa: ANN001
    engine = prepare(make_engine(f"sqlite:///{data_dir / 'phip.db'}"))
    pipeline = build_pipeline(engine)
    now = platform_now()
    day = now.date() - timedelta(days=1) if now.day > 1 else now.date()
    gen = InternetGenerator(HOSPITALS, ENTITY, seed=12, violation_rate=0.6)
    for batch in (gen.register(now - timedelta(days=3)), gen.day(day, now, len(KINDS))):
        for org, ds, recs in batch.batches:
            assert pipeline.ingest(org, ds, recs, now=now).rejected == 0
    for org, _ in HOSPITALS:
        analyse(engine, org, day, day, as_of=now + timedelta(days=2), rules=load_supervision_rules(), mark=False)
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    engine.dispose()
    return f"{day:%Y-%m}"


def counts(page, table: str) -> dict[str, str]:  # noqa: ANN001
    """First cell -> last cell of each row of a table on the page."""
    out = {}
    for row in page.locator(f"#{table} tbody tr").all():
        cells = [c.inner_text().strip() for c in row.locator("td").all()]
        out[cells[0]] = cells[-1]
    return out


def test_supervision_dashboard_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    month = prepare_store(tmp_path)
    errors: list[str] = []
    with serving(tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True, locale="zh-CN", viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/ops/supervision/?month={month}")
        assert "/login" in page.url
        page.fill("#username", "ops")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url("**/ops/supervision/**")
        assert "互联网医院监管" in page.inner_text("h1")
        totals = counts(page, "sv-hospitals")
        assert set(totals) == {HOSPITALS[0][0], HOSPITALS[1][0], "*"} and int(totals["*"]) > 0

        page.select_option("#sv-org", HOSPITALS[0][0])
        page.click("#sv-filter button[type=submit]")
        page.wait_for_url(f"**org={HOSPITALS[0][0]}**")
        one = counts(page, "sv-hospitals")
        assert set(one) == {HOSPITALS[0][0], "*"} and one["*"] == totals[HOSPITALS[0][0]]

        page.select_option("#sv-rule", "sv_practitioner_licensed")
        page.click("#sv-filter button[type=submit]")
        page.wait_for_url("**rule=sv_practitioner_licensed**")
        examples = [r.locator("td").nth(4).inner_text() for r in page.locator("#sv-examples tbody tr").all()]
        assert examples and set(examples) == {"sv_practitioner_licensed"}
        ruled = counts(page, "sv-hospitals")

        with page.expect_download() as dl:
            page.click("#sv-xlsx")
        path = tmp_path / "report.xlsx"
        dl.value.save_as(path)
        wb = load_workbook(path)
        rows = {r[0]: r for r in wb["概况"].iter_rows(min_row=3, values_only=True)}
        assert str(rows[HOSPITALS[0][0]][7]) == ruled[HOSPITALS[0][0]] and str(rows["*"][7]) == ruled["*"]
        details = list(wb["违规示例"].iter_rows(min_row=2, values_only=True))
        assert details and {d[4] for d in details} == {"sv_practitioner_licensed"}
        browser.close()
    assert not errors, errors

"""The sharing pages in headless Chromium against a real `phip serve` process: the clinician is
refused, the resident sets a password with the notified code, logs in and grants consent, the
clinician opens the timeline and a lab report (可互认 marked), the resident sees that access in
the log. The resident uses a phone (390 px), the clinician a desktop and then a phone: no page
is wider than its screen. Screenshots of each step; no console error; no full ID number on any page."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from phip.accounts import create_user
from phip.runtime import build_pipeline, prepare
from phip.store.db import make_engine
from tests.web_support import PASSWORD
from tests.share_support import seed
from tests.serve_support import serving

pytestmark = pytest.mark.slow  # headless Chromium

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ORGS = [("12220104412001376B", "长春中医药大学附院"), ("1222010441200274XD", "长春中医药大学附属三院")]
READER = ("122201024120041126", "长春市中医院")


def test_sharing_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    engine = prepare(make_engine(f"sqlite:///{tmp_path / 'phip.db'}"))
    patient, pid = seed(build_pipeline(engine), ORGS, 51)
    create_user(engine, "dr_zhang", PASSWORD, "clinician", "张医生", org_code=READER[0], department="急诊科")
    engine.dispose()
    shots = tmp_path / "screens"
    shots.mkdir()
    errors: list[str] = []
    pages_seen: list[str] = []

    def watch(page):  # noqa: ANN001, ANN202
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        return page

    def snap(page, name: str) -> None:  # noqa: ANN001
        pages_seen.append(page.content())
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, (name, f"{wide}px wider than the screen")  # wide tables scroll in their box

    with serving(tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        doctor = watch(browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page())
        me = watch(browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True).new_page())

        # the clinician finds the patient and is refused the content
        doctor.goto(f"{base}/share/")
        assert "/login" in doctor.url
        doctor.fill("#username", "dr_zhang")
        doctor.fill("#password", PASSWORD)
        doctor.click("#login-submit")
        doctor.wait_for_url(f"{base}/share/")
        doctor.fill("#f-id-no", patient.id_no)
        doctor.click("#f-submit")
        doctor.wait_for_selector("#results")
        assert "未授权" in doctor.inner_text("#results")
        doctor.click("#results a.open-patient")
        doctor.wait_for_url(f"{base}/share/patients/{pid}")
        assert "未获得患者授权" in doctor.inner_text("#refusal")
        assert doctor.get_attribute("#refusal", "data-code") == "NO_AUTHORIZATION"
        assert "条" in doctor.inner_text("#counts") and doctor.locator("#timeline").count() == 0
        snap(doctor, "1-clinician-refused")

        # the resident sets a password with the code the notifier wrote, logs in, grants consent
        me.goto(f"{base}/me/")
        assert "/me/login" in me.url
        me.click("#setup-link")
        me.fill("#setup-id-no", patient.id_no)
        me.click("#send-code")
        me.wait_for_selector("#setup-notice")
        notice = max((tmp_path / "notices").glob(f"*-{pid}-*.json"))
        me.fill("#setup-code", json.loads(notice.read_text(encoding="utf-8"))["code"])
        me.fill("#setup-password", PASSWORD)
        me.fill("#setup-password2", PASSWORD)
        me.click("#setup-submit")
        me.wait_for_selector("#login-notice")
        me.fill("#id-no", patient.id_no)
        me.fill("#password", PASSWORD)
        me.click("#login-submit")
        me.wait_for_url(f"{base}/me/")
        assert me.locator("#timeline a.doc-link").count() >= 4
        snap(me, "2-resident-timeline")
        me.goto(f"{base}/me/consents")
        me.select_option("#g-reader-scope", "chosen")
        me.select_option("#g-readers", READER[0])
        me.fill("#g-days", "7")
        me.click("#g-submit")
        me.wait_for_selector('#grants tr[data-state="active"]')
        assert READER[1] in me.inner_text("#grants")
        snap(me, "3-resident-consent")

        # the clinician reads the timeline and a lab report
        doctor.reload()
        doctor.wait_for_selector("#timeline")
        timeline = doctor.inner_text("#timeline")
        assert ORGS[0][1] in timeline and ORGS[1][1] in timeline and "可互认" in timeline
        snap(doctor, "4-clinician-timeline")
        doctor.click('#timeline tr[data-dataset="lab_report"] a.doc-link')
        doctor.wait_for_selector("#doc-items")
        assert "参考值范围" in doctor.inner_text("#doc-items") and "可互认" in doctor.inner_text("#doc-items")
        snap(doctor, "5-clinician-lab-report")

        # the resident sees who read the record
        me.goto(f"{base}/me/access-log")
        log = me.inner_text("#access-log")
        assert "张*" in log and READER[1] in log and "急诊科" in log and "查看病历文档（检验报告）" in log
        assert re.search(r"授权同意 #\d+", log)
        snap(me, "6-resident-access-log")

        # the clinician on a phone: search, timeline and the report fit the screen
        phone = watch(browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True,
                                          storage_state=doctor.context.storage_state()).new_page())
        phone.goto(f"{base}/share/")
        snap(phone, "7-clinician-phone-find")
        phone.goto(f"{base}/share/patients/{pid}")
        phone.wait_for_selector("#timeline")
        snap(phone, "8-clinician-phone-timeline")
        phone.click('#timeline tr[data-dataset="lab_report"] a.doc-link')
        phone.wait_for_selector("#doc-items")
        snap(phone, "9-clinician-phone-lab-report")
        browser.close()
    assert errors == []
    assert all(patient.id_no not in html for html in pages_seen)
    assert len(list(shots.iterdir())) == 9

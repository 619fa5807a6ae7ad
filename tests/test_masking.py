"""Issue 19 item 8: one masking rule per identifier kind (phip.privacy), used in the EMPI
answers (health cards, insurance numbers, names) and on the findings pages (patient names)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from phip.api.app import create_app
from phip.privacy import MASKS, mask_document, mask_health_card, mask_insurance, mask_kind, mask_name
from phip.quality.run import analyse
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.synth.generator import Generator
from phip.accounts import create_user
from tests.web_support import PASSWORD, login
from tests.empi_support import id_number, ingest, person_of, registration


def test_one_rule_per_kind():
    assert [mask_name(n) for n in ("张三", "张三丰", "欧阳娜娜", "李", "", None)] == ["张*", "张*丰", "欧**娜", "*", "", ""]
    assert mask_health_card("220102198005060017") == "220***********0017"
    assert mask_insurance("JL2201029988776") == "JL2********8776"
    assert mask_document("E12345678") == "E1*****78"
    assert set(MASKS) == {"id_no", "phone", "health_card", "insurance", "doc", "name"}
    assert mask_kind("patient_id", "P000123") == "P000123"  # the institution's own number: not personal
    assert mask_name("张三丰", role="no-such-role") == "张*丰"


def test_identifiers_inside_text_are_masked_however_written():
    """Values of unknown meaning (a rejected record as sent) and the access log: an ID number or
    phone written in groups, in full-width digits, or percent-encoded in an address is masked
    like a plain one; other numbers and the rest of the text stay as they are."""
    from phip.api.access_log import ScrubIdentifiers, scrub
    from phip.privacy import mask_text

    assert mask_text("电话 139 1234 5678，身份证 220102-19620314-0422") == "电话 139******5678，身份证 220102**********0422"
    assert mask_text("身份证２２０１０２１９６２０３１４０４２２") == "身份证220102********0422"
    kept = "门诊号 MZ202611210002，2026-11-21 12:00:00，金额 1234.50，订单 2026112100012345"
    assert mask_text(kept) == kept
    wide = "%ef%bc%92" * 2 + "%ef%bc%90%ef%bc%91%ef%bc%90%ef%bc%92%ef%bc%91%ef%bc%99%ef%bc%96%ef%bc%92%ef%bc%90%ef%bc%93%ef%bc%91%ef%bc%94%ef%bc%90%ef%bc%94%ef%bc%92%ef%bc%92"
    for address in ("/api/v1/empi/persons?id_no=" + "".join(f"%{ord(c):02X}" for c in "220102196203140422"),
                    "/api/v1/empi/persons?id_no=2201021962031404%32%32", "/share/patients/22010219620314042%32",
                    "/api/v1/empi/persons?id_no=" + wide, "/x?q=220102+19620314+0422"):
        assert scrub(address).endswith("220102********0422") or "**********0422" in scrub(address), scrub(address)
    assert scrub("/api/v1/empi/persons?phone=%31%35%39%36%30%37%39%31%38%34%30").endswith("phone=159****1840")
    assert scrub("/api/v1/empi/persons?name=%E7%8E%8B&phone=159-6079-1840").endswith("name=%E7%8E%8B&phone=159******1840")
    # nothing personal: logged as uvicorn wrote it; decoded only to look, and written back
    # encoded, so a %0A cannot split the line
    assert scrub("/ops/findings?q=%E7%8E%8B%0Afake") == "/ops/findings?q=%E7%8E%8B%0Afake"
    assert "\n" not in scrub("/x?q=%0A220102196203140422") and "%0A" in scrub("/x?q=%0A220102196203140422")
    import logging

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5000", "GET", "/api/v1/empi/persons?phone=%31%35%39%36%30%37%39%31%38%34%30", "1.1", 400), None)
    ScrubIdentifiers().filter(record)
    assert "15960791840" not in record.getMessage() and "159****1840" in record.getMessage()


def test_empi_answers_mask_cards_insurance_and_names(pipeline, engine, orgs):
    org = orgs[0][0]
    born = date(1985, 3, 9)
    card, insurance, id_no = "H22010219850309123", "YB2201029988776", id_number(born, 71)
    record = {**registration(org, patient_id="P-mask", name="张三丰", born=born, id_no=id_no, phone="13912345678",
                             health_card=card), "insurance_no": insurance}
    ingest(pipeline, org, record)
    pid = person_of(engine, record)
    create_user(engine, "ops", PASSWORD)
    client = TestClient(create_app(engine))
    login(client)
    text = client.get(f"/api/v1/empi/persons/{pid}/identifiers").text
    ids = {i["kind"]: i["value"] for i in client.get(f"/api/v1/empi/persons/{pid}/identifiers").json()["identifiers"]}
    assert ids["health_card"] == mask_health_card(card) and ids["insurance"] == mask_insurance(insurance)
    assert ids["id_no"] == f"{id_no[:6]}********{id_no[-4:]}" and ids["patient_id"] == "P-mask"
    for whole in (card, insurance, id_no):
        assert whole not in text
    gold = client.get(f"/api/v1/empi/persons/{pid}").json()["fields"]
    assert gold["name"]["value"] == "张*丰" and gold["phone"]["value"] == "139****5678"
    found = client.get("/api/v1/empi/persons", params={"name": "张三丰", "birth_date": born.isoformat()}).json()["persons"]
    assert [p["name"] for p in found] == ["张*丰"]


def test_findings_pages_mask_patient_names(engine, pipeline, orgs):
    code = orgs[0][0]
    now = platform_now()
    with engine.begin() as conn:
        conn.execute(update(Institution).where(Institution.code == code).values(first_upload_at=now - timedelta(days=30)))
    gen = Generator(seed=21)
    batches = {ds: recs for _, ds, recs in gen.day([(code, "x")], now.date(), visits=12, admissions=6, now=now)}
    planted = gen.plant_quality(batches)
    target = next(p for p in planted if p.code == "QC_SUM_MISMATCH")
    batches[target.dataset][target.index]["name"] = "司马相如"
    for ds, recs in batches.items():
        for r in recs:
            r["org_name"] = "x"
        pipeline.ingest(code, ds, recs, now=now)
    analyse(engine, code, now.date() - timedelta(days=7), now.date(), as_of=now + timedelta(days=10))
    create_user(engine, "ops", PASSWORD)
    client = TestClient(create_app(engine))
    login(client)
    findings = client.get(f"/ops/findings?org={code}&code=QC_SUM_MISMATCH").text
    assert "司**如" in findings and "司马相如" not in findings
    institution = client.get(f"/ops/institutions/{code}").text
    assert "司马相如" not in institution
    names = {r["name"] for recs in batches.values() for r in recs if r.get("name") and len(r["name"]) >= 2}
    shown = re.findall(r'<span class="ex">姓名 ([^<]+)</span>', findings)
    assert shown and all("*" in s for s in shown) and not names & set(shown)


def _identifiers(engine) -> set[str]:  # noqa: ANN001
    """Every ID number, phone and health card the store holds whole: records, rejected records'
    payloads (kept as sent) and persons' identifiers."""
    from sqlalchemy import select

    from phip.store import models as m

    kinds = ("id_no", "phone", "health_card_no", "contact_phone", "guardian_id_no")
    found: set[str] = set()
    with engine.connect() as conn:
        payloads = [*conn.execute(select(m.Record.payload)).scalars(),
                    *conn.execute(select(m.RejectedRecord.payload)).scalars()]
        found |= {v for (v,) in conn.execute(select(m.PersonIdentifier.value).where(
            m.PersonIdentifier.kind.in_(["id_no", "health_card"])))}
    for p in payloads:
        if isinstance(p, dict):
            found |= {str(p[k]) for k in kinds if p.get(k)}
    return {v for v in found if len(v) >= 8}


def test_no_page_or_export_an_operator_reaches_shows_an_identifier_whole(engine, pipeline, orgs):
    """Crawl every /ops/ page an operator reaches by its links (findings, rejections with the
    records as sent, institutions, supervision, the register) and every export they link to:
    none shows an ID number, phone or health card that the store holds whole."""
    from collections import deque
    from io import BytesIO
    from urllib.parse import urljoin, urlsplit

    from openpyxl import load_workbook

    from phip.quality.rules import load_supervision_rules
    from phip.synth.internet import InternetGenerator

    now = platform_now()
    day = now.date() - timedelta(days=1)
    gen = Generator(seed=33, error_rate=0.3)
    for org, ds, recs in gen.day(orgs[:2], day, visits=10, admissions=3, now=now):
        pipeline.ingest(org, ds, recs, now=now)
    net = InternetGenerator([("12220102MB1C2400HU", "吉林大学中日联谊医院互联网医院")], orgs[0], seed=3, violation_rate=0.5)
    for batch in (net.register(now - timedelta(days=3)), net.day(day, now, 6)):
        for org, ds, recs in batch.batches:
            pipeline.ingest(org, ds, recs, now=now)
    for org in (orgs[0][0], orgs[1][0]):
        analyse(engine, org, day - timedelta(days=1), day, as_of=now)
    analyse(engine, "12220102MB1C2400HU", day - timedelta(days=1), day, as_of=now + timedelta(days=3),
            rules=load_supervision_rules(), mark=False)
    secrets = _identifiers(engine)
    assert len(secrets) > 50  # the crawl below has something to find

    create_user(engine, "ops", PASSWORD)
    client = TestClient(create_app(engine))
    login(client)
    seen, queue, leaks, exports = set(), deque(["/ops/", "/ops/findings", "/ops/supervision/", "/ops/register"]), [], 0
    per_path: dict[str, int] = {}
    while queue and len(seen) < 400:
        url = queue.popleft()
        path = urlsplit(url).path
        if url in seen or per_path.get(path, 0) >= 4:  # a few filters of each page, then the other pages
            continue
        seen.add(url)
        per_path[path] = per_path.get(path, 0) + 1
        r = client.get(url)
        if r.status_code != 200:
            continue
        kind = r.headers.get("content-type", "")
        if "spreadsheetml" in kind:
            exports += 1
            wb = load_workbook(BytesIO(r.content), read_only=True)
            text = "\n".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None)
        else:
            text = r.text
            exports += "text/csv" in kind
            for link in re.findall(r'href="([^"#]+)"', text):
                target = urljoin(url, link.replace("&amp;", "&"))
                if urlsplit(target).path.startswith("/ops/") and "logout" not in target and "/static/" not in target:
                    queue.append(target)
        leaks += [(url, s) for s in secrets if s in text]
    paths = {urlsplit(u).path for u in seen}
    assert {"/ops/supervision/report.xlsx", "/ops/register.xlsx", "/ops/uploads.xlsx"} <= paths, sorted(paths)
    assert sum("/rejections/" in p for p in paths) >= 10, sorted(paths)  # records as sent, masked
    assert not leaks, leaks[:5]

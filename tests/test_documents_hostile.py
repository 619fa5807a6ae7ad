"""Hostile and broken CDA documents (issue 25): each is refused with its stable code and the
path of the problem, nothing is stored, and no external entity is ever resolved."""

from __future__ import annotations

import gzip
from datetime import date, datetime

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import func, select

from phip.api.app import create_app
from phip.documents import DocumentRefused, load_templates, read, render
from phip.documents.cda import V3
from phip.documents.safexml import _LONG_ATTRIBUTE, _LONG_TEXT, MAX_BYTES, MAX_TEXT
from phip.orgs.keys import create_key
from phip.store.models import Batch, Record
from phip.synth.generator import Generator

ORGS = [("12220104412001376B", "长春中医药大学附院")]


@pytest.fixture(scope="module")
def visit() -> dict:
    gen = Generator(seed=7)
    for _, _, recs in gen.day(ORGS, date(2026, 11, 21), visits=1, admissions=0, now=datetime(2026, 11, 22, 12),
                              datasets=["outpatient_visit"]):
        return recs[0]
    raise AssertionError("no visit generated")


@pytest.fixture(scope="module")
def good(visit) -> str:
    xml = render(load_templates().by_code["C0002"], [visit]).decode("utf-8")
    read(xml.encode())  # the base document passes
    return xml


def _body(good: str) -> str:
    """The document without its XML declaration (to put something before the root)."""
    return good.split("?>", 1)[1]


def refused(body: bytes | str, code: str) -> DocumentRefused:
    with pytest.raises(DocumentRefused) as info:
        read(body.encode("utf-8") if isinstance(body, str) else body)
    codes = [p.code for p in info.value.problems]
    assert code in codes, (codes, info.value.message)
    assert all(p.path.startswith("/") and p.message for p in info.value.problems)
    return info.value


def _tree(good: str) -> etree._Element:
    return etree.fromstring(good.encode())


def _mutate(good: str, fn) -> bytes:  # noqa: ANN001
    root = _tree(good)
    fn(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _find(root, path: str):  # noqa: ANN001, ANN202
    return root.xpath(path, namespaces={"v": V3})[0]


SECTION_DIAG = "v:component/v:structuredBody/v:component/v:section[v:code/@code='29548-5']"


# --- entity and parser attacks ---------------------------------------------------------------


def test_xxe_file_entity_is_never_resolved(good, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7731", encoding="utf-8")
    hostile = good.replace("?>", f'?><!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file://{secret}">]>', 1)
    hostile = hostile.replace("<title>门(急)诊病历</title>", "<title>&xxe;</title>")
    exc = refused(hostile, "DOCTYPE_FORBIDDEN")
    assert "TOP-SECRET" not in str(exc.problems)
    # even past the byte check, the parser itself leaves the entity unresolved
    from phip.documents.safexml import hardened_parser

    root = etree.fromstring(hostile.encode(), hardened_parser())
    assert b"TOP-SECRET" not in etree.tostring(root)


def test_xxe_http_and_parameter_entities(good):
    http = good.replace("?>", '?><!DOCTYPE x [<!ENTITY e SYSTEM "http://127.0.0.1:9/x">]>', 1)
    refused(http, "DOCTYPE_FORBIDDEN")
    param = good.replace("?>", '?><!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]>', 1)
    refused(param, "DOCTYPE_FORBIDDEN")
    lower = good.replace("?>", "?><!doctype ClinicalDocument>", 1)
    refused(lower, "DOCTYPE_FORBIDDEN")


def test_billion_laughs(good):
    lol = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
    refused(good.replace("?>", f"?><!DOCTYPE l [{lol}]>", 1).replace("<title>门(急)诊病历</title>", "<title>&l9;</title>"),
            "DOCTYPE_FORBIDDEN")


def test_undeclared_entity_is_malformed(good):
    refused(good.replace("<title>门(急)诊病历</title>", "<title>&xxe;</title>"), "MALFORMED_XML")


def test_huge_attribute_and_huge_text(good):
    refused(good.replace('<realmCode code="CN"/>', f'<realmCode code="CN" junk="{"A" * 30000}"/>'), "ATTRIBUTE_TOO_LONG")
    refused(good.replace("<title>门(急)诊病历</title>", f"<title>{'长' * 30000}</title>"), "ATTRIBUTE_TOO_LONG")


@pytest.mark.parametrize("shift", [0, 1, MAX_TEXT // 2 - 1, MAX_TEXT // 2 + 1, MAX_TEXT - 3])
def test_a_run_of_the_limit_is_found_wherever_it_starts(good, shift):
    """The byte scan before the long-run regexes skips them only when they cannot match: the
    answer is the regexes' own, wherever the run starts and just under or at the limit."""
    pad = f' pad="{"p" * shift}"' if shift else ""
    for run in ("A" * MAX_TEXT, "A" * (MAX_TEXT - 40)):
        attribute = good.replace('<realmCode code="CN"/>', f'<realmCode code="CN"{pad} junk="{run}"/>')
        text = good.replace('<realmCode code="CN"/>', f'<realmCode code="CN"{pad}/>').replace(
            "<title>门(急)诊病历</title>", f"<title>{run}</title>")
        for body in (attribute.encode(), text.encode()):
            if _LONG_ATTRIBUTE.search(body) or _LONG_TEXT.search(body):
                refused(body, "ATTRIBUTE_TOO_LONG")
            else:
                assert len(run) < MAX_TEXT
                read(body)


def test_deep_nesting(good):
    deep = "<a>" * 200 + "</a>" * 200
    refused(good.replace("<title>", deep + "<title>", 1), "TOO_DEEP")


def test_too_many_elements(good):
    refused(good.replace("<title>", "<x/>" * 60_000 + "<title>", 1), "TOO_MANY_ELEMENTS")


def test_processing_instructions(good):
    refused(good.replace("?>", '?><?xml-stylesheet type="text/xsl" href="http://127.0.0.1:9/x.xsl"?>', 1), "PI_FORBIDDEN")
    refused(good.replace("<title>", "<?php system('id'); ?><title>", 1), "PI_FORBIDDEN")


def test_empty_truncated_and_oversized(good):
    refused(b"", "EMPTY_DOCUMENT")
    refused(b"  \n\t ", "EMPTY_DOCUMENT")
    refused(good[: len(good) // 2], "MALFORMED_XML")
    # libxml2's English reason was the message; now Chinese, with the line and column
    for broken, said in ((good.replace("</title>", "</titel>", 1), "开始标签与结束标签不匹配"),
                         (good + "<extra/>", "根元素结束后还有多余的内容"),
                         (good.replace("<title>", "<title>R&D", 1), "“&”之后应为实体名称和分号"),
                         (good.replace("<title>", "<title>&#0;", 1), "不是有效的XML字符")):
        message = refused(broken, "MALFORMED_XML").problems[0].message
        assert said in message and "行第" in message, message
        assert not any("a" <= ch.lower() <= "z" for ch in message.replace("XML", "").replace("amp", "")), message
    refused(good.replace("<title>", "<!--" + "x" * (MAX_BYTES + 10) + "--><title>", 1), "DOCUMENT_TOO_LARGE")


def test_encodings(good):
    refused(good.replace("encoding='UTF-8'", "encoding='GBK'"), "BAD_ENCODING")
    refused(good.encode("utf-16"), "BAD_ENCODING")
    refused(good.encode("utf-8").replace("门".encode(), b"\xe9\x97", 1), "BAD_ENCODING")


# --- CDA shape -------------------------------------------------------------------------------


def test_wrong_root_and_namespace(good):
    refused(good.replace('xmlns="urn:hl7-org:v3"', 'xmlns="urn:hl7-org:v2"'), "WRONG_NAMESPACE")
    refused(good.replace(' xmlns="urn:hl7-org:v3"', ""), "WRONG_NAMESPACE")
    refused('<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="urn:hl7-org:v3"/>', "WRONG_ROOT")


def test_unknown_or_missing_template(good):
    refused(good.replace('templateId root="2.16.156.10011.2.1.1.22"', 'templateId root="2.16.156.10011.2.1.1.99"'),
            "UNKNOWN_TEMPLATE")
    refused(_mutate(good, lambda r: r.remove(_find(r, "v:templateId"))), "HEADER_MISSING")
    refused(good.replace('code="C0002"', 'code="C0004"'), "WRONG_DOCUMENT_CODE")


def test_missing_header_parts(good):
    exc = refused(_mutate(good, lambda r: r.remove(_find(r, "v:custodian"))), "HEADER_MISSING")
    assert any(p.path == "/ClinicalDocument/custodian" for p in exc.problems)
    refused(good.replace('<realmCode code="CN"/>', '<realmCode code="US"/>'), "BAD_HEADER")
    exc = refused(_mutate(good, lambda r: _find(r, "v:recordTarget/v:patientRole/v:patient").remove(
        _find(r, "v:recordTarget/v:patientRole/v:patient/v:name"))), "ENTRY_MISSING")
    assert "patient/name" in exc.problems[0].message


def test_missing_required_section_and_entry(good):
    def drop_section(root):  # noqa: ANN001
        section = _find(root, SECTION_DIAG)
        component = section.getparent()
        component.getparent().remove(component)

    exc = refused(_mutate(good, drop_section), "SECTION_MISSING")
    assert "29548-5" in exc.problems[0].path

    def drop_entry(root):  # noqa: ANN001
        section = _find(root, SECTION_DIAG)
        for entry in section.findall("v:entry", {"v": V3}):
            if entry.find("v:observation/v:code", {"v": V3}).get("code") == "DE05.01.024.00":
                section.remove(entry)

    refused(_mutate(good, drop_entry), "ENTRY_MISSING")


def test_codes_outside_their_domain_or_system(good):
    refused(good.replace('administrativeGenderCode code="', 'administrativeGenderCode code="7', 1), "CODE_OUT_OF_DOMAIN")
    refused(good.replace('codeSystem="2.16.156.10011.2.3.3.4"', 'codeSystem="2.16.156.10011.2.3.3.5"', 1), "WRONG_CODE_SYSTEM")
    exc = refused(_mutate(good, lambda r: _find(r, SECTION_DIAG + "/v:entry/v:observation/v:value").set("code", "NOT-ICD")),
                  "CODE_OUT_OF_DOMAIN")
    assert exc.problems[0].path.endswith("/value/@code")


def test_bad_dates_and_values(good):
    refused(good.replace('<birthTime value="', '<birthTime value="1990134', 1), "BAD_DATE")
    refused(_mutate(good, lambda r: _find(r, "v:componentOf/v:encompassingEncounter/v:effectiveTime").set("value", "20260230101010")),
            "BAD_DATE")
    refused(good.replace('xsi:type="INT" value="', 'xsi:type="INT" value="x', 1), "BAD_VALUE")
    refused(good.replace('xsi:type="CD"', 'xsi:type="ST"', 1), "BAD_VALUE")


def test_repeated_single_entry(good):
    def twice(root):  # noqa: ANN001
        section = _find(root, SECTION_DIAG)
        entry = section.find("v:entry", {"v": V3})
        section.append(etree.fromstring(etree.tostring(entry)))

    refused(_mutate(good, twice), "ENTRY_REPEATED")


def test_repeated_single_section(good):
    """A second 诊断 section (another value) was accepted and its value silently dropped."""
    def again(root):  # noqa: ANN001
        section = _find(root, SECTION_DIAG)
        section.getparent().getparent().append(etree.fromstring(etree.tostring(section.getparent())))

    exc = refused(_mutate(good, again), "SECTION_REPEATED")
    assert "出现多次" in exc.problems[0].message


def test_all_problems_are_listed_at_once(good):
    broken = good.replace('administrativeGenderCode code="', 'administrativeGenderCode code="7', 1) \
        .replace('<birthTime value="', '<birthTime value="1990134', 1)
    with pytest.raises(DocumentRefused) as info:
        read(broken.encode())
    assert {"CODE_OUT_OF_DOMAIN", "BAD_DATE"} <= {p.code for p in info.value.problems}


# --- through the API: nothing stored ---------------------------------------------------------


def test_api_refuses_and_stores_nothing(engine, good, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4419", encoding="utf-8")
    client = TestClient(create_app(engine))
    _, key = create_key(engine, ORGS[0][0])
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/xml"}
    xxe = good.replace("?>", f'?><!DOCTYPE c [<!ENTITY x SYSTEM "file://{secret}">]>', 1).replace("<title>门(急)诊病历</title>", "<title>&x;</title>")
    cases = {
        "DOCTYPE_FORBIDDEN": xxe,
        "CODE_OUT_OF_DOMAIN": good.replace('administrativeGenderCode code="', 'administrativeGenderCode code="7', 1),
        "UNKNOWN_TEMPLATE": good.replace("2.16.156.10011.2.1.1.22", "1.2.3"),
        "EMPTY_DOCUMENT": "",
    }
    for code, body in cases.items():
        r = client.post("/api/v1/documents", content=body.encode(), headers=headers)
        assert r.status_code == 422, r.text
        answer = r.json()
        assert answer["error"]["code"] == code and answer["problems"][0]["path"].startswith("/")
        assert "TOP-SECRET" not in r.text
    bomb = gzip.compress(b"<a>" + b" " * (MAX_BYTES * 4) + b"</a>")
    r = client.post("/api/v1/documents", content=bomb, headers={**headers, "Content-Encoding": "gzip"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "BODY_TOO_LARGE"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Record)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(Batch)).scalar_one() == 0

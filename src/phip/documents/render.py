"""Records → a CDA R2 document (WS/T 500 / WS/T 483), by a template: one renderer for every
document type. The header gets the fixed parts (realm, typeId, templateId, code, language,
confidentiality) and the template's header slots; the body one section per template section,
each with a narrative ``text`` a person can read and coded ``entry`` observations a system can.

The output is deterministic (effectiveTime is the record's event time, not the clock), so the
same records always render to the same bytes."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from lxml import etree

from phip.standard.catalog import load_standard

from .cda import NSMAP, XSI_TYPE, XSI_TYPES, ensure, number, q, ts
from .templates import Entry, Section, Template, Templates, load_templates

#: top-level header elements in the order CDA R2 (POCD_MT000040) requires them
ORDER = ("setId", "recordTarget", "author", "custodian", "legalAuthenticator", "componentOf")


def document_id(template: Template, org_code: str, key: str) -> str:
    """The document's id extension: type, institution and the document key."""
    return f"{template.code}.{org_code}.{key}"


def render(template: Template, records: Sequence[dict[str, Any]], templates: Templates | None = None) -> bytes:
    """The CDA XML (UTF-8, with declaration) of one document from its records (one, or the
    items of its group in order)."""
    templates = templates or load_templates()
    common = templates.common["header"]
    first = records[0]
    effective = ts(first[template.dataset.event_time], template.dataset.field(template.dataset.event_time).type)
    root = etree.Element(q("ClinicalDocument"), nsmap=NSMAP)
    etree.SubElement(root, q("realmCode"), code=common["realm_code"])
    etree.SubElement(root, q("typeId"), root=common["type_id"]["root"], extension=common["type_id"]["extension"])
    etree.SubElement(root, q("templateId"), root=template.template_id)
    etree.SubElement(root, q("id"), root=common["document_id_root"],
                     extension=document_id(template, str(first.get("org_code", "")), str(first.get(template.key_field, ""))))
    etree.SubElement(root, q("code"), code=template.code, codeSystem=common["document_code_system"],
                     codeSystemName=common["document_code_system_name"], displayName=template.name)
    etree.SubElement(root, q("title")).text = template.title
    etree.SubElement(root, q("effectiveTime"), value=effective)
    etree.SubElement(root, q("confidentialityCode"), **common["confidentiality"])
    etree.SubElement(root, q("languageCode"), code=common["language_code"])
    used = {e.slot.path.split("/")[0].split("[")[0] for e in template.header if e.slot}
    for name in ORDER:
        if name in used or name in ("recordTarget", "author", "custodian"):
            etree.SubElement(root, q(name))
    ensure(root, "recordTarget/patientRole").set("classCode", "PAT")
    ensure(root, "author/time").set("value", effective)
    for entry in template.header:
        value = first.get(entry.name)
        if value is not None and value != "":
            _header(ensure(root, entry.slot.path), entry, value)  # type: ignore[union-attr]
    assigned = ensure(root, "author/assignedAuthor")
    if assigned.find(q("id")) is None:
        assigned.insert(0, etree.Element(q("id"), nullFlavor="NI"))
    body = etree.SubElement(etree.SubElement(root, q("component")), q("structuredBody"))
    for section in template.sections:
        _section(body, section, records if section.repeat else records[:1])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _header(el: etree._Element, entry: Entry, value: Any) -> None:
    kind = entry.slot.kind  # type: ignore[union-attr]
    if kind == "id":
        el.set("extension", str(value))
    elif kind == "text":
        el.text = str(value)
    elif kind == "ts":
        el.set("value", ts(value, entry.field.type))
    elif kind == "tel":
        el.set("value", f"tel:{value}")
    else:
        _code(el, entry, value)


@cache
def _labels(domain_id: str) -> tuple[str, dict[str, str]]:
    """A value domain's name and code labels, built once (``code_map`` builds its dict per call)."""
    domain = load_standard().domains[domain_id]
    return domain.name, domain.code_map


def _code(el: etree._Element, entry: Entry, value: Any) -> None:
    name, labels = _labels(entry.field.domain or "")
    el.set("code", str(value))
    el.set("codeSystem", entry.domain_oid or "")
    el.set("codeSystemName", name)
    label = labels.get(str(value))
    if label:
        el.set("displayName", label)


def _display(entry: Entry, value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if entry.field.domain:
        label = _labels(entry.field.domain)[1].get(str(value))
        return f"{value} {label}" if label else str(value)
    return str(value).replace("T", " ") if entry.field.type == "datetime" else str(value)


def _section(body: etree._Element, section: Section, records: Sequence[dict[str, Any]]) -> None:
    present = [e for e in section.entries if any(r.get(e.name) not in (None, "") for r in records)]
    if not present and not section.required:
        return
    el = etree.SubElement(etree.SubElement(body, q("component")), q("section"))
    etree.SubElement(el, q("code"), code=section.code, codeSystem=section.code_system, displayName=section.title)
    etree.SubElement(el, q("title")).text = section.title
    text = etree.SubElement(el, q("text"))
    if section.repeat:
        table = etree.SubElement(text, q("table"))
        head = etree.SubElement(etree.SubElement(table, q("thead")), q("tr"))
        for e in present:
            etree.SubElement(head, q("th")).text = e.field.label
        rows = etree.SubElement(table, q("tbody"))
        for r in records:
            tr = etree.SubElement(rows, q("tr"))
            for e in present:
                etree.SubElement(tr, q("td")).text = "" if r.get(e.name) in (None, "") else _display(e, r[e.name])
        for r in records:
            organizer = etree.SubElement(etree.SubElement(el, q("entry")), q("organizer"), classCode="CLUSTER", moodCode="EVN")
            etree.SubElement(organizer, q("statusCode"), code="completed")
            for e in present:
                if r.get(e.name) not in (None, ""):
                    _observation(etree.SubElement(organizer, q("component")), e, r[e.name])
        return
    record = records[0]
    for e in present:
        etree.SubElement(text, q("paragraph")).text = f"{e.field.label}：{_display(e, record[e.name])}"
    for e in present:
        _observation(etree.SubElement(el, q("entry")), e, record[e.name])


def _observation(parent: etree._Element, entry: Entry, value: Any) -> None:
    obs = etree.SubElement(parent, q("observation"), classCode="OBS", moodCode="EVN")
    etree.SubElement(obs, q("code"), code=entry.code, codeSystem=entry.code_system, displayName=entry.field.label)
    kind = entry.field.type
    el = etree.SubElement(obs, q("value"))
    el.set(XSI_TYPE, XSI_TYPES[kind])
    if kind == "code":
        _code(el, entry, value)
    elif kind in ("int", "decimal"):
        el.set("value", number(value))
    elif kind in ("date", "datetime"):
        el.set("value", ts(value, kind))
    elif kind == "bool":
        el.set("value", "true" if value else "false")
    else:
        el.text = str(value)

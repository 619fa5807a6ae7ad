"""A received CDA document → records of the standard's data sets, by its template: one
reader for every document type. Every problem is collected with its path (up to
:data:`MAX_PROBLEMS`) so the sender fixes them in one round; any problem refuses the whole
document before anything is stored.

What is checked here is the document's shape: the CDA header, the template's sections and
entries, value types, and codes in their value domains under the right code system. The
records then go through the one pipeline like any JSON batch, which checks the rest (lengths,
ID numbers, dates in order) record by record."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from lxml import etree

from phip.standard.catalog import load_standard

from .cda import V3, XSI_TYPE, XSI_TYPES, find, from_bool, from_number, from_ts, q
from .problems import DocumentRefused, Problem, where
from .safexml import parse
from .templates import Entry, Section, Template, Templates, load_templates

MAX_PROBLEMS = 50
_OBSERVATIONS = f"{q('entry')}/{q('observation')}"
_ORGANIZERS = f"{q('entry')}/{q('organizer')}"
_COMPONENTS = f"{q('component')}/{q('observation')}"
_CODE, _VALUE = q("code"), q("value")


@dataclass
class Mapped:
    """A document read into records of one data set."""

    template: Template
    document_id: str
    records: list[dict[str, Any]]


class _Reader:
    def __init__(self, templates: Templates):
        self.templates = templates
        self.problems: list[Problem] = []

    def problem(self, code: str, message: str, at: etree._Element | str, suffix: str = "") -> None:
        """Record a problem; an element's path is worked out only then (most documents have none)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(code, message, (at if isinstance(at, str) else where(at)) + suffix))

    # -- header ---------------------------------------------------------------------------

    def template(self, root: etree._Element) -> Template | None:
        qn = etree.QName(root)
        if qn.localname != "ClinicalDocument":
            self.problem("WRONG_ROOT", f"根元素应为 ClinicalDocument，收到 {qn.localname}", root)
            return None
        if qn.namespace != V3:
            self.problem("WRONG_NAMESPACE", f"根元素应在 {V3} 命名空间，收到“{qn.namespace or '无命名空间'}”", root)
            return None
        for name in self.templates.common["required_header"]:
            if root.find(q(name)) is None:
                self.problem("HEADER_MISSING", f"缺少文档头必备元素 {name}", f"/ClinicalDocument/{name}")
        common = self.templates.common["header"]
        checks = (("realmCode", "code", common["realm_code"]), ("typeId", "extension", common["type_id"]["extension"]),
                  ("languageCode", "code", common["language_code"]))
        for name, attr, wanted in checks:
            el = root.find(q(name))
            if el is not None and el.get(attr) != wanted:
                self.problem("BAD_HEADER", f"{name}/@{attr} 应为“{wanted}”", el, f"/@{attr}")
        ids = [el.get("root", "") for el in root.iterchildren(q("templateId"))]
        template = next((self.templates.by_template_id[i] for i in ids if i in self.templates.by_template_id), None)
        if template is None:
            if ids:
                self.problem("UNKNOWN_TEMPLATE", f"templateId“{'、'.join(ids)}”不是平台支持的共享文档模板", "/ClinicalDocument/templateId/@root")
            return None
        code = root.find(q("code"))
        if code is not None and (code.get("code") != template.code or code.get("codeSystem") != common["document_code_system"]):
            self.problem("WRONG_DOCUMENT_CODE", f"文档类型代码应为 {template.code}（{template.name}，代码系统 "
                         f"{common['document_code_system']}），与 templateId 一致", code, "/@code")
        return template

    def header(self, root: etree._Element, template: Template) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for entry in template.header:
            slot = entry.slot
            assert slot is not None
            el = find(root, slot.path)
            raw = None
            if el is not None:
                raw = {"id": el.get("extension"), "text": el.text, "ts": el.get("value"), "code": el.get("code"),
                       "tel": (el.get("value") or "").removeprefix("tel:") or None}[slot.kind]
            if raw is None or raw.strip() == "":
                if entry.required:
                    self.problem("ENTRY_MISSING", f"缺少{entry.field.label}（{slot.path}）", f"/ClinicalDocument/{slot.path}")
                continue
            if slot.kind == "code":
                self.check_code(el, entry)
            values[entry.name] = self.convert(entry, raw.strip(), el)
        return values

    # -- body -----------------------------------------------------------------------------

    def sections(self, root: etree._Element, template: Template) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found: dict[tuple[str, str], etree._Element] = {}
        body = root.find(f"{q('component')}/{q('structuredBody')}")
        if body is None:
            self.problem("SECTION_MISSING", "缺少文档体 component/structuredBody", "/ClinicalDocument/component/structuredBody")
            return {}, []
        for section in body.iterfind(f"{q('component')}/{q('section')}"):
            code = section.find(q("code"))
            if code is not None:
                found.setdefault((code.get("codeSystem", ""), code.get("code", "")), section)
        values: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        for spec in template.sections:
            el = found.get((spec.code_system, spec.code))
            if el is None:
                if spec.required:
                    self.problem("SECTION_MISSING", f"缺少必备章节“{spec.title}”（{spec.code}）",
                                 body, f"/component/section[code/@code='{spec.code}']")
                continue
            if spec.repeat:
                items = self.repeated(el, spec)
            else:
                values.update(self.observations(el.iterfind(_OBSERVATIONS), spec, el))
        return values, items

    def repeated(self, el: etree._Element, spec: Section) -> list[dict[str, Any]]:
        organizers = list(el.iterfind(_ORGANIZERS))
        if not organizers and spec.required:
            self.problem("ENTRY_MISSING", f"章节“{spec.title}”至少应有一个条目", el, "/entry")
        return [self.observations(o.iterfind(_COMPONENTS), spec, o) for o in organizers]

    def observations(self, observations: Iterable[etree._Element], spec: Section, parent: etree._Element) -> dict[str, Any]:
        """The section's (or organizer's) entries by their code, in one pass over its observations."""
        wanted = _entries_by_code(spec)
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for obs in observations:
            code = obs.find(_CODE)
            entry = wanted.get((code.get("codeSystem", ""), code.get("code", ""))) if code is not None else None
            if entry is None:
                continue  # an observation the template does not map: kept in the document, not in records
            if entry.name in seen:
                self.problem("ENTRY_REPEATED", f"条目“{entry.field.label}”（{entry.code}）出现多次", obs)
                continue
            seen.add(entry.name)
            value = obs.find(_VALUE)
            if value is None:
                self.problem("ENTRY_MISSING", f"条目“{entry.field.label}”没有 value", obs, "/value")
                continue
            read = self.value(value, entry)
            if read is not None:
                values[entry.name] = read
        for entry in spec.entries:
            if entry.required and entry.name not in seen:
                self.problem("ENTRY_MISSING", f"章节“{spec.title}”缺少必填条目“{entry.field.label}”（{entry.code}）",
                             parent, f"/entry/observation[code/@code='{entry.code}']")
        return values

    def value(self, el: etree._Element, entry: Entry) -> Any:
        kind = entry.field.type
        wanted = XSI_TYPES[kind]
        declared = el.get(XSI_TYPE, "")
        if declared != wanted and declared.split(":")[-1] != wanted:
            self.problem("BAD_VALUE", f"“{entry.field.label}”的 xsi:type 应为 {wanted}，收到“{declared or '无'}”", el, "/@xsi:type")
            return None
        if kind == "code":
            self.check_code(el, entry)
            raw = el.get("code")
        elif kind in ("string", "text"):
            raw = el.text
        else:
            raw = el.get("value")
        if raw is None or raw.strip() == "":
            if el.get("nullFlavor") is None and entry.required:
                self.problem("ENTRY_MISSING", f"“{entry.field.label}”的值为空", el)
            return None
        return self.convert(entry, raw if kind == "text" else raw.strip(), el)

    def check_code(self, el: etree._Element, entry: Entry) -> None:
        code, system = el.get("code") or "", el.get("codeSystem") or ""
        if system != entry.domain_oid:
            self.problem("WRONG_CODE_SYSTEM", f"“{entry.field.label}”的代码系统应为 {entry.domain_oid}，收到“{system or '无'}”",
                         el, "/@codeSystem")
            return
        if not _in_domain(entry.field.domain or "", code):
            domain = load_standard().domains[entry.field.domain or ""]
            self.problem("CODE_OUT_OF_DOMAIN", f"“{entry.field.label}”的代码“{code}”不在值域“{domain.name}”（{domain.standard}）内",
                         el, "/@code")

    def convert(self, entry: Entry, raw: str, el: etree._Element) -> Any:
        kind = entry.field.type
        try:
            if kind in ("date", "datetime"):
                return from_ts(raw, kind)
            if kind in ("int", "decimal"):
                return from_number(raw, kind)
            if kind == "bool":
                return from_bool(raw)
        except ValueError:
            if kind in ("date", "datetime"):
                self.problem("BAD_DATE", f"“{entry.field.label}”的值“{raw[:40]}”不是有效的日期（时间），应为 YYYYMMDD[HHMMSS]", el)
            else:
                self.problem("BAD_VALUE", f"“{entry.field.label}”的值“{raw[:40]}”不是有效的{XSI_TYPES[kind]}值", el)
            return None
        return raw


_BY_CODE: dict[int, tuple[Section, dict[tuple[str, str], Entry]]] = {}


def _entries_by_code(section: Section) -> dict[tuple[str, str], Entry]:
    """A section's entries by (code system, code), memoised by identity: hashing a frozen
    section would hash every field spec of it on each call."""
    memo = _BY_CODE.get(id(section))
    if memo is None or memo[0] is not section:
        memo = _BY_CODE[id(section)] = (section, {(e.code_system, e.code): e for e in section.entries})
    return memo[1]


@cache
def _domain_check(domain_id: str) -> Callable[[str], bool]:
    """Whether a code is one of a value domain's (exactly as the table spells it), or matches a
    code system's pattern (ICD-10, ICD-9-CM: too large to list)."""
    domain = load_standard().domains[domain_id]
    if domain.kind == "table":
        return frozenset(domain.code_map).__contains__
    pattern = re.compile(domain.pattern or ".*")
    return lambda code: pattern.match(code) is not None


def _in_domain(domain_id: str, code: str) -> bool:
    return _domain_check(domain_id)(code)


def read(body: bytes, templates: Templates | None = None) -> Mapped:
    """Parse, check and map one document; DocumentRefused with every problem found."""
    templates = templates or load_templates()
    root = parse(body)
    reader = _Reader(templates)
    template = reader.template(root)
    if template is None or reader.problems:
        raise DocumentRefused(reader.problems or [Problem("UNKNOWN_TEMPLATE", "文档没有 templateId", "/ClinicalDocument/templateId")])
    values = reader.header(root, template)
    body_values, items = reader.sections(root, template)
    values.update(body_values)
    if reader.problems:
        raise DocumentRefused(reader.problems)
    records = [{**values, **item} for item in items] if template.group else [values]
    doc_id = root.find(q("id"))
    return Mapped(template, (doc_id.get("extension") if doc_id is not None else None) or "", records)

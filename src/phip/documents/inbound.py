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

from .cda import V3, XSI_TYPE, XSI_TYPES, from_bool, from_date, from_datetime, from_real, q, steps
from .problems import DocumentRefused, Problem, where
from .safexml import parse
from .templates import Entry, Section, Slot, Template, Templates, load_templates

MAX_PROBLEMS = 50
_BODY = f"{q('component')}/{q('structuredBody')}"
_SECTIONS = f"{q('component')}/{q('section')}"
_ENTRY, _ORGANIZER, _OBSERVATION, _COMPONENT = q("entry"), q("organizer"), q("observation"), q("component")
_CODE, _VALUE, _TEMPLATE_ID, _ID = q("code"), q("value"), q("templateId"), q("id")


@dataclass
class Mapped:
    """A document read into records of one data set."""

    template: Template
    document_id: str
    records: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Field:
    """An entry compiled for reading: what the per-observation loop needs, looked up once per
    process instead of through the field spec, the domain table and the type table each time."""

    entry: Entry
    name: str
    label: str
    kind: str
    xsi: str
    required: bool
    source: int  # where the value is: _ATTR_CODE, _TEXT or _ATTR_VALUE
    in_domain: Callable[[str], bool] | None  # a coded field's value domain
    convert: Callable[[str], Any] | None  # text to the standard's spelling (ValueError); None: kept as is


_ATTR_CODE, _TEXT, _ATTR_VALUE = 0, 1, 2
_CONVERT: dict[str, Callable[[str], Any]] = {"date": from_date, "datetime": from_datetime, "int": int, "decimal": from_real,
                                             "bool": from_bool}


@dataclass(frozen=True, slots=True)
class _SectionPlan:
    """A section's entries keyed by observation code, then code system (one dict hit per
    observation), and its required entries for the check after the pass."""

    spec: Section
    by_code: dict[str, dict[str, _Field]]
    required: tuple[_Field, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A template compiled for reading once: header slots with their path steps, sections by
    (code system, code)."""

    prefixes: tuple[tuple[int, str, str | None, str | None], ...]  # (parent prefix, step), parents first; 0 = root
    header: tuple[tuple[_Field, Slot, int], ...]  # a slot's field and the prefix its path ends at
    sections: tuple[_SectionPlan, ...]


def _header_plan(template: Template) -> tuple[tuple, tuple]:
    """Header slot paths as a tree of prefixes (most slots share recordTarget/patientRole/…),
    so a document's header is walked once, each step for every slot below it."""
    index: dict[tuple, int] = {(): 0}
    prefixes: list[tuple[int, str, str | None, str | None]] = []
    header = []
    for entry in template.header:
        assert entry.slot is not None
        path = steps(entry.slot.path)
        for i in range(1, len(path) + 1):
            if path[:i] not in index:
                index[path[:i]] = len(prefixes) + 1
                prefixes.append((index[path[:i - 1]], *path[i - 1]))
        header.append((_field(entry), entry.slot, index[path]))
    return tuple(prefixes), tuple(header)


def _field(entry: Entry) -> _Field:
    spec = entry.field
    kind = spec.type
    source = _ATTR_CODE if kind == "code" else _TEXT if kind in ("string", "text") else _ATTR_VALUE
    in_domain = _domain_check(spec.domain) if kind == "code" or (entry.slot and entry.slot.kind == "code") else None
    return _Field(entry, entry.name, spec.label, kind, XSI_TYPES[kind], entry.required, source, in_domain, _CONVERT.get(kind))


def _section_plan(spec: Section) -> _SectionPlan:
    by_code: dict[str, dict[str, _Field]] = {}
    fields = [_field(e) for e in spec.entries]
    for f in fields:
        by_code.setdefault(f.entry.code, {})[f.entry.code_system] = f
    return _SectionPlan(spec, by_code, tuple(f for f in fields if f.required))


_PLANS: dict[int, tuple[Template, _Plan]] = {}


def _plan(template: Template) -> _Plan:
    """The template's reading plan, memoised by identity (a template holds dicts: not hashable)."""
    memo = _PLANS.get(id(template))
    if memo is None or memo[0] is not template:
        memo = _PLANS[id(template)] = (template, _Plan(*_header_plan(template), tuple(_section_plan(s) for s in template.sections)))
    return memo[1]


class _Reader:
    def __init__(self, templates: Templates):
        self.templates = templates
        self.problems: list[Problem] = []

    def problem(self, code: str, message: str, at: etree._Element | str, suffix: str = "") -> None:
        """Record a problem; an element's path is worked out only then (most documents have none)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(code, message, (at if isinstance(at, str) else where(at)) + suffix))

    # -- header ---------------------------------------------------------------------------

    def template(self, root: etree._Element, first: dict[str, etree._Element]) -> Template | None:
        """The template the document names; ``first`` is its first child of each tag."""
        qn = etree.QName(root)
        if qn.localname != "ClinicalDocument":
            self.problem("WRONG_ROOT", f"根元素应为 ClinicalDocument，收到 {qn.localname}", root)
            return None
        if qn.namespace != V3:
            self.problem("WRONG_NAMESPACE", f"根元素应在 {V3} 命名空间，收到“{qn.namespace or '无命名空间'}”", root)
            return None
        for name in self.templates.common["required_header"]:
            if q(name) not in first:
                self.problem("HEADER_MISSING", f"缺少文档头必备元素 {name}", f"/ClinicalDocument/{name}")
        common = self.templates.common["header"]
        checks = (("realmCode", "code", common["realm_code"]), ("typeId", "extension", common["type_id"]["extension"]),
                  ("languageCode", "code", common["language_code"]))
        for name, attr, wanted in checks:
            el = first.get(q(name))
            if el is not None and el.get(attr) != wanted:
                self.problem("BAD_HEADER", f"{name}/@{attr} 应为“{wanted}”", el, f"/@{attr}")
        ids = [el.get("root", "") for el in root.iterchildren(_TEMPLATE_ID)]
        template = next((self.templates.by_template_id[i] for i in ids if i in self.templates.by_template_id), None)
        if template is None:
            if ids:
                self.problem("UNKNOWN_TEMPLATE", f"templateId“{'、'.join(ids)}”不是平台支持的共享文档模板", "/ClinicalDocument/templateId/@root")
            return None
        code = first.get(_CODE)
        if code is not None and (code.get("code") != template.code or code.get("codeSystem") != common["document_code_system"]):
            self.problem("WRONG_DOCUMENT_CODE", f"文档类型代码应为 {template.code}（{template.name}，代码系统 "
                         f"{common['document_code_system']}），与 templateId 一致", code, "/@code")
        return template

    def header(self, root: etree._Element, plan: _Plan) -> dict[str, Any]:
        values: dict[str, Any] = {}
        found = _prefixes(root, plan.prefixes)
        for f, slot, at in plan.header:
            el = found[at][0] if found[at] else None
            raw = None
            if el is not None:
                kind = slot.kind
                raw = el.get("extension") if kind == "id" else el.text if kind == "text" else el.get("value") if kind == "ts" \
                    else el.get("code") if kind == "code" else (el.get("value") or "").removeprefix("tel:") or None
            if raw is None or raw.strip() == "":
                if f.required:
                    self.problem("ENTRY_MISSING", f"缺少{f.label}（{slot.path}）", f"/ClinicalDocument/{slot.path}")
                continue
            if slot.kind == "code":
                self.check_code(el, f)
            values[f.name] = self.convert(f, raw.strip(), el)
        return values

    # -- body -----------------------------------------------------------------------------

    def sections(self, root: etree._Element, plan: _Plan) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found: dict[tuple[str, str], etree._Element] = {}
        body = root.find(_BODY)
        if body is None:
            self.problem("SECTION_MISSING", "缺少文档体 component/structuredBody", "/ClinicalDocument/component/structuredBody")
            return {}, []
        repeated: set[tuple[str, str]] = set()
        for section in body.iterfind(_SECTIONS):
            code = section.find(_CODE)
            if code is not None:
                key = (code.get("codeSystem", ""), code.get("code", ""))
                if key in found:
                    repeated.add(key)  # the second's values were silently dropped
                found.setdefault(key, section)
        values: dict[str, Any] = {}
        items: list[dict[str, Any]] = []
        for sp in plan.sections:
            spec = sp.spec
            el = found.get((spec.code_system, spec.code))
            if (spec.code_system, spec.code) in repeated and not spec.repeat:
                self.problem("SECTION_REPEATED", f"章节“{spec.title}”（{spec.code}）出现多次", body,
                             f"/component/section[code/@code='{spec.code}'][2]")
            if el is None:
                if spec.required:
                    self.problem("SECTION_MISSING", f"缺少必备章节“{spec.title}”（{spec.code}）",
                                 body, f"/component/section[code/@code='{spec.code}']")
                continue
            if spec.repeat:
                items = self.repeated(el, sp)
            else:
                values.update(self.observations(el, _ENTRY, sp))
        return values, items

    def repeated(self, el: etree._Element, sp: _SectionPlan) -> list[dict[str, Any]]:
        organizers = list(_children(el, _ENTRY, _ORGANIZER))
        if not organizers and sp.spec.required:
            self.problem("ENTRY_MISSING", f"章节“{sp.spec.title}”至少应有一个条目", el, "/entry")
        return [self.observations(o, _COMPONENT, sp) for o in organizers]

    def observations(self, parent: etree._Element, wrapper: str, sp: _SectionPlan) -> dict[str, Any]:
        """The entries of a section (``wrapper`` entry) or organizer (component) by their code,
        in one pass over its observations. The usual values are read inline (a call per value
        costs more than reading it): a code, a date, a number, a text."""
        by_code = sp.by_code
        values: dict[str, Any] = {}
        seen: set[str] = set()
        for wrap in parent.iterchildren(wrapper):
            for obs in wrap.iterchildren(_OBSERVATION):
                code = value = None
                for child in obs:  # the first code and the first value, in one walk of the children
                    tag = child.tag
                    if tag == _CODE:
                        if code is None:
                            code = child
                    elif tag == _VALUE and value is None:
                        value = child
                if code is None:
                    continue
                systems = by_code.get(code.get("code", ""))
                f = systems.get(code.get("codeSystem", "")) if systems is not None else None
                if f is None:
                    continue  # an observation the template does not map: kept in the document, not in records
                name = f.name
                if name in seen:
                    self.problem("ENTRY_REPEATED", f"条目“{f.label}”（{f.entry.code}）出现多次", obs)
                    continue
                seen.add(name)
                if value is None:
                    self.problem("ENTRY_MISSING", f"条目“{f.label}”没有 value", obs, "/value")
                    continue
                declared = value.get(XSI_TYPE)
                source = f.source
                if declared == f.xsi:
                    if source == _ATTR_VALUE:
                        raw = value.get("value")
                    elif source == _TEXT:
                        raw = value.text
                    else:
                        raw = value.get("code")
                        if value.get("codeSystem") != f.entry.domain_oid or f.in_domain is None or not f.in_domain(raw or ""):
                            raw = None  # wrong system or out of the domain: the careful way names the problem
                    if raw and (stripped := raw.strip()):
                        convert = f.convert
                        if convert is None:
                            values[name] = raw if f.kind == "text" else stripped
                            continue
                        try:
                            values[name] = convert(stripped)
                            continue
                        except ValueError:
                            pass
                read = self.value(value, f)  # anything unusual: checked the careful way, problems named
                if read is not None:
                    values[name] = read
        for f in sp.required:
            if f.name not in seen:
                self.problem("ENTRY_MISSING", f"章节“{sp.spec.title}”缺少必填条目“{f.label}”（{f.entry.code}）",
                             parent, f"/entry/observation[code/@code='{f.entry.code}']")
        return values

    def value(self, el: etree._Element, f: _Field) -> Any:
        declared = el.get(XSI_TYPE, "")
        wanted = f.xsi
        if declared != wanted and declared.split(":")[-1] != wanted:
            self.problem("BAD_VALUE", f"“{f.label}”的 xsi:type 应为 {wanted}，收到“{declared or '无'}”", el, "/@xsi:type")
            return None
        source = f.source
        if source == _ATTR_CODE:
            self.check_code(el, f)
            raw = el.get("code")
        elif source == _TEXT:
            raw = el.text
        else:
            raw = el.get("value")
        if raw is None or raw.strip() == "":
            if el.get("nullFlavor") is None and f.required:
                self.problem("ENTRY_MISSING", f"“{f.label}”的值为空", el)
            return None
        return self.convert(f, raw if f.kind == "text" else raw.strip(), el)

    def check_code(self, el: etree._Element, f: _Field) -> None:
        code, system = el.get("code") or "", el.get("codeSystem") or ""
        if system != f.entry.domain_oid:
            self.problem("WRONG_CODE_SYSTEM", f"“{f.label}”的代码系统应为 {f.entry.domain_oid}，收到“{system or '无'}”",
                         el, "/@codeSystem")
            return
        if f.in_domain is None or not f.in_domain(code):
            domain = load_standard().domains[f.entry.field.domain or ""]
            self.problem("CODE_OUT_OF_DOMAIN", f"“{f.label}”的代码“{code}”不在值域“{domain.name}”（{domain.standard}）内",
                         el, "/@code")

    def convert(self, f: _Field, raw: str, el: etree._Element) -> Any:
        if f.convert is None:
            return raw
        try:
            return f.convert(raw)
        except ValueError:
            if f.kind in ("date", "datetime"):
                self.problem("BAD_DATE", f"“{f.label}”的值“{raw[:40]}”不是有效的日期（时间），应为 YYYYMMDD[HHMMSS]", el)
            else:
                self.problem("BAD_VALUE", f"“{f.label}”的值“{raw[:40]}”不是有效的{f.xsi}值", el)
            return None


def _children(parent: etree._Element, outer: str, inner: str) -> Iterable[etree._Element]:
    """``parent.iterfind("outer/inner")`` without ElementPath's per-call path handling."""
    for el in parent.iterchildren(outer):
        yield from el.iterchildren(inner)


def _prefixes(root: etree._Element, prefixes: tuple[tuple[int, str, str | None, str | None], ...]) -> list[list[etree._Element]]:
    """The elements at each header path prefix, in document order (:func:`.cda.find` takes the first)."""
    found: list[list[etree._Element]] = [[root]]
    for parent, tag, attr, value in prefixes:
        found.append([c for n in found[parent] for c in n.iterchildren(tag) if attr is None or c.get(attr) == value])
    return found


@cache
def _domain_check(domain_id: str) -> Callable[[str], bool]:
    """Whether a code is one of a value domain's (exactly as the table spells it), or matches a
    code system's pattern (ICD-10, ICD-9-CM: too large to list)."""
    domain = load_standard().domains[domain_id]
    if domain.kind == "table":
        return frozenset(domain.code_map).__contains__
    pattern = re.compile(domain.pattern or ".*")
    return lambda code: pattern.match(code) is not None


def read(body: bytes, templates: Templates | None = None) -> Mapped:
    """Parse, check and map one document; DocumentRefused with every problem found."""
    templates = templates or load_templates()
    root = parse(body)
    first: dict[str, etree._Element] = {}
    for child in root:  # the header's parts, each looked up once
        first.setdefault(child.tag, child)
    reader = _Reader(templates)
    template = reader.template(root, first)
    if template is None or reader.problems:
        raise DocumentRefused(reader.problems or [Problem("UNKNOWN_TEMPLATE", "文档没有 templateId", "/ClinicalDocument/templateId")])
    plan = _plan(template)
    values = reader.header(root, plan)
    body_values, items = reader.sections(root, plan)
    values.update(body_values)
    if reader.problems:
        raise DocumentRefused(reader.problems)
    records = [{**values, **item} for item in items] if template.group else [values]
    doc_id = first.get(_ID)
    return Mapped(template, (doc_id.get("extension") if doc_id is not None else None) or "", records)

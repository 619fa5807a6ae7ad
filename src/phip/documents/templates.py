"""Shared-document templates (WS/T 500 电子病历共享文档, WS/T 483 健康档案共享文档) as data.

Each ``data/templates/*.yaml`` describes one document type: its number and name in the
standard, its templateId, the data set whose records fill it, which fields go to the CDA
header and which to each body section. ``data/common.yaml`` holds what every document shares
(header constants, code systems, header slots). One renderer (:mod:`.render`) and one reader
(:mod:`.inbound`) work from these objects; no document type has code of its own.

Loading cross-checks every template against the standard, so a template that could never
round-trip (a required field of its data set carried nowhere, a coded field without a code
system, two entries one code in a section) fails at load, not at the first document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from phip.datafiles import load_yaml
from phip.standard.catalog import DataSet, FieldSpec, Standard, StandardError, load_standard

DATA = Path(__file__).parent / "data"
Cardinality = Literal["required", "optional"]
SlotKind = Literal["id", "text", "code", "ts", "tel"]


@dataclass(frozen=True, slots=True)
class Slot:
    """A place in the CDA header: a path of steps below ClinicalDocument and how a value is written."""

    name: str
    path: str
    kind: SlotKind
    verified: bool


@dataclass(frozen=True, slots=True)
class Entry:
    """One field of a data set as an observation (body) or a header slot."""

    field: FieldSpec
    code: str  # observation code: the WS 363 data element, or the field name in the local system
    code_system: str
    required: bool
    slot: Slot | None = None  # set for header entries
    domain_oid: str | None = None  # code system of a coded value

    @property
    def name(self) -> str:
        return self.field.name


@dataclass(frozen=True, slots=True)
class Section:
    code: str
    code_system: str
    title: str
    required: bool
    repeat: bool  # one entry (an organizer) per record of the document's group
    verified: bool
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Template:
    code: str  # C0002, B0001
    name: str
    standard: str  # the part of WS/T 500 or WS/T 483 it follows
    template_id: str
    verified: dict[str, Any]
    dataset: DataSet
    group: str | None  # the field joining several records into one document
    header: tuple[Entry, ...]
    sections: tuple[Section, ...]
    title: str
    key_field: str  # what a reader names the document by (the group, else the natural key)

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field the document carries (the round trip keeps exactly these)."""
        return tuple(e.name for e in self.header) + tuple(e.name for s in self.sections for e in s.entries)

    @property
    def item_fields(self) -> tuple[str, ...]:
        return tuple(e.name for s in self.sections if s.repeat for e in s.entries)


@dataclass(frozen=True)
class Templates:
    """Every template, by document code and by templateId, with the common parts."""

    by_code: dict[str, Template]
    common: dict[str, Any]
    slots: dict[str, Slot]
    domain_oids: dict[str, str]  # value domain id -> code system OID
    by_template_id: dict[str, Template] = field(init=False)
    domain_of_oid: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_template_id", {t.template_id: t for t in self.by_code.values()})
        object.__setattr__(self, "domain_of_oid", {oid: d for d, oid in self.domain_oids.items()})

    def get(self, ref: str) -> Template:
        """A template by document code (``C0002``, case-insensitive) or by data set code."""
        text = ref.strip()
        if text.upper() in self.by_code:
            return self.by_code[text.upper()]
        for t in self.by_code.values():
            if text == t.dataset.code:
                return t
        raise KeyError(text)


def _local(text: str, local: str) -> str:
    return text.replace("{local}", local)


def _domain_oids(std: Standard, common: dict[str, Any], local: str) -> dict[str, str]:
    oids = {d.id: d.oid for d in std.domains.values() if d.oid}
    for d, oid in (common.get("local_domains") or {}).items():
        oids.setdefault(d, _local(str(oid), local))
    return oids


def _entry(spec: FieldSpec, raw: dict[str, Any], systems: dict[str, str], oids: dict[str, str], where: str,
           slot: Slot | None = None) -> Entry:
    if spec.domain and spec.domain not in oids:
        raise StandardError(f"{where}: field {spec.name}: value domain {spec.domain} has no code system OID "
                            "(add it to common.yaml local_domains)")
    code = raw.get("code") or spec.de
    system = systems["data_element"] if code else systems["local_field"]
    cardinality = raw.get("cardinality", "required" if spec.required else "optional")
    return Entry(spec, code or spec.name, system, cardinality == "required", slot, oids.get(spec.domain or ""))


def _section(raw: dict[str, Any], ds: DataSet, systems: dict[str, str], oids: dict[str, str], where: str) -> Section:
    entries: list[Entry] = []
    seen: set[tuple[str, str]] = set()
    for item in raw["entries"]:
        item = {"field": item} if isinstance(item, str) else dict(item)
        try:
            spec = ds.field(item["field"])
        except KeyError:
            raise StandardError(f"{where}: section {raw['title']} names unknown field {item['field']}") from None
        entry = _entry(spec, item, systems, oids, where)
        if (entry.code_system, entry.code) in seen:  # a data element used twice: the field name tells them apart
            entry = Entry(spec, spec.name, systems["local_field"], entry.required, None, entry.domain_oid)
        seen.add((entry.code_system, entry.code))
        entries.append(entry)
    system = systems["local_section"] if raw.get("local") else systems["loinc"]
    return Section(str(raw["code"]), system, raw["title"], raw.get("cardinality", "optional") == "required",
                   bool(raw.get("repeat")), bool(raw.get("verified", False)), tuple(entries))


def _template(raw: dict[str, Any], std: Standard, common: dict[str, Any], slots: dict[str, Slot],
              oids: dict[str, str], where: str) -> Template:
    local = common["local_root"]
    systems = {k: _local(str(v), local) for k, v in common["code_systems"].items()}
    ds = std.dataset(raw["dataset"])
    header_map = {k: v for k, v in common["default_header"].items() if k in {f.name for f in ds.fields}}
    header_map.update(raw.get("header") or {})
    header: list[Entry] = []
    for name, slot_name in header_map.items():
        if slot_name is None:
            continue
        if slot_name not in slots:
            raise StandardError(f"{where}: header field {name} names unknown slot {slot_name}")
        header.append(_entry(ds.field(name), {}, systems, oids, where, slots[slot_name]))
    order = list(slots)  # header parts in CDA order, whatever order the template lists them
    header.sort(key=lambda e: order.index(e.slot.name) if e.slot else 0)
    sections = tuple(_section(s, ds, systems, oids, where) for s in raw["sections"])
    template = Template(
        code=raw["code"], name=raw["name"], standard=raw["standard"], template_id=raw["template_id"],
        verified=dict(raw.get("verified") or {}), dataset=ds, group=raw.get("group"), header=tuple(header),
        sections=sections, title=raw.get("title", raw["name"]),
        key_field=raw.get("group") or ds.natural_key[0],
    )
    _check(template, where)
    return template


def _check(t: Template, where: str) -> None:
    carried = t.fields
    twice = {n for n in carried if carried.count(n) > 1}
    if twice:
        raise StandardError(f"{where}: fields carried twice {sorted(twice)}")
    missing = [f.name for f in t.dataset.fields if (f.required or f.name in t.dataset.natural_key) and f.name not in carried]
    if missing:
        raise StandardError(f"{where}: required fields of {t.dataset.code} carried nowhere: {missing}")
    repeats = [s for s in t.sections if s.repeat]
    if bool(t.group) != bool(repeats) or len(repeats) > 1:
        raise StandardError(f"{where}: a grouped document has exactly one repeating section, others none")
    if t.group:
        items = set(t.item_fields)
        if t.group in items or not set(t.dataset.natural_key) - {t.group} <= items:
            raise StandardError(f"{where}: the group field is the document's, the rest of the natural key each item's")
    if not (len(t.dataset.natural_key) == 1 or t.group):
        raise StandardError(f"{where}: a data set with a composite key needs a group field")


@cache
def load_templates(data: Path = DATA) -> Templates:
    """Load and cross-check the templates once per process."""
    std = load_standard()
    common = load_yaml(data / "common.yaml")
    local = common["local_root"]
    slots = {n: Slot(n, _local(s["path"], local), s["kind"], bool(s.get("verified"))) for n, s in common["slots"].items()}
    oids = _domain_oids(std, common, local)
    templates: dict[str, Template] = {}
    for path in sorted((data / "templates").glob("*.yaml")):
        try:
            t = _template(load_yaml(path), std, common, slots, oids, path.name)
        except (KeyError, TypeError) as exc:
            raise StandardError(f"{path.name}: {exc!r}") from exc
        if t.code in templates or any(x.template_id == t.template_id for x in templates.values()):
            raise StandardError(f"{path.name}: document code or templateId used twice")
        templates[t.code] = t
    return Templates(templates, common, slots, oids)

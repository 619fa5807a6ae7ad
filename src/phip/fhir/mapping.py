"""The FHIR mapping as objects (``data/mapping.yaml``): systems, and per resource type the
data sets, parts and groups that fill it. Checked against the standard when loaded, so a
mapping naming a field or data set that does not exist fails at start-up, not on a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from phip.errors import PhipError
from phip.standard.catalog import Standard, load_standard

DATA = Path(__file__).parent / "data" / "mapping.yaml"


class MappingError(PhipError):
    """The mapping file contradicts the standard (a developer's error, caught by the tests)."""

    def __init__(self, message: str):
        super().__init__("FHIR_MAPPING", message)


@dataclass(frozen=True)
class Part:
    """One resource of a record: ``suffix`` makes its id ``<record id>-<suffix>``."""

    suffix: str | None
    when: str | None
    elements: dict[str, Any]


@dataclass(frozen=True)
class Source:
    """A data set that fills a resource type."""

    resource: str
    dataset: str
    date: str
    category: tuple[str | None, str, str] | None  # (system uri, code, display) the search matches
    parts: tuple[Part, ...]
    group: str | None = None  # payload field joining records into one resource
    members: tuple[str, str] | None = None  # (element, resource type) of the group's records
    when: str | None = None

    def part(self, suffix: str | None) -> Part | None:
        return next((p for p in self.parts if p.suffix == suffix), None)


@dataclass(frozen=True)
class ResourceMap:
    type: str
    patient_element: str
    code_element: str | None
    sources: tuple[Source, ...]

    def source(self, dataset: str) -> Source | None:
        return next((s for s in self.sources if s.dataset == dataset), None)

    @property
    def datasets(self) -> list[str]:
        return [s.dataset for s in self.sources]


@dataclass(frozen=True, eq=False)
class Mapping:
    systems: dict[str, dict[str, str]]
    code_systems: dict[str, str]
    local_code_system: str
    resources: dict[str, ResourceMap] = field(default_factory=dict)
    encounter_of: dict[str, Any] = field(default_factory=dict)

    def encounter_dataset(self, dataset: str, visit_type: Any) -> str:
        """The visit data set a record's visit number points into."""
        how = self.encounter_of
        if dataset in how["datasets"].values() or dataset == how["default"]:
            return dataset
        if visit_type in (None, ""):
            return how["absent"]
        return how["datasets"].get(str(visit_type), how["default"])

    def system(self, key: str, org: str = "", scope: str = "") -> str:
        """The URI of a system key (or a URI given as is), ``{org}``/``{scope}`` filled in."""
        uri = self.systems[key]["uri"] if key in self.systems else key
        return uri.replace("{org}", org).replace("{scope}", scope)

    def domain_system(self, domain: str, standard: Standard) -> str:
        """A value domain's code system: listed here, else ``urn:oid:`` of its OID, else local."""
        if domain in self.code_systems:
            return self.code_systems[domain]
        vd = standard.domains.get(domain)
        if vd is not None and vd.oid:
            return f"urn:oid:{vd.oid}"
        return self.local_code_system + domain


def fields_of(spec: Any) -> set[str]:
    """Payload fields an element spec reads (to check them against the standard)."""
    out: set[str] = set()
    if isinstance(spec, dict):
        for key in ("field", "coding", "display", "quantity", "identifier", "if", "code_of", "text"):
            value = spec.get(key)
            if isinstance(value, str):
                out.add(value)
            elif isinstance(value, list):
                out.update(v for v in value if isinstance(v, str))
        for key in ("then", "else"):
            out |= fields_of(spec.get(key))
        out.update(str(v).split("@")[0] for v in spec.get("join", []))
        if "const" in spec:
            return set()
    return out


def _source(rtype: str, raw: dict[str, Any], systems: dict[str, dict[str, str]], std: Standard) -> Source:
    ds = std.dataset(raw["dataset"])
    if ds.event_time != raw["date"]:
        raise MappingError(f"{rtype} from {ds.code}: date {raw['date']} is not the data set's event time {ds.event_time}")
    common = raw.get("common", {})
    if "parts" in raw:
        parts = tuple(Part(p["suffix"], p.get("when"), {**common, **p["elements"]}) for p in raw["parts"])
    else:
        parts = (Part(None, None, {**common, **raw["elements"]}),)
    names = {f.name for f in ds.fields}
    for part in parts:
        for path, spec in part.elements.items():
            unknown = {f for f in fields_of(spec) | {part.when, raw.get("when"), raw.get("group")} if f and f not in names}
            if unknown:
                raise MappingError(f"{rtype}.{path} from {ds.code}: no field {sorted(unknown)}")
    category = None
    if raw.get("category"):
        key, code, display = raw["category"]
        category = (systems[key]["uri"] if key in systems else None, code, display)
    members = raw.get("members")
    return Source(rtype, ds.code, raw["date"], category, parts, raw.get("group"),
                  (members["element"], members["resource"]) if members else None, raw.get("when"))


@cache
def load_mapping(path: Path = DATA) -> Mapping:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    std = load_standard()
    systems = raw["systems"]
    code_systems = {k: v["uri"] for k, v in raw["code_systems"].items()}
    resources = {}
    for rtype, spec in raw["resources"].items():
        sources = tuple(_source(rtype, s, systems, std) for s in spec["sources"])
        resources[rtype] = ResourceMap(rtype, spec["patient_element"], spec.get("code"), sources)
    return Mapping(systems, code_systems, raw["local_code_system"], resources, raw["encounter_of"])

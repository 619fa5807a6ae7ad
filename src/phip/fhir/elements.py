"""The generic mapper: one stored record (its payload) and the element specs of
``data/mapping.yaml`` give one FHIR resource as a dict. It knows no resource type; what is
FHIR-shaped here is only the handful of data types the specs produce (CodeableConcept,
Coding, Quantity, Identifier, Reference, dateTime)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from phip.standard.catalog import DataSet, Standard
from phip.standard.clock import PLATFORM_TZ

from .mapping import Mapping

_STEP = re.compile(r"^([A-Za-z]+)(?:\[(\d+)\])?$")


@dataclass
class Context:
    """What a record's resource needs besides its payload."""

    mapping: Mapping
    standard: Standard
    dataset: DataSet
    org: str
    patient_ref: str
    encounter_ref: str | None = None

    def label(self, name: str, code: Any) -> str | None:
        spec = self.dataset.field(name)
        if not spec.domain or spec.domain not in self.standard.domains:
            return None
        return self.standard.domains[spec.domain].code_map.get(str(code))

    def domain_system(self, name: str) -> str | None:
        spec = self.dataset.field(name)
        return self.mapping.domain_system(spec.domain, self.standard) if spec.domain else None


def present(value: Any) -> bool:
    return value not in (None, "", False, [])


def _first(payload: dict[str, Any], names: str | list[str]) -> Any:
    for name in [names] if isinstance(names, str) else names:
        if present(payload.get(name)):
            return payload[name]
    return None


def fhir_datetime(value: Any, instant: bool = False) -> str | None:
    """A stored local time as FHIR dateTime/instant, with the platform's offset (FHIR requires
    a zone once a time is given)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=PLATFORM_TZ).isoformat(timespec="seconds")
    if isinstance(value, date) and not instant:
        return value.isoformat()
    return None


def _typed(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("dateTime", "instant"):
        return fhir_datetime(value, kind == "instant")
    if kind == "date":
        return str(value)[:10]
    if kind == "decimal":
        return _decimal(value)
    if kind == "integer":
        return int(value)
    if kind == "boolean":
        return bool(value)
    if kind == "base64":
        return base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    return str(value)


def _decimal(value: Any) -> int | float | None:
    """A JSON number (an int when whole): answers are plain JSON, not Decimal objects."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    if not number.is_finite():
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def _codeable(spec: dict[str, Any], payload: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
    field = spec["coding"]
    code = payload.get(field)
    text = payload.get(spec["text"]) if spec.get("text") else None
    if not present(code):  # no code sent: the name alone still says what it is
        named = text if present(text) else (payload.get(spec["display"]) if spec.get("display") else None)
        return {"text": str(named)} if present(named) else None
    display = payload.get(spec["display"]) if spec.get("display") else ctx.label(field, code)
    system = ctx.mapping.system(spec["system"], ctx.org) if spec.get("system") else ctx.domain_system(field)
    coding = {k: v for k, v in (("system", system), ("code", str(code)), ("display", display)) if present(v)}
    codings = [coding]
    extra = spec.get("map")
    if extra and str(code) in extra["values"]:
        codings.append({"system": ctx.mapping.system(extra["system"]), "code": extra["values"][str(code)]})
    out: dict[str, Any] = {"coding": codings}
    if present(text or display):
        out["text"] = str(text or display)
    return out


def _quantity(spec: dict[str, Any], payload: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
    value = _decimal(payload.get(spec["quantity"])) if present(payload.get(spec["quantity"])) else None
    if value is None:
        return None
    unit = spec.get("unit")
    if unit in {f.name for f in ctx.dataset.fields}:
        unit = payload.get(unit)
    out: dict[str, Any] = {"value": value}
    if present(unit):
        out["unit"] = str(unit)
    if spec.get("code"):
        out |= {"system": ctx.mapping.system("ucum"), "code": spec["code"]}
    return out


def evaluate(spec: Any, payload: dict[str, Any], ctx: Context) -> Any:
    """The value of one element spec for one record; None when what it reads is absent."""
    if not isinstance(spec, dict):
        raise ValueError(f"element spec must be a mapping: {spec!r}")
    if "const" in spec:
        return spec["const"]
    if "if" in spec:
        branch = spec.get("then") if present(payload.get(spec["if"])) else spec.get("else")
        return None if branch is None else evaluate(branch, payload, ctx)
    if "field" in spec:
        return _typed(_first(payload, spec["field"]), spec.get("type", "string"))
    if "coding" in spec:
        return _codeable(spec, payload, ctx)
    if "code_of" in spec:
        code = payload.get(spec["code_of"])
        mapped = spec["values"].get(str(code), spec.get("default"))
        return {"system": ctx.mapping.system(spec["system"]), "code": mapped} if mapped else None
    if "quantity" in spec:
        return _quantity(spec, payload, ctx)
    if "identifier" in spec:
        value = payload.get(spec["identifier"])
        return {"system": ctx.mapping.system(spec["system"], ctx.org), "value": str(value)} if present(value) else None
    if "display" in spec:
        value = payload.get(spec["display"])
        return {"display": str(value)} if present(value) else None
    if "join" in spec:
        words = []
        for name in spec["join"]:
            field, _, how = str(name).partition("@")
            value = payload.get(field)
            if present(value):
                words.append((ctx.label(field, value) or str(value)) if how == "label" else str(value))
        return spec.get("sep", " ").join(words) or None
    if "reference" in spec:
        return _reference(spec["reference"], payload, ctx)
    raise ValueError(f"unknown element spec: {spec!r}")


def _reference(kind: str, payload: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
    if kind == "patient":
        return {"reference": ctx.patient_ref}
    if kind == "encounter":
        return {"reference": ctx.encounter_ref} if ctx.encounter_ref else None
    if kind == "org":
        out = {"identifier": {"system": ctx.mapping.system("org"), "value": ctx.org}}
        return out | ({"display": str(payload["org_name"])} if present(payload.get("org_name")) else {})
    raise ValueError(f"unknown reference kind: {kind}")


def set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at a path like ``referenceRange[0].low`` (lists and objects made as needed)."""
    steps = path.split(".")
    node: Any = target
    for n, step in enumerate(steps):
        m = _STEP.match(step)
        if m is None:
            raise ValueError(f"bad element path: {path}")
        name, index = m.group(1), m.group(2)
        last = n == len(steps) - 1
        if index is None:
            if last:
                node[name] = value
            else:
                node = node.setdefault(name, {})
            continue
        items = node.setdefault(name, [])
        i = int(index)
        while len(items) <= i:
            items.append({})
        if last:
            items[i] = value
        else:
            node = items[i]


def _prune(value: Any) -> Any:
    """Drop the empty objects and list slots a partly absent record leaves."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [v for v in (_prune(x) for x in value) if v not in (None, {}, [])]
    return value


def build(elements: dict[str, Any], payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """One resource body (without resourceType and id) from a record's payload."""
    out: dict[str, Any] = {}
    for path, spec in elements.items():
        value = evaluate(spec, payload, ctx)
        if value is not None:
            set_path(out, path, value)
    return _prune(out)

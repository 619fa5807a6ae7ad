"""Quality rules loaded from data (data/rules.yaml) and expanded over the standard.

A rule file entry names a rule type and its parameters; ``datasets: "*"`` expands it over
every data set that has what the type needs (person fields, a ``visit_no``, ID-number or
phone fields …). The result is a flat list of :class:`RuleInstance` — one per (rule, data
set) — that the analysis run executes. A broken rule file fails at load time, naming the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from phip.datafiles import load_yaml
from phip.errors import PhipError
from phip.recognition.catalog import DATASETS as RECOGNISED_DATASETS
from phip.standard.catalog import DataSet, Standard, load_standard

from . import supervision_types

RULES_FILE = Path(__file__).parent / "data" / "rules.yaml"
SUPERVISION_RULES_FILE = Path(__file__).parent / "data" / "supervision_rules.yaml"

#: Finding codes each rule type can emit (the code decides the dimension).
TYPE_CODES: dict[str, tuple[str, ...]] = {
    "expected_fields": ("QC_EXPECTED_MISSING",),
    "companion": ("QC_COMPANION_MISSING",),
    "id_number": ("QC_ID_INVALID",),
    "phone": ("QC_PHONE_INVALID",),
    "id_demographics": ("QC_ID_SEX_MISMATCH", "QC_ID_BIRTH_MISMATCH"),
    "cross_time_order": ("QC_CROSS_TIME_ORDER",),
    "sum_equals": ("QC_SUM_MISMATCH",),
    "reference": ("QC_REFERENCE_MISSING",),
    "upload_delay": ("QC_LATE_UPLOAD",),
    "duplicate_event": ("QC_DUPLICATE_EVENT",),
    "person_link": ("QC_NOT_LINKED",),
    "repeat_test": ("QC_REPEAT_TEST",),
    **supervision_types.TYPE_CODES,
}


class RuleError(PhipError, ValueError):
    """The rule file is inconsistent with the standard (a bug in the data)."""

    code = "BAD_RULES"

    def __init__(self, message: str):
        super().__init__(None, message)


@dataclass(frozen=True)
class Code:
    code: str
    dimension: str
    severity: str
    message: str
    name: str = ""  # short Chinese name shown to users beside the code (问题名称)


@dataclass(frozen=True)
class RuleInstance:
    rule_id: str
    type: str
    dataset: str
    params: dict[str, Any] = field(hash=False, compare=False)

    @property
    def codes(self) -> tuple[str, ...]:
        return TYPE_CODES[self.type]


@dataclass(frozen=True)
class RuleSet:
    settings: dict[str, Any]
    dimensions: dict[str, str]
    codes: dict[str, Code]
    instances: tuple[RuleInstance, ...]

    def for_dataset(self, dataset: str) -> list[RuleInstance]:
        return [r for r in self.instances if r.dataset == dataset]

    def dimensions_of(self, dataset: str) -> list[str]:
        """Dimensions at least one rule checks for this data set (the ones it gets a score in)."""
        used = {self.codes[c].dimension for r in self.for_dataset(dataset) for c in r.codes}
        return [d for d in self.dimensions if d in used]


def _fields(ds: DataSet) -> dict[str, Any]:
    return {f.name: f for f in ds.fields}


def _expand(rule: dict[str, Any], ds: DataSet, std: Standard, settings: dict[str, Any]) -> dict[str, Any] | None:
    """Parameters of ``rule`` for data set ``ds``, or None when the rule does not apply to it."""
    t, fields = rule["type"], _fields(ds)
    explicit = rule["datasets"] != "*"

    def need(*names: str) -> bool:
        missing = [n for n in names if n not in fields]
        if missing and explicit:
            raise RuleError(f"rule {rule['id']}: data set {ds.code} has no field {missing}")
        return not missing

    labels = {n: f.label for n, f in fields.items()}
    if t == "expected_fields":
        names = [ds.person[r] for r in rule["roles"] if r in ds.person and not fields[ds.person[r]].required]
        return {"fields": [(n, labels[n]) for n in names]} if names else None
    if t == "companion":
        when = rule["when"]
        conditions = {when: None} if isinstance(when, str) else dict(when)
        if not need(rule["via"], *conditions):
            return None
        for c in rule["companions"]:
            if rule["via"] not in _fields(std.dataset(c)):
                raise RuleError(f"rule {rule['id']}: companion {c} has no field {rule['on']}")
        return {"on": rule["via"], "when": conditions, "companions": list(rule["companions"]),
                "due_days": rule.get("due_days", settings["default_due_days"]), "subject": ds.name,
                "companion_names": "或".join(std.dataset(c).name for c in rule["companions"])}
    if t in ("id_number", "phone"):
        names = [n for n, f in fields.items() if f.check == ("id_no" if t == "id_number" else "phone")]
        if not names:
            return None
        return {"fields": [(n, labels[n]) for n in names], "id_type": ds.person.get("id_type")}
    if t == "id_demographics":
        id_field = ds.person.get("id_no")
        if not id_field or not ({"sex", "birth_date"} & set(ds.person)):
            return None
        return {"id_field": id_field, "label": labels[id_field], "id_type": ds.person.get("id_type"),
                "sex": ds.person.get("sex"), "birth": ds.person.get("birth_date")}
    if t == "cross_time_order":
        if not need(rule["field"], rule["via"]):
            return None
        other = std.dataset(rule["other"])
        if tuple(other.natural_key) != (rule["via"],):
            raise RuleError(f"rule {rule['id']}: {other.code} is not keyed by {rule['on']}")
        return {"field": rule["field"], "label": labels[rule["field"]], "other": other.code, "other_name": other.name,
                "other_field": rule["other_field"], "other_label": other.field(rule["other_field"]).label, "on": rule["via"]}
    if t == "sum_equals":
        if not need(rule["field"], rule["via"]):
            return None
        items = std.dataset(rule["items"])
        return {"field": rule["field"], "label": labels[rule["field"]], "items": items.code, "items_name": items.name,
                "item_field": rule["item_field"], "item_filter": rule.get("item_filter", {}),
                "refund_field": rule.get("refund_field"), "on": rule["via"], "tolerance": rule.get("tolerance", 0.01)}
    if t == "reference":
        if not explicit and (not ds.person or ds.code in rule["targets"]):
            return None
        if not need(rule["field"]):
            return None
        return {"field": rule["field"], "label": labels[rule["field"]], "targets": list(rule["targets"]),
                "target_names": "、".join(std.dataset(c).name for c in rule["targets"]),
                "due_days": rule.get("due_days", settings["default_due_days"])}
    if t == "upload_delay":
        if ds.category in rule.get("exclude_categories", ()):
            return None
        return {"days": rule.get("days", settings["timeliness_days"])}
    if t == "duplicate_event":
        if not need(*rule["fields"]):
            return None
        return {"fields": list(rule["fields"]), "labels": "、".join(labels[f] for f in rule["fields"])}
    if t == "person_link":
        return {} if ds.person else None
    if t == "repeat_test":
        if ds.code not in RECOGNISED_DATASETS:
            raise RuleError(f"rule {rule['id']}: {ds.code} holds no lab or exam results")
        return {}
    if t in supervision_types.TYPE_CODES:
        def fail(message: str) -> None:
            raise RuleError(message)
        return supervision_types.expand(rule, ds, std, settings, fail)
    raise RuleError(f"rule {rule['id']}: unknown rule type {t}")


@cache
def load_rules(path: Path = RULES_FILE) -> RuleSet:
    raw = load_yaml(path)
    std = load_standard()
    settings = raw["settings"]
    dimensions = raw["dimensions"]
    codes = {}
    for code, spec in raw["codes"].items():
        if spec["dimension"] not in dimensions:
            raise RuleError(f"code {code}: unknown dimension {spec['dimension']}")
        codes[code] = Code(code, spec["dimension"], spec["severity"], spec["message"], spec.get("name") or code)
    instances: list[RuleInstance] = []
    ids = set()
    for rule in raw["rules"]:
        if rule["id"] in ids:
            raise RuleError(f"duplicate rule id {rule['id']}")
        ids.add(rule["id"])
        if rule["type"] not in TYPE_CODES:
            raise RuleError(f"rule {rule['id']}: unknown rule type {rule['type']}")
        missing = [c for c in TYPE_CODES[rule["type"]] if c not in codes]
        if missing:
            raise RuleError(f"rule {rule['id']}: codes {missing} have no message")
        targets = std.datasets if rule["datasets"] == "*" else [std.dataset(d) for d in rule["datasets"]]
        for ds in targets:
            params = _expand(rule, ds, std, settings)
            if params is not None:
                instances.append(RuleInstance(rule["id"], rule["type"], ds.code, params))
    return RuleSet(settings, dimensions, codes, tuple(instances))


def load_supervision_rules() -> RuleSet:
    """The internet-hospital supervision rule set (its own file, codes SV_*, dimension 监管合规)."""
    return load_rules(SUPERVISION_RULES_FILE)

"""Rule types of the internet-hospital supervision rule set (互联网医院监管规则类型).

Like the quality types in ``rules.py``: each type names the finding codes it may emit, and
``expand`` turns a rule of data/supervision_rules.yaml into the parameters of one data set,
refusing a rule that names a field the data set lacks. Every rule carries its ``article``.
"""

from __future__ import annotations

from typing import Any

from phip.standard.catalog import DataSet, Standard

TYPE_CODES: dict[str, tuple[str, ...]] = {
    "offline_first": ("SV_FIRST_VISIT_ONLINE", "SV_NO_OFFLINE_DIAGNOSIS"),
    "restricted_code": ("SV_RESTRICTED_DRUG",),
    "child_guardian": ("SV_CHILD_WITHOUT_GUARDIAN",),
    "review_order": ("SV_NOT_REVIEWED", "SV_REVIEW_ORDER"),
    "practitioner": ("SV_PRACTITIONER_UNREGISTERED", "SV_LICENCE_EXPIRED", "SV_PRACTICE_YEARS",
                     "SV_OUTSIDE_REGISTERED_ORG"),
    "signature": ("SV_UNSIGNED", "SV_SIGNER_MISMATCH"),
    "after_consultation": ("SV_NO_CONSULTATION", "SV_PRESCRIPTION_BEFORE_CONSULTATION"),
    "record_complete": ("SV_RECORD_INCOMPLETE",),
    "volume_per_hour": ("SV_VOLUME_ANOMALY",),
}

#: the data sets the cross-record types read (fixed by the standard's extension)
CONSULTATION, PRACTITIONER = "online_consultation", "online_practitioner"


def expand(rule: dict[str, Any], ds: DataSet, std: Standard, settings: dict[str, Any],
           fail: Any) -> dict[str, Any]:
    """Parameters of supervision ``rule`` for ``ds``; ``fail(message)`` raises the rule error."""
    names = {f.name: f for f in ds.fields}

    def need(*fields: str) -> None:
        missing = [n for n in fields if n not in names]
        if missing:
            fail(f"rule {rule['id']}: data set {ds.code} has no field {missing}")

    t = rule["type"]
    p: dict[str, Any] = {"article": rule.get("article") or fail(f"rule {rule['id']}: no article"),
                         # judged on each batch as it is stored (quality.arrival) as well as nightly;
                         # rules over a window of other records (volume per hour) only nightly
                         "on_arrival": bool(rule.get("on_arrival", True))}
    if t == "offline_first":
        kind = rule.get("visit_kind") or {}
        p["visit_kind"] = (kind["field"], str(kind["first"])) if kind.get("field") in names else None
        p["diagnosis"] = [n for n in rule["diagnosis"] if n in names]
        if not p["diagnosis"]:
            need(rule["diagnosis"][0])
        for other, fields in rule["offline"].items():
            o = std.dataset(other)
            if any(f not in {x.name for x in o.fields} for f in fields):
                fail(f"rule {rule['id']}: {other} lacks {fields}")
        p.update(offline={k: list(v) for k, v in rule["offline"].items()}, chars=int(rule.get("match_chars", 3)),
                 days=int(rule["within_days"]), due_days=int(rule.get("due_days", settings["default_due_days"])))
    elif t == "restricted_code":
        need(rule["field"], rule["name_field"])
        f = names[rule["field"]]
        labels = std.domain(f.domain).code_map if f.domain else {}
        p.update(field=rule["field"], codes=[str(c) for c in rule["codes"]], labels=labels, name_field=rule["name_field"])
    elif t == "child_guardian":
        p.update(under=int(rule["under_years"]), needs=[(n, names[n].label) for n in rule["needs"] if n in names],
                 birth=ds.person.get("birth_date"), age="age_years" if "age_years" in names else None)
        if not p["needs"]:
            need(rule["needs"][0])
    elif t == "review_order":
        need("prescription_time", "reviewer_id", "review_time", "dispense_time")
    elif t == "practitioner":
        need(rule["field"])
        p.update(field=rule["field"], years=int(rule["min_years"]))
    elif t in ("signature", "after_consultation"):
        need("consultation_no", "practitioner_id", "prescription_time")
        p["due_days"] = int(rule.get("due_days", settings["default_due_days"]))
    elif t == "record_complete":
        need(*rule["fields"], *rule.get("true_fields", ()))
        p.update(fields=[(n, names[n].label) for n in rule["fields"]],
                 true_fields=[(n, names[n].label) for n in rule.get("true_fields", ())])
    elif t == "volume_per_hour":
        need(rule["field"])
        p.update(field=rule["field"], limit=int(rule["limit"]))
    return p

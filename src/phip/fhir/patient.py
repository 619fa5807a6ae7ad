"""The EMPI golden record as a FHIR Patient: every identifier the EMPI holds for the person
(and the persons merged into it), name, sex, birth date, phone and address, each masked by
the one rule of its kind for the reader's role (phip.privacy), as every PHIP page masks them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from phip.empi.identifiers import KIND_LABELS
from phip.empi.store import load_persons
from phip.privacy import mask_address, mask_kind
from phip.store.models import Institution, PersonIdentifier

from .mapping import load_mapping

#: GB/T 2261.1 sex code → FHIR administrative gender (0 未知 and 9 未说明 are both "unknown")
GENDER = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}


def _identifiers(conn: Connection, ids: list[str], role: str) -> list[dict[str, Any]]:
    mapping = load_mapping()
    pi = PersonIdentifier
    rows = conn.execute(select(pi.kind, pi.scope, pi.value).where(pi.person_id.in_(ids))
                        .order_by(pi.kind, pi.scope, pi.value)).all()
    orgs = {s for k, s, _ in rows if k == "patient_id"}
    names = dict(conn.execute(select(Institution.code, Institution.name).where(Institution.code.in_(orgs))).all()) if orgs else {}
    out = []
    for kind, scope, value in rows:
        if kind not in mapping.systems:
            continue
        ident: dict[str, Any] = {"use": "official" if kind == "id_no" else "usual",
                                 "type": {"text": KIND_LABELS.get(kind, kind)},
                                 "system": mapping.system(kind, scope=scope), "value": mask_kind(kind, value, role)}
        if kind == "patient_id":
            ident["assigner"] = {"identifier": {"system": mapping.system("org"), "value": scope},
                                 **({"display": names[scope]} if scope in names else {})}
        out.append(ident)
    return out


def patient_resource(conn: Connection, golden: str, ids: list[str], role: str) -> dict[str, Any]:
    """The Patient of a golden person id; ``ids`` are it and the persons merged into it."""
    person = load_persons(conn, [golden], light=True)[golden]
    body: dict[str, Any] = {"resourceType": "Patient", "id": golden, "active": person["status"] == "active",
                            "identifier": _identifiers(conn, ids, role)}
    if person.get("name"):
        body["name"] = [{"use": "official", "text": mask_kind("name", person["name"], role)}]
    if person.get("phone"):
        body["telecom"] = [{"system": "phone", "use": "mobile", "value": mask_kind("phone", person["phone"], role)}]
    if person.get("sex") in GENDER:
        body["gender"] = GENDER[person["sex"]]
    if person.get("birth_date"):
        body["birthDate"] = person["birth_date"].isoformat()
    if person.get("address"):
        body["address"] = [{"text": mask_address(person["address"], role)}]
    merged = [p for p in ids if p != golden]
    if merged:
        body["link"] = [{"other": {"reference": f"Patient/{p}"}, "type": "replaces"} for p in merged]
    return body

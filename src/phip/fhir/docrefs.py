"""DocumentReference: a patient's shared documents (CDA R2, WS/T 500 / 483: phip.documents) as
FHIR, each pointing at the address that retrieves its CDA. Found by the document query
(:func:`phip.documents.query.listed`), so the same grants decide and the same audit records;
the id is the lowest record id of the document and its type code (``123-c0004``)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Engine, select

from phip.accounts import SessionInfo
from phip.documents.query import Listed, listed
from phip.share.policy import ShareError, golden_id
from phip.store.models import Record

from .elements import fhir_datetime
from .ids import SortKey, parse_resource_id, resource_id, sort_key
from .mapping import load_mapping
from .outcome import FhirError

RESOURCE = "DocumentReference"
TYPE_SYSTEM = "urn:oid:2.16.156.10011.2.4"  # 卫生信息共享文档规范编码体系 (documents/data/common.yaml)
CDA_MEDIA = "application/hl7-v3+xml"


class Keyed(NamedTuple):
    """A document in search order (newest record first), as the pager reads it."""

    key: SortKey
    doc: Listed


def resource(d: Listed, person_id: str, root: str) -> dict[str, Any]:
    """The DocumentReference of ``d``; ``root`` is the server's address (the CDA is retrieved there)."""
    body: dict[str, Any] = {
        "resourceType": RESOURCE, "id": resource_id(d.record_id, d.template.code.lower()), "status": "current",
        "type": {"coding": [{"system": TYPE_SYSTEM, "code": d.template.code, "display": d.template.name}]},
        "subject": {"reference": f"Patient/{person_id}"},
        "custodian": {"identifier": {"system": load_mapping().system("org"), "value": d.org_code}, "display": d.org_name},
        "description": f"{d.template.name}（{d.key}）",
        "content": [{"attachment": {"contentType": CDA_MEDIA, "url": root + d.retrieve(person_id),
                                    "title": d.template.name}}],
    }
    when = fhir_datetime(d.at, instant=True) if d.at else None
    return body | ({"date": when} if when else {})


def _listed(engine: Engine, who: SessionInfo, person_id: str, **kw: Any) -> tuple[str, list[Listed]]:
    try:
        return listed(engine, who, person_id, **kw)
    except ShareError as exc:  # the document query's refusal, as an OperationOutcome
        raise FhirError(exc.code, exc.message, exc.status or 403) from None


def search(engine: Engine, who: SessionInfo, patient: str, since: Any, until: Any, address: str | None,
           root: str) -> tuple[str, list[Keyed], Any]:
    """The patient's DocumentReferences in search order, with a maker of their resources."""
    person, found = _listed(engine, who, patient, since=since, until=until, address=address)
    keyed = sorted((Keyed(sort_key(d.record_id, 0), d) for d in found), key=lambda k: k.key)
    return person, keyed, lambda page: [resource(k.doc, person, root) for k in page]


def read(engine: Engine, who: SessionInfo, rid: str, address: str | None, root: str) -> dict[str, Any]:
    parsed = parse_resource_id(rid)
    missing = FhirError("NOT_FOUND", f"资源 {RESOURCE}/{rid} 不存在", 404)
    if parsed is None or not parsed[1]:
        raise missing
    with engine.connect() as conn:
        holder = conn.execute(select(Record.person_id).where(Record.id == parsed[0])).scalar()
        person = golden_id(conn, holder) if holder else None
    if person is None:
        raise missing
    try:
        person, found = _listed(engine, who, person, ref=parsed[1].upper(), address=address)
    except FhirError as exc:
        raise missing if exc.code == "UNKNOWN_DOCUMENT_TYPE" else exc
    doc = next((d for d in found if d.record_id == parsed[0]), None)
    if doc is None:
        raise missing
    return resource(doc, person, root)

"""Reading a patient's records across institutions (跨机构调阅): the timeline of documents and
each document rendered from the stored records, with the standard's Chinese labels, for a
reader holding an authorization (or the resident reading their own). Everything outside the
reader's scope is absent: a document id that is not the patient's, or not covered, answers
"not found" exactly like one that does not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from phip.accounts import SessionInfo
from phip.accounts.trail import audit
from phip.privacy import mask_kind
from phip.standard.catalog import DataSet, load_standard
from phip.store.models import Institution, Record

from .catalog import DocumentKind, load_catalog
from .policy import access, no_authorization, not_found

#: fields never shown in a document: the person's identity is the page's header, not the record's
HIDDEN = frozenset({"org_code", "org_name", "patient_id", "name", "sex_code", "birth_date", "age_years",
                    "id_type_code", "id_no", "update_time"})
#: shown masked (phip.privacy), whatever the reader
MASKED = {"phone": "phone", "contact_phone": "phone", "health_card_no": "health_card", "insurance_no": "insurance"}


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value


def _names(conn: Connection, codes: set[str]) -> dict[str, str]:
    return dict(conn.execute(select(Institution.code, Institution.name).where(Institution.code.in_(codes))).all())


def timeline(engine: Engine, who: SessionInfo, person_id: str, address: str | None = None) -> dict[str, Any]:
    """The patient's documents across institutions, newest first: date, institution, department,
    diagnosis; only those the reader's authorizations cover. 403 when none does."""
    kinds = load_catalog().documents
    r = Record
    wanted = {f for k in kinds.values() for f in (k.diagnosis, k.summary, k.group) if f}
    cols = [r.id, r.org_code, r.dataset, r.event_time, r.payload["dept_name"].as_string().label("dept"),
            *[r.payload[f].as_string().label(f) for f in sorted(wanted)]]
    with engine.begin() as conn:
        acc = access(conn, who, person_id)
        if not acc.any:
            audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target="timeline")
            raise_later = True
        else:
            raise_later = False
            rows = conn.execute(select(*cols).where(r.person_id.in_(acc.ids), r.dataset.in_(list(kinds)))).all()
            entries: dict[tuple[str, str, str], dict[str, Any]] = {}
            grants: set[int] = set()
            for row in rows:
                grant = acc.grant_for(row.org_code, row.dataset)
                if grant is None:
                    continue
                grants.add(grant)
                kind = kinds[row.dataset]
                m = row._mapping
                key = (row.org_code, row.dataset, m[kind.group] if kind.group else str(row.id))
                entry = entries.get(key)
                if entry is None or row.id < int(entry["id"]):
                    entries[key] = {"id": str(row.id), "dataset": row.dataset, "title": kind.title,
                                    "date": _text(row.event_time), "org_code": row.org_code, "department": m["dept"],
                                    "diagnosis": m[kind.diagnosis] if kind.diagnosis else None,
                                    "summary": m[kind.summary] if kind.summary else None}
            names = _names(conn, {e["org_code"] for e in entries.values()})
            items = sorted(entries.values(), key=lambda e: (e["date"] or "", int(e["id"])), reverse=True)
            for e in items:
                e["org_name"] = names.get(e["org_code"], e["org_code"])
            audit(conn, who, "share.timeline", address=address, person_id=acc.person_id,
                  authorization=min(grants) if grants else None, flagged=acc.break_glass(grants),
                  detail={"documents": len(items), "authorizations": sorted(grants)})
    if raise_later:
        raise no_authorization()
    return {"person_id": acc.person_id, "documents": items}


def _field_value(ds: DataSet, name: str, value: Any, domains: dict[str, dict[str, str]]) -> Any:
    if name in MASKED:
        return mask_kind(MASKED[name], value)
    spec = ds.field(name)
    if spec.domain and value is not None:
        label = domains.get(spec.domain, {}).get(str(value))
        return f"{value} {label}" if label else value
    if isinstance(value, bool):
        return "是" if value else "否"
    if spec.type == "datetime" and isinstance(value, str):
        return value.replace("T", " ")
    return _text(value)


def _render(ds: DataSet, kind: DocumentKind, rows: list[Any]) -> dict[str, Any]:
    std = load_standard()
    domains = {f.domain: std.domains[f.domain].code_map for f in ds.fields if f.domain in std.domains}
    first = rows[0].payload
    item_fields = set(kind.items)
    fields = [{"name": f.name, "label": f.label, "value": _field_value(ds, f.name, first[f.name], domains)}
              for f in ds.fields if f.name not in HIDDEN and f.name not in item_fields
              and first.get(f.name) not in (None, "")]
    doc: dict[str, Any] = {"fields": fields, "items": None}
    if kind.items:
        present = [n for n in kind.items if any(r.payload.get(n) not in (None, "") for r in rows)]
        ordered = sorted(rows, key=lambda r: (r.payload.get("item_no") or 0, r.id))
        doc["items"] = {"columns": [{"name": n, "label": ds.field(n).label} for n in present],
                        "rows": [[_field_value(ds, n, r.payload.get(n), domains) for n in present] for r in ordered]}
    return doc


def document(engine: Engine, who: SessionInfo, person_id: str, document_id: str,
             address: str | None = None) -> dict[str, Any]:
    """One document of the patient, rendered with the standard's labels; absent (404) unless it
    is the patient's and inside the reader's scope; 403 when the reader holds no authorization."""
    kinds = load_catalog().documents
    r = Record
    if not document_id.isdigit() or len(document_id) > 18:
        raise not_found()
    with engine.begin() as conn:
        acc = access(conn, who, person_id)
        refusal = None
        if not acc.any:
            refusal = no_authorization()
        else:
            head = conn.execute(select(r.id, r.org_code, r.dataset, r.person_id, r.event_time, r.payload)
                                .where(r.id == int(document_id))).first()
            grant = None
            if head is not None and head.person_id in acc.ids and head.dataset in kinds:
                grant = acc.grant_for(head.org_code, head.dataset)
            if grant is None:
                refusal = not_found()
        if refusal is not None:
            audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target=f"document:{document_id}")
        else:
            kind = kinds[head.dataset]
            rows = [head]
            if kind.group:
                value = head.payload.get(kind.group)
                rows = [x for x in conn.execute(select(r.id, r.payload, r.person_id).where(
                    r.person_id.in_(acc.ids), r.dataset == head.dataset, r.org_code == head.org_code,
                    r.payload[kind.group].as_string() == str(value))).all()]
            ds = load_standard().dataset(head.dataset)
            doc = _render(ds, kind, rows)
            names = _names(conn, {head.org_code})
            audit(conn, who, "share.document", address=address, person_id=acc.person_id, authorization=grant or None,
                  flagged=acc.break_glass({grant}),
                  target=f"{head.dataset}:{head.id}", detail={"dataset": head.dataset, "org_code": head.org_code})
    if refusal is not None:
        raise refusal
    return {"id": str(head.id), "dataset": head.dataset, "dataset_name": ds.name, "title": kind.title,
            "org_code": head.org_code, "org_name": names.get(head.org_code, head.org_code),
            "date": _text(head.event_time), "authorization": grant or None, **doc}

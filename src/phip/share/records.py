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


def _names(conn: Connection) -> dict[str, str]:
    """Institution names by code (a few hundred rows at most: one read, no list of codes)."""
    return dict(conn.execute(select(Institution.code, Institution.name)).all())


def timeline(engine: Engine, who: SessionInfo, person_id: str, address: str | None = None) -> dict[str, Any]:
    """The patient's documents across institutions, newest first: date, institution, department,
    diagnosis; only those the reader's authorizations cover. 403 when none does."""
    kinds = load_catalog().documents
    r = Record
    wanted = sorted({f for k in kinds.values() for f in (k.diagnosis, k.summary, k.group) if f})
    at = {f: 5 + i for i, f in enumerate(wanted)}  # row positions of the payload fields
    shape = {ds: (k.title, at[k.group] if k.group else None, at[k.diagnosis] if k.diagnosis else None,
                  at[k.summary] if k.summary else None) for ds, k in kinds.items()}
    cols = [r.id, r.org_code, r.dataset, r.event_time, r.payload["dept_name"].as_string(),
            *[r.payload[f].as_string() for f in wanted]]
    with engine.begin() as conn:
        acc = access(conn, who, person_id)
        if not acc.any:
            audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target="timeline")
            raise_later = True
        else:
            raise_later = False
            rows = conn.execute(select(*cols).where(r.person_id.in_(acc.ids), r.dataset.in_(list(kinds)))).all()
            entries: dict[tuple[str, str, Any], list[Any]] = {}
            grants: set[int] = set()
            for row in rows:
                rid, org, ds = row[0], row[1], row[2]
                grant = acc.grant_for(org, ds)
                if grant is None:
                    continue
                grants.add(grant)
                title, group, diagnosis, summary = shape[ds]
                key = (org, ds, row[group] if group else rid)
                entry = entries.get(key)
                if entry is None or rid < entry[0]:
                    entries[key] = [rid, ds, title, row[3], org, row[4], row[diagnosis] if diagnosis else None,
                                    row[summary] if summary else None]
            names = _names(conn)
            ordered = sorted(entries.values(), key=lambda e: (e[3] or datetime.min, e[0]), reverse=True)
            items = [{"id": str(e[0]), "dataset": e[1], "title": e[2], "date": _text(e[3]), "org_code": e[4],
                      "org_name": names.get(e[4], e[4]), "department": e[5], "diagnosis": e[6], "summary": e[7]}
                     for e in ordered]
            audit(conn, who, "share.timeline", address=address, person_id=acc.person_id,
                  authorization=min(grants, default=0) or None, flagged=acc.break_glass(grants),
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
            names = _names(conn)
            audit(conn, who, "share.document", address=address, person_id=acc.person_id, authorization=grant or None,
                  flagged=acc.break_glass({grant}),
                  target=f"{head.dataset}:{head.id}", detail={"dataset": head.dataset, "org_code": head.org_code})
    if refusal is not None:
        raise refusal
    return {"id": str(head.id), "dataset": head.dataset, "dataset_name": ds.name, "title": kind.title,
            "org_code": head.org_code, "org_name": names.get(head.org_code, head.org_code),
            "date": _text(head.event_time), "authorization": grant or None, **doc}

"""A patient's shared documents as a list (文档查询; IHE XDS stored query ITI-18 as REST): what
a clinician's system may retrieve with :func:`phip.documents.export`, by type and date.

The same authorization as the retrieve: only documents whose institution and category a grant
in force covers are listed, the others are not mentioned (as the timeline does); the query
itself is audited."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, select

from phip.accounts import SessionInfo
from phip.accounts.trail import audit
from phip.share.policy import access, no_authorization
from phip.store.models import Institution, Record

from .exchange import template_of
from .templates import Template, load_templates


def documents_of(engine: Engine, who: SessionInfo, person_id: str, ref: str | None = None,
                 day_from: date | None = None, day_to: date | None = None,
                 address: str | None = None) -> list[dict[str, Any]]:
    """The patient's documents the reader may retrieve, newest first: type, name, document key,
    institution, date and the retrieve address; 403 without any authorization."""
    templates = [template_of(ref)] if ref else list(load_templates().by_code.values())
    by_dataset: dict[str, list[Template]] = {}
    for t in templates:
        by_dataset.setdefault(t.dataset.code, []).append(t)
    r = Record
    with engine.begin() as conn:
        acc = access(conn, who, person_id)
        if not acc.any:
            audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target="cda:query")
            refused = no_authorization()
        else:
            refused = None
            query = select(r.org_code, r.dataset, r.record_key, r.event_time, r.payload).where(
                r.person_id.in_(acc.ids), r.dataset.in_(list(by_dataset)))
            if day_from:
                query = query.where(r.event_time >= datetime.combine(day_from, time()))
            if day_to:
                query = query.where(r.event_time < datetime.combine(day_to + timedelta(days=1), time()))
            found: dict[tuple[str, str, str], dict[str, Any]] = {}
            used: set[int] = set()
            for row in conn.execute(query):
                grant = acc.grant_for(row.org_code, row.dataset)
                if grant is None:
                    continue
                used.add(grant)
                for t in by_dataset[row.dataset]:
                    key = str(row.payload.get(t.group) if t.group else row.record_key)
                    seen = found.get((t.code, row.org_code, key))
                    if seen is None or (row.event_time and (seen["at"] is None or row.event_time < seen["at"])):
                        found[(t.code, row.org_code, key)] = {"template": t, "org_code": row.org_code, "key": key,
                                                              "at": row.event_time}
            names = dict(conn.execute(select(Institution.code, Institution.name).where(
                Institution.code.in_({d["org_code"] for d in found.values()}))).all())
            # an empty answer still rested on the grants held: flagged if they are break-the-glass
            audit(conn, who, "share.cda_query", address=address, person_id=acc.person_id,
                  flagged=acc.break_glass(used or {g.id for g in acc.grants}), detail={"type": ref, "documents": len(found)})
    if refused is not None:
        raise refused
    listed = [{"type": d["template"].code, "name": d["template"].name, "key": d["key"], "org_code": d["org_code"],
               "org_name": names.get(d["org_code"], d["org_code"]),
               "date": d["at"].isoformat(sep=" ") if d["at"] else None,
               "retrieve": f"/api/v1/documents/{d['template'].code}?"
                           + urlencode({"person_id": person_id, "key": d["key"], "org_code": d["org_code"]})}
              for d in found.values()]
    return sorted(listed, key=lambda d: (d["date"] or "", d["type"], d["key"]), reverse=True)

"""A patient's shared documents as a list (文档查询; IHE XDS stored query ITI-18 as REST, and
FHIR DocumentReference): what a clinician's system may retrieve with
:func:`phip.documents.export`, by type and time.

The same authorization as the retrieve: only documents whose institution and category a grant
in force covers are listed, the others are not mentioned (as the timeline does); the query
itself is audited."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Listed:
    """One retrievable document: its type, institution and key (what ``export`` takes)."""

    template: Template
    org_code: str
    org_name: str
    key: str
    at: datetime | None  # the earliest event time of its records
    record_id: int  # the lowest id of its records: a stable handle (FHIR DocumentReference id)

    def retrieve(self, person_id: str) -> str:
        return f"/api/v1/documents/{self.template.code}?" + urlencode(
            {"person_id": person_id, "key": self.key, "org_code": self.org_code})

    def as_dict(self, person_id: str) -> dict[str, Any]:
        return {"type": self.template.code, "name": self.template.name, "key": self.key, "org_code": self.org_code,
                "org_name": self.org_name, "date": self.at.isoformat(sep=" ") if self.at else None,
                "retrieve": self.retrieve(person_id)}


def listed(engine: Engine, who: SessionInfo, person_id: str, ref: str | None = None, since: datetime | None = None,
           until: datetime | None = None, address: str | None = None) -> tuple[str, list[Listed]]:
    """(the patient's EMPI id, the documents the reader may retrieve, newest first); 403 when it
    holds no authorization on the patient."""
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
            query = select(r.id, r.org_code, r.dataset, r.record_key, r.event_time, r.payload).where(
                r.person_id.in_(acc.ids), r.dataset.in_(list(by_dataset)))
            if since:
                query = query.where(r.event_time >= since)
            if until:
                query = query.where(r.event_time < until)
            found: dict[tuple[str, str, str], tuple[datetime | None, int, Template]] = {}
            used: set[int] = set()
            for row in conn.execute(query):
                grant = acc.grant_for(row.org_code, row.dataset)
                if grant is None:
                    continue
                used.add(grant)
                for t in by_dataset[row.dataset]:
                    key = str(row.payload.get(t.group) if t.group else row.record_key)
                    at, rid, _ = found.get((t.code, row.org_code, key), (row.event_time, row.id, t))
                    earliest = min((x for x in (at, row.event_time) if x is not None), default=None)
                    found[(t.code, row.org_code, key)] = (earliest, min(rid, row.id), t)
            names = dict(conn.execute(select(Institution.code, Institution.name).where(
                Institution.code.in_({org for _, org, _ in found}))).all())
            # an empty answer still rested on the grants held: flagged if they are break-the-glass
            audit(conn, who, "share.cda_query", address=address, person_id=acc.person_id,
                  flagged=acc.break_glass(used or {g.id for g in acc.grants}), detail={"type": ref, "documents": len(found)})
    if refused is not None:
        raise refused
    out = [Listed(t, org, names.get(org, org), key, at, rid) for (_, org, key), (at, rid, t) in found.items()]
    return acc.person_id, sorted(out, key=lambda d: (d.at or datetime.min, d.record_id), reverse=True)


def documents_of(engine: Engine, who: SessionInfo, person_id: str, ref: str | None = None,
                 day_from: date | None = None, day_to: date | None = None,
                 address: str | None = None) -> list[dict[str, Any]]:
    """The patient's documents the reader may retrieve, newest first, as the API lists them."""
    since = datetime.combine(day_from, time()) if day_from else None
    # the day after day_to, exclusive; the calendar's last day has none: no upper bound then
    until = datetime.combine(day_to + timedelta(days=1), time()) if day_to and day_to < date.max else None
    _, found = listed(engine, who, person_id, ref, since, until, address)
    return [d.as_dict(person_id) for d in found]

"""Stored records as FHIR resources: which of a patient's records a search matches (light
columns only, so counting and paging never load payloads), and the resources of one page
built by the generic mapper with their Encounter references resolved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, select, tuple_

from phip.ingest.keys import record_key
from phip.share.policy import Access
from phip.standard.catalog import Standard, load_standard
from phip.store.models import Record

from .elements import Context, build, evaluate, present
from .ids import SortKey, resource_id, sort_key
from .mapping import Mapping, ResourceMap, Source, fields_of, load_mapping


@dataclass
class Match:
    """One resource a search found: its record (the group's lowest for a grouped resource)."""

    record_id: int
    org_code: str
    source: Source
    part: int
    grant: int
    members: list[int] = field(default_factory=list)

    @property
    def key(self) -> SortKey:
        return sort_key(self.record_id, self.part)

    @property
    def id(self) -> str:
        return resource_id(self.record_id, self.source.parts[self.part].suffix)


def tokens(concept: Any) -> set[tuple[str | None, str]]:
    """(system, code) of every coding of a CodeableConcept."""
    if not isinstance(concept, dict):
        return set()
    return {(c.get("system"), str(c.get("code"))) for c in concept.get("coding", []) if c.get("code")}


def _light_fields(rmap: ResourceMap) -> list[str]:
    """The payload fields a search reads: conditions, groups and the code element."""
    wanted: set[str] = set()
    for s in rmap.sources:
        wanted |= {f for f in (s.when, s.group) if f}
        for p in s.parts:
            if p.when:
                wanted.add(p.when)
            if rmap.code_element and rmap.code_element in p.elements:
                wanted |= fields_of(p.elements[rmap.code_element])
    return sorted(wanted)


def light_query(rmap: ResourceMap, person_ids: list[str], datasets: list[str], since: datetime | None = None,
                until: datetime | None = None) -> Select[Any]:
    """The one query of a search: the patient's records of the data sets, by the person index
    (``ix_records_person``), with the few payload fields that decide matching."""
    r = Record
    q = select(r.id, r.org_code, r.dataset, *[r.payload[n].as_string() for n in _light_fields(rmap)]).where(
        r.person_id.in_(person_ids), r.dataset.in_(datasets))
    if since is not None:
        q = q.where(r.event_time >= since)
    if until is not None:
        q = q.where(r.event_time < until)
    return q.order_by(r.id)


def find(conn: Connection, rmap: ResourceMap, acc: Access, *, sources: Iterable[Source],
         since: datetime | None = None, until: datetime | None = None,
         codes: list[tuple[str | None, str]] | None = None) -> list[Match]:
    """Every resource of ``rmap`` the reader may see for the patient, sorted by key. Records
    outside the reader's authorizations are left out before anything is counted."""
    mapping, std = load_mapping(), load_standard()
    by_dataset = {s.dataset: s for s in sources}
    if not by_dataset:
        return []
    names = _light_fields(rmap)
    q = light_query(rmap, acc.ids, list(by_dataset), since, until)
    groups: dict[tuple[str, str, Any], Match | None] = {}  # None: the group's head did not match
    found: list[Match] = []
    for row in conn.execute(q):
        rid, org, ds = row[0], row[1], row[2]
        grant = acc.grant_for(org, ds)
        if grant is None:
            continue
        light = {n: (None if v == "false" else v) for n, v in zip(names, row[3:], strict=True)}
        source = by_dataset[ds]
        if source.when and not present(light.get(source.when)):
            continue
        gkey = (org, ds, light.get(source.group)) if source.group else None
        if gkey in groups:  # rows come in id order: the first is the group's head
            if (head := groups[gkey]) is not None:
                head.members.append(rid)
            continue
        ctx = Context(mapping, std, std.dataset(ds), org, "")
        for n, part in enumerate(source.parts):
            if part.when and not present(light.get(part.when)):
                continue
            if codes is not None:
                spec = part.elements.get(rmap.code_element or "")
                if spec is None or not _matches(tokens(evaluate(spec, light, ctx)), codes):
                    continue
            match = Match(rid, org, source, n, grant, [rid])
            found.append(match)
            if gkey is not None:
                groups[gkey] = match
        if gkey is not None:
            groups.setdefault(gkey, None)
    found.sort(key=lambda m: m.key)
    return found


def _matches(have: set[tuple[str | None, str]], wanted: list[tuple[str | None, str]]) -> bool:
    """FHIR token search: ``system|code`` matches that coding, a bare ``code`` any system."""
    return any(c == code and (system is None or s == system) for system, code in wanted for s, c in have)


def encounter_refs(conn: Connection, mapping: Mapping, std: Standard, rows: list[Any], ids: list[str]) -> dict[int, str]:
    """Record id → ``Encounter/<id>`` for the rows whose visit is stored for the same patient."""
    how = mapping.encounter_of
    wanted: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        visit = row.payload.get(how["field"])
        if not present(visit):
            continue
        ds = mapping.encounter_dataset(row.dataset, row.payload.get(how["by"]))
        if ds == row.dataset:
            wanted.setdefault((row.record_key, ds, row.org_code), []).append(row.id)
            continue
        key = record_key(std.dataset(ds), {how["field"]: visit})
        wanted.setdefault((key, ds, row.org_code), []).append(row.id)
    if not wanted:
        return {}
    r = Record
    out: dict[int, str] = {}
    for rid, key, ds, org, person in conn.execute(select(r.id, r.record_key, r.dataset, r.org_code, r.person_id).where(
            tuple_(r.record_key, r.dataset, r.org_code).in_(list(wanted)))):
        if person in ids:
            for record in wanted[(key, ds, org)]:
                out[record] = f"Encounter/{rid}"
    return out


def load_rows(conn: Connection, record_ids: Iterable[int]) -> dict[int, Any]:
    r = Record
    wanted = sorted(set(record_ids))
    if not wanted:
        return {}
    return {row.id: row for row in conn.execute(select(r.id, r.org_code, r.dataset, r.record_key, r.person_id,
                                                       r.event_time, r.payload).where(r.id.in_(wanted)))}


def resources(conn: Connection, rmap: ResourceMap, matches: list[Match], patient_id: str, ids: list[str]) -> list[dict[str, Any]]:
    """The resources of ``matches`` (one page), in their order."""
    mapping, std = load_mapping(), load_standard()
    rows = load_rows(conn, [m.record_id for m in matches])
    encounters = encounter_refs(conn, mapping, std, list(rows.values()), ids)
    out = []
    for m in matches:
        row = rows[m.record_id]
        ctx = Context(mapping, std, std.dataset(row.dataset), row.org_code, f"Patient/{patient_id}",
                      encounters.get(row.id))
        body = build(m.source.parts[m.part].elements, row.payload, ctx)
        if m.source.members:
            element, member_type = m.source.members
            body[element] = [{"reference": f"{member_type}/{rid}"} for rid in m.members]
        out.append({"resourceType": rmap.type, "id": m.id, **body})
    return out

"""Identity guard (身份唯一性守卫): no person ever holds two different valid resident ID numbers,
nor two health card numbers of one issuer.

A person "holds" an identifier when any record behind it states it, when it is registered to
the person (``person_identifiers``) or when it is the golden ID number. The records count, not
only the golden record: a twin's record kept apart at ingest sits on a provisional person whose
golden ID number was left empty (the number belongs to the other twin), yet the record still
carries it. A rule that only compared golden ID numbers let the batch relink merge that
provisional person into the other twin.

Every path that joins records calls this module: the resolver before linking a record to a
person, the relink before joining two persons into a cluster, a manual merge (and the undo of
a split, which is a merge) before moving anything, an unmerge after moving records back.
Whatever the check's severity in validation, only a number that passes GB 11643 here
(:func:`identifiers.normalize_id_number`) is a claim: an invalid or truncated number stored as
sent is never an identity key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

from phip.standard.catalog import DataSet, load_standard
from phip.store.models import Person, PersonIdentifier, Record
from phip.store.sql import select_in

from .identifiers import IdentifierKey, normalize_id_number, record_identifiers

#: Identifier kinds of which a person holds at most one value per scope (issuer).
GUARDED_KINDS = ("id_no", "health_card")
Claim = IdentifierKey  # (kind, scope, value) of a guarded kind
#: Stable code and Chinese message of a refusal, per kind.
REFUSALS = {
    "id_no": ("ID_NO_DIFFERENT", "两位居民名下的记录载有不同的有效身份证号码，不能合并为同一居民"),
    "health_card": ("HEALTH_CARD_DIFFERENT", "两位居民名下的记录载有同一发卡机构的不同健康卡号，不能合并为同一居民"),
}


def claims(keys: Iterable[IdentifierKey]) -> frozenset[Claim]:
    """The guarded identifiers among a record's identifiers."""
    return frozenset(k for k in keys if k[0] in GUARDED_KINDS)


def clash(*groups: Iterable[Claim]) -> list[str]:
    """Kinds on which the union of ``groups`` holds two different values of one scope ([] = compatible)."""
    seen: dict[tuple[str, str], str] = {}
    out: list[str] = []
    for group in groups:
        for kind, scope, value in group:
            first = seen.setdefault((kind, scope), value)
            if first != value and kind not in out:
                out.append(kind)
    return out


def refusal(kinds: list[str]) -> tuple[str, str]:
    """(code, message) for a refused join; the ID number outranks the health card."""
    return REFUSALS["id_no" if "id_no" in kinds else kinds[0]]


def held(conn: Connection, person_ids: Iterable[str]) -> dict[str, set[Claim]]:
    """What each person holds: registered identifiers, golden ID number and every record's
    guarded identifiers (a few set-based reads whatever the number of persons)."""
    ids = sorted(set(person_ids))
    out: dict[str, set[Claim]] = {p: set() for p in ids}
    if not ids:
        return out
    pi, p = PersonIdentifier.__table__, Person.__table__
    for kind, scope, value, pid in select_in(conn, (pi.c.kind, pi.c.scope, pi.c.value, pi.c.person_id), pi.c.person_id, ids):
        if kind in GUARDED_KINDS:
            out[pid].add((kind, scope, value))
    for pid, id_no in select_in(conn, (p.c.id, p.c.id_no), p.c.id, ids):
        if id_no and (id18 := normalize_id_number(id_no)):
            out[pid].add(("id_no", "", id18))
    names, columns = _record_columns()
    by_code = {ds.code: ds for ds in load_standard().datasets}
    for row in select_in(conn, columns, Record.__table__.c.person_id, ids):
        pid, ds = row[0], by_code.get(row[1])
        if ds is None or not ds.person:
            continue
        payload = {n: v for n, v in zip(names, row[2:], strict=True) if v is not None}
        out[pid] |= record_claims(ds, payload)
    return out


def record_claims(dataset: DataSet, record: Mapping[str, Any]) -> frozenset[Claim]:
    """The guarded identifiers one record states (scope of the institution is irrelevant here)."""
    return claims(record_identifiers("", dataset, dict(record)))


@lru_cache(maxsize=1)
def _record_columns() -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """Only the payload fields behind guarded roles are read (JSON extraction in the database),
    never whole payloads: the relink checks every person of its strong pairs. Built once, so
    ``select_in`` reuses its statement."""
    roles = ("id_no", "id_type", "health_card_no", "birth_date")  # a 15-digit number's century needs the birth date
    names = sorted({ds.person[r] for ds in load_standard().datasets if ds.person for r in roles if ds.person.get(r)})
    payload = Record.__table__.c.payload
    return tuple(names), (Record.__table__.c.person_id, Record.__table__.c.dataset, *[payload[n].as_string() for n in names])


def violations(conn: Connection, person_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Active persons that hold two values of a guarded kind (person → kinds); all active persons
    when ``person_ids`` is None. For tests and audits: after any sequence of changes this is empty."""
    if person_ids is None:
        from sqlalchemy import select

        person_ids = [r[0] for r in conn.execute(select(Person.id).where(Person.status == "active"))]
    return {pid: kinds for pid, claims_ in held(conn, person_ids).items() if (kinds := clash(claims_))}

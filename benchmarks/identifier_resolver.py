"""Identifier-only person resolution, the baseline of ``benchmarks/empi.py`` (d): a record is
tied to a person by its identifiers alone (a valid resident ID number, the health card, the
institution's patient id). The platform uses :class:`phip.empi.resolver.EmpiResolver`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from phip.ingest.identity import Resolution, new_person_id
from phip.standard.catalog import DataSet
from phip.standard.checks import is_valid_id_number
from phip.store.models import Person, PersonIdentifier
from phip.store.sql import bulk_insert, bulk_insert_ignoring_conflicts

from phip.empi.identifiers import IdentifierKey
from phip.empi.store import lookup_identifiers


def identifier_keys(org_code: str, dataset: DataSet, record: dict[str, Any]) -> list[IdentifierKey]:
    """The identifiers of a record, strongest first."""
    person = dataset.person
    keys: list[IdentifierKey] = []
    id_field = person.get("id_no")
    if id_field and (id_no := record.get(id_field)) and is_valid_id_number(id_no):
        id_type = record.get(person["id_type"]) if "id_type" in person else None
        if id_type in (None, "01", "02"):
            keys.append(("id_no", "", id_no))
    card_field = person.get("health_card_no")
    if card_field and (card := record.get(card_field)):
        keys.append(("health_card", "", card))
    pid_field = person.get("patient_id")
    if pid_field and (pid := record.get(pid_field)):
        keys.append(("patient_id", org_code, pid))
    return keys


class IdentifierResolver:
    """Deterministic resolution on identifiers; creates persons for unseen identifiers."""

    _lookup = staticmethod(lookup_identifiers)  # the EMPI's identifier lookup (a seam for race tests)

    def resolve(
        self, conn: Connection, org_code: str, dataset: DataSet, records: Sequence[dict[str, Any]], now: datetime
    ) -> Resolution:
        if not dataset.person:
            return Resolution([None] * len(records))
        per_record = [identifier_keys(org_code, dataset, r) for r in records]
        known = self._lookup(conn, {k for keys in per_record for k in keys})
        new_persons: list[dict[str, Any]] = []
        new_ids: dict[IdentifierKey, str] = {}
        result: list[str | None] = []
        for keys in per_record:
            if not keys:
                result.append(None)
                continue
            person_id = next((known[k] for k in keys if k in known), None)
            if person_id is None:
                person_id = new_person_id()
                new_persons.append({"id": person_id, "created_at": now})
            for key in keys:
                if key not in known:
                    known[key] = person_id
                    new_ids[key] = person_id
            result.append(person_id)
        if new_persons:
            bulk_insert(conn, Person.__table__, new_persons)
        if new_ids:
            rows = [{"kind": k, "scope": s, "value": v, "person_id": p, "created_at": now} for (k, s, v), p in new_ids.items()]
            inserted = bulk_insert_ignoring_conflicts(conn, PersonIdentifier.__table__, rows)
            if inserted == len(rows):
                return Resolution(result)
            # Another institution's batch registered some of these identifiers a moment ago:
            # the stored mapping wins, so read back what is really there.
            stored = self._lookup(conn, new_ids.keys())
            moved = {p: stored[k] for k, p in new_ids.items() if stored.get(k) not in (None, p)}
            if moved:
                result = [moved.get(p, p) if p else p for p in result]
        return Resolution(result)

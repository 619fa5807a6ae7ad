"""Person resolution inside the pipeline (the hook the EMPI fills).

Until the EMPI issue lands, a record is tied to a person by its identifiers only: a valid
18-digit resident ID number (province-wide), the resident health card number
(province-wide) and the institution's own patient id (scoped to that institution). Records
with none of these get no person. Resolution is done for a whole batch with one query per
identifier kind, so it costs a few round trips per batch, not per record.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from phip.standard.catalog import DataSet
from phip.standard.checks import is_valid_id_number
from phip.standard.validate import Finding
from phip.store.models import Person, PersonIdentifier
from phip.store.sql import bulk_insert, bulk_insert_ignoring_conflicts

from phip.empi.identifiers import IdentifierKey
from phip.empi.store import lookup_identifiers


@dataclass
class Resolution:
    """What a resolver hands back: the person of each record (None when it names no person)
    and extra findings by record index (the EMPI's ID-number guard warns this way)."""

    person_ids: list[str | None]
    findings: dict[int, list[Finding]] = field(default_factory=dict)


class PersonResolver(Protocol):
    def resolve(
        self, conn: Connection, org_code: str, dataset: DataSet, records: Sequence[dict[str, Any]], now: datetime
    ) -> Resolution:
        ...


def new_person_id() -> str:
    """A new person id: 32 hex digits, time-ordered like UUIDv7 (48-bit milliseconds, then 80
    random bits). The id is indexed in persons, identifiers, the candidate index and records;
    random ids (uuid4) land on random leaf pages of all four indexes, so once a province's
    tables outgrow memory every new person costs four page reads and, after each checkpoint,
    four full-page images in the WAL. Time-ordered ids append to the right-hand pages."""
    return f"{time.time_ns() // 1_000_000:012x}{_random_bits.next():020x}"


class _RandomBits:
    """80 random bits per call, drawn from the operating system 4 KiB at a time: one
    ``getrandom`` system call per id cost 6 µs here, a twentieth of a new person's cost.
    A forked child starts with an empty buffer, so two processes never hand out the same bits."""

    _SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer = b""
        self._at = 0

    def next(self) -> int:
        with self._lock:
            if self._at + 10 > len(self._buffer):
                self._buffer, self._at = os.urandom(self._SIZE), 0
            start = self._at
            self._at = start + 10
            return int.from_bytes(self._buffer[start : start + 10], "big")


_random_bits = _RandomBits()


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

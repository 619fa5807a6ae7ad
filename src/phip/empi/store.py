"""Set-based reads and writes of persons, identifiers and the candidate index (no per-row round trips)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Update, bindparam, delete, text, update

from phip.store.models import Person, PersonIdentifier
from phip.store.sql import bulk_insert, bulk_insert_ignoring_conflicts, select_in

from .identifiers import IdentifierKey
from .tables import EmpiBlock

CHUNK = 500
_LOCK = 0x454D5049  # "EMPI"
PERSON_COLUMNS = ("id", "status", "merged_into", "name", "sex", "birth_date", "id_no", "phone", "address",
                  "match", "sources")
LIGHT_COLUMNS = tuple(c for c in PERSON_COLUMNS if c not in ("match", "sources"))
_SHARED = text("SELECT pg_advisory_xact_lock_shared(:k)")
_EXCLUSIVE = text("SELECT pg_advisory_xact_lock(:k)")


def lock_shared(conn: Connection) -> None:
    """Ingest takes the EMPI lock shared: many batches resolve at once, none during a merge."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SHARED, {"k": _LOCK})


def lock_exclusive(conn: Connection) -> None:
    """Merges, splits and relinks take it exclusive (SQLite: BEGIN IMMEDIATE already serialises)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_EXCLUSIVE, {"k": _LOCK})


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def lookup_identifiers(conn: Connection, keys: Iterable[IdentifierKey]) -> dict[IdentifierKey, str]:
    pi = PersonIdentifier.__table__
    wanted = set(keys)
    values = list({v for _, _, v in wanted})  # unsorted: PostgreSQL sorts an = ANY array itself
    found: dict[IdentifierKey, str] = {}
    # `value` leads the primary key; kind and scope are filtered here (see ingest.identity)
    for kind, scope, value, person_id in select_in(conn, (pi.c.kind, pi.c.scope, pi.c.value, pi.c.person_id), pi.c.value, values):
        key = (kind, scope, value)
        if key in wanted:
            found[key] = person_id
    return found


def load_persons(conn: Connection, ids: Iterable[str], light: bool = False) -> dict[str, dict[str, Any]]:
    """Persons by id; ``light`` leaves out the two JSON columns (``match``, ``sources``), which
    cost most of the read and which a repeat visit of a known person never needs
    (:func:`load_person_details` completes a light row)."""
    p = Person.__table__
    names = LIGHT_COLUMNS if light else PERSON_COLUMNS
    out: dict[str, dict[str, Any]] = {}
    for row in select_in(conn, [p.c[c] for c in names], p.c.id, sorted(set(ids))):
        out[row[0]] = dict(zip(names, row, strict=True))
    return out


def load_person_details(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The ``match`` and ``sources`` columns of persons (what :func:`load_persons` ``light`` skips)."""
    p = Person.__table__
    out: dict[str, dict[str, Any]] = {}
    for pid, match, sources in select_in(conn, (p.c.id, p.c.match, p.c.sources), p.c.id, sorted(set(ids))):
        out[pid] = {"match": match, "sources": sources}
    return out


def blocks_to_persons(conn: Connection, keys: Iterable[str]) -> dict[str, list[str]]:
    b = EmpiBlock.__table__
    out: dict[str, list[str]] = {}
    for key, pid in select_in(conn, (b.c.key, b.c.person_id), b.c.key, sorted(set(keys))):
        out.setdefault(key, []).append(pid)
    return out


def insert_persons(conn: Connection, rows: Sequence[Mapping[str, Any]], blocks: Mapping[str, Sequence[str]]) -> None:
    bulk_insert(conn, Person.__table__, rows, typed=True)
    # a new person's keys cannot collide with stored ones (the person id is part of the key)
    bulk_insert(conn, EmpiBlock.__table__, [{"key": k, "person_id": pid} for pid, keys in blocks.items()
                                            for k in dict.fromkeys(keys)], typed=True)


def update_persons(conn: Connection, rows: Sequence[Mapping[str, Any]], blocks: Mapping[str, Sequence[str]], now: datetime) -> None:
    """Write new golden values (rows carry ``pid`` and the person columns) and re-key the index."""
    if not rows:
        return
    cols = tuple(c for c in rows[0] if c != "pid")
    conn.execute(_update_persons(cols), [{**r, "updated_at": now} for r in rows])
    replace_blocks(conn, blocks)


@lru_cache(maxsize=16)
def _update_persons(columns: tuple[str, ...]) -> Update:
    """Built once per column set (see store.sql.select_in for why statements are reused)."""
    p = Person.__table__
    return update(p).where(p.c.id == bindparam("pid")).values({c: bindparam(c) for c in (*columns, "updated_at")})


_DELETE_BLOCKS = delete(EmpiBlock.__table__).where(EmpiBlock.__table__.c.person_id.in_(bindparam("ids", expanding=True)))


def replace_blocks(conn: Connection, blocks: Mapping[str, Sequence[str]]) -> None:
    ids = list(blocks)
    for chunk in chunks(ids):
        conn.execute(_DELETE_BLOCKS, {"ids": list(chunk)})
    rows = [{"key": k, "person_id": pid} for pid, keys in blocks.items() for k in dict.fromkeys(keys)]
    bulk_insert_ignoring_conflicts(conn, EmpiBlock.__table__, rows)


def insert_identifiers(conn: Connection, assigned: Mapping[IdentifierKey, str], now: datetime) -> dict[IdentifierKey, str]:
    """Register identifiers; returns those another transaction registered first (key → its person)."""
    if not assigned:
        return {}
    rows = [{"kind": k, "scope": s, "value": v, "person_id": p, "created_at": now} for (k, s, v), p in assigned.items()]
    inserted = bulk_insert_ignoring_conflicts(conn, PersonIdentifier.__table__, rows, typed=True)
    if inserted == len(rows):
        return {}
    stored = lookup_identifiers(conn, assigned.keys())
    return {k: stored[k] for k, p in assigned.items() if stored.get(k) not in (None, p)}

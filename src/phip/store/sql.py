"""Dialect-specific statements behind one portable function each (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Table, text
from sqlalchemy.sql.dml import Insert


def _dialect_insert(conn: Connection, table: Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif name in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert
    else:  # pragma: no cover - other servers need their own upsert
        raise NotImplementedError(f"upsert is not implemented for {name}")
    return insert(table)


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    """INSERT that silently skips rows whose key already exists."""
    stmt = _dialect_insert(conn, table)
    if conn.dialect.name in ("mysql", "mariadb"):
        return stmt.prefix_with("IGNORE")
    return stmt.on_conflict_do_nothing()


def increment(conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Add each row's non-key values to the stored counters, creating the row if needed."""
    if not rows:
        return
    stmt = _dialect_insert(conn, table)
    counters = [c for c in rows[0] if c not in keys]
    if conn.dialect.name in ("mysql", "mariadb"):
        stmt = stmt.on_duplicate_key_update({c: table.c[c] + stmt.inserted[c] for c in counters})
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys], set_={c: table.c[c] + stmt.excluded[c] for c in counters}
        )
    conn.execute(stmt, list(rows))


def lock_key(conn: Connection, key: str) -> None:
    """Serialise writers of one key for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, BEGIN IMMEDIATE
    already holds the database write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many new rows as fast as the server allows.

    PostgreSQL: COPY (several times faster than row-by-row INSERT through the driver);
    JSON columns are sent as serialised text. Elsewhere: executemany, which the SQLite
    driver runs in one prepared loop.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), list(rows))
        return
    columns = list(rows[0].keys())
    json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
    cursor = conn.connection.dbapi_connection.cursor()
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([orjson.dumps(row[c]).decode() if c in json_cols and row[c] is not None else row[c] for c in columns])


def bulk_insert_ignoring_conflicts(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert many rows, skipping those whose key exists; returns how many were inserted
    (-1 when the driver cannot tell). PostgreSQL: COPY into a temporary twin, then one
    INSERT … SELECT … ON CONFLICT DO NOTHING; elsewhere an executemany."""
    if not rows:
        return 0
    if conn.dialect.name != "postgresql":
        return conn.execute(insert_ignoring_conflicts(conn, table), list(rows)).rowcount
    temp = f"tmp_{table.name}"
    conn.execute(text(f'CREATE TEMP TABLE IF NOT EXISTS "{temp}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'))
    conn.execute(text(f'TRUNCATE "{temp}"'))
    columns = list(rows[0].keys())
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f'COPY "{temp}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])
    return conn.execute(text(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{temp}" ON CONFLICT DO NOTHING')).rowcount

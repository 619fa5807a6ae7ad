"""Dialect-specific statements behind one portable function each (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, ColumnElement, Connection, Table, Text, any_, bindparam, cast, func, select, text
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


def matching(conn: Connection, column: ColumnElement[Any], values: Sequence[Any]) -> Iterator[ColumnElement[bool]]:
    """``column`` equal to one of ``values``, as conditions of at most a few thousand values.

    PostgreSQL gets ``column = ANY((SELECT array_agg(…) FROM json_array_elements_text(:p)))``:
    one parameter whatever the count, so neither the driver nor the server parses a statement
    with hundreds of placeholders per batch (that parsing cost more than the index probes),
    and the values travel as one JSON text: psycopg dumps a list parameter element by element
    in Python (5 ms of CPU for 3,000 identifiers; orjson takes 0.1). The array is an InitPlan,
    so the plan is the same index scan as with an array parameter. Elsewhere, ``IN (…)`` in
    chunks of 500 (SQLite allows 32,766 host parameters, older builds 999).
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        size = 10_000
        for start in range(0, len(values), size):
            text_values = [v if isinstance(v, str) else str(v) for v in values[start : start + size]]
            elements = func.json_array_elements_text(
                cast(bindparam(None, orjson.dumps(text_values).decode(), type_=Text), JSON)
            ).table_valued("value")
            array = select(func.array_agg(cast(elements.c.value, column.type))).scalar_subquery()
            yield column == any_(cast(array, ARRAY(column.type)))  # cast: an array value, not a row set
        return
    for start in range(0, len(values), 500):
        yield column.in_(values[start : start + 500])


def lock_key(conn: Connection, key: str) -> None:
    """Serialise writers of one key for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, BEGIN IMMEDIATE
    already holds the database write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def bulk_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, typed: bool = False) -> None:
    """Insert many new rows as fast as the server allows.

    PostgreSQL: COPY (several times faster than row-by-row INSERT through the driver);
    JSON columns are sent as serialised text. Elsewhere: executemany, which the SQLite
    driver runs in one prepared loop.

    ``typed`` is for callers whose values have exactly the Python types of their columns (a
    datetime for a timestamp, not its text), the pipeline's records. PostgreSQL then gets
    COPY's binary format: psycopg's C dumpers skip the text conversion, about half the
    client's cost per row (2.7 µs instead of 4.7 for a record). SQLite gets the driver's
    executemany directly, with values converted as SQLAlchemy would (its bind processors,
    datetimes by ``isoformat``, checked against SQLAlchemy's format once): SQLAlchemy's
    per-row parameter processing was about an eighth of the SQLite writer's profile.
    """
    if not rows:
        return
    if conn.dialect.name == "sqlite" and typed:
        _sqlite_executemany(conn, table, rows)
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), list(rows))
        return
    from psycopg.types.json import Json, Jsonb

    columns = list(rows[0].keys())
    if typed:
        types = [table.c[c].type.compile(dialect=conn.dialect).lower().split("(")[0] for c in columns]
        wrap: dict[int, Any] = {i: partial(Jsonb if t == "jsonb" else Json, dumps=orjson.dumps)
                                for i, t in enumerate(types) if t in ("json", "jsonb")}
    else:
        wrap = {i: _json_text for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)}
    values_of, names = _columns(columns)
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN' + (" (FORMAT BINARY)" if typed else "")) as copy:
        if typed:
            copy.set_types(types)
        write = copy.write_row
        for row in rows:
            values = list(values_of(row))
            for i, to_json in wrap.items():
                if values[i] is not None:
                    values[i] = to_json(values[i])
            write(values)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _columns(columns: list[str]) -> tuple[Any, str]:
    """A row mapping's values in column order (one C call per row), and the quoted column list."""
    values_of = itemgetter(*columns) if len(columns) > 1 else (lambda row: (row[columns[0]],))
    return values_of, ", ".join(f'"{c}"' for c in columns)


def _sqlite_executemany(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], verb: str = "INSERT") -> int:
    """The rows inserted by the driver's executemany; returns how many it inserted."""
    columns = list(rows[0].keys())
    dialect = conn.dialect
    convert = {}
    for i, c in enumerate(columns):
        process = table.c[c].type._cached_bind_processor(dialect)  # what SQLAlchemy applies
        if process is not None:
            convert[i] = _fast_datetime(process) or process
    values_of, names = _columns(columns)
    sql = f'{verb} INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    out = []
    for row in rows:
        values = list(values_of(row))
        for i, process in convert.items():
            values[i] = process(values[i])
        out.append(values)
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.executemany(sql, out)
    return cursor.rowcount


_PROBES = (datetime(2026, 1, 2, 3, 4, 5), datetime(2026, 1, 2, 3, 4, 5, 600), datetime(999, 12, 31))


def _fast_datetime(process: Any) -> Any:
    """``isoformat`` in place of SQLAlchemy's SQLite DATETIME processor, when they agree."""
    try:
        if all(process(p) == p.isoformat(" ", "microseconds") for p in _PROBES):
            last: list[Any] = [None, None]  # (value, text): a batch's receipt time is one value

            def convert(v: Any) -> Any:
                if v is last[0]:
                    return last[1]
                text = v.isoformat(" ", "microseconds") if type(v) is datetime and v.tzinfo is None else process(v)
                last[0], last[1] = v, text
                return text

            return convert
    except (TypeError, AttributeError, ValueError):
        pass
    return None


def bulk_insert_ignoring_conflicts(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                                   typed: bool = False) -> int:
    """Insert many rows, skipping those whose key exists; returns how many were inserted
    (-1 when the driver cannot tell). Elsewhere than PostgreSQL: an executemany. ``typed``
    as for :func:`bulk_insert`."""
    if not rows:
        return 0
    if conn.dialect.name == "sqlite" and typed:
        return _sqlite_executemany(conn, table, rows, "INSERT OR IGNORE")
    if conn.dialect.name != "postgresql":
        return conn.execute(insert_ignoring_conflicts(conn, table), list(rows)).rowcount
    from psycopg.errors import UniqueViolation

    # The caller has just looked these keys up, so a conflict means another transaction won
    # a race: rare. Try the plain COPY under a savepoint first (one pass over the rows); only
    # when it meets a conflict, go through a temporary twin and ON CONFLICT DO NOTHING.
    try:
        with conn.begin_nested():
            bulk_insert(conn, table, rows, typed=typed)
        return len(rows)
    except UniqueViolation:
        pass
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

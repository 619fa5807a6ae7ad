"""Dialect-specific statements behind one portable function each (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import (JSON, ColumnElement, Connection, Engine, Row, Select, Table, Text, any_, bindparam, cast, func, select,
                        text)
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import TextClause


def _dialect_insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert
    else:  # pragma: no cover - other servers need their own upsert
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    return insert(table)


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    """INSERT that silently skips rows whose key already exists (built once per dialect and table)."""
    return _insert_ignoring(conn.dialect.name, table)


@lru_cache(maxsize=128)
def _insert_ignoring(dialect: str, table: Table) -> Insert:
    stmt = _dialect_insert(dialect, table)
    if dialect in ("mysql", "mariadb"):
        return stmt.prefix_with("IGNORE")
    return stmt.on_conflict_do_nothing()


def increment(conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Add each row's non-key values to the stored counters, creating the row if needed."""
    if not rows:
        return
    stmt = _increment_statement(conn.dialect.name, table, tuple(keys), tuple(c for c in rows[0] if c not in keys))
    conn.execute(stmt, list(rows))


@lru_cache(maxsize=128)
def _increment_statement(dialect: str, table: Table, keys: tuple[str, ...], counters: tuple[str, ...]) -> Insert:
    """Built once per (dialect, table, columns): every batch bumps three counters, and building
    the upsert afresh (its ``excluded`` alias, then the cache key of a new object) cost more
    than running it (see :func:`select_in`)."""
    stmt = _dialect_insert(dialect, table)
    if dialect in ("mysql", "mariadb"):
        return stmt.on_duplicate_key_update({c: table.c[c] + stmt.inserted[c] for c in counters})
    return stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys], set_={c: table.c[c] + stmt.excluded[c] for c in counters}
    )


def select_in(conn: Connection, columns: Sequence[ColumnElement[Any]], key: ColumnElement[Any],
              values: Sequence[Any]) -> list[Row[Any]]:
    """Rows of ``SELECT columns WHERE key`` is one of ``values``, a few thousand values per statement.

    PostgreSQL gets ``key = ANY((SELECT array_agg(…) FROM json_array_elements_text(:values)))``:
    one parameter whatever the count, so neither the driver nor the server parses a statement
    with hundreds of placeholders per batch (that parsing cost more than the index probes),
    and the values travel as one JSON text: psycopg dumps a list parameter element by element
    in Python (5 ms of CPU for 3,000 identifiers; orjson takes 0.1). The array is an InitPlan,
    so the plan is the same index scan as with an array parameter. SQLite gets the same idea,
    ``key IN (SELECT value FROM json_each(:values))``, an index search per value: one statement
    text whatever the count, where an expanding ``IN (?, ?, …)`` of up to 500 values was
    rendered by SQLAlchemy and prepared by SQLite afresh for every length (3.8 % of the
    writer's instructions on a 5,000-visit stream, callgrind). Other servers: an expanding
    ``IN (…)`` in chunks of 500.

    The statement is built once per (dialect, columns, key) and reused, as are the pipeline's
    other per-batch statements (:func:`increment`, :func:`insert_ignoring_conflicts`,
    ``phip.ingest.writer``): SQLAlchemy memoises the cache key of a statement object, so a
    reused one goes straight to its compiled form, where one built afresh for every call was
    constructed and cache-keyed again, some 0.2 ms of the client's CPU per statement. A batch
    runs about ten statements whatever its size: a push of one record cost 3.8–4.8 ms of the
    client's CPU on PostgreSQL before, 2.0–2.4 after; on SQLite 1.8–1.9 ms before, 0.75–0.83
    after. All rows come back in one fetchall, not a driver call per row.
    """
    stmt = _select_in_statement(conn.dialect.name, tuple(columns), key)
    out: list[Row[Any]] = []
    size = IN_CHUNK.get(conn.dialect.name, IN_CHUNK[""])
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        if conn.dialect.name == "postgresql":
            parameter: Any = orjson.dumps([v if isinstance(v, str) else str(v) for v in chunk]).decode()
        elif conn.dialect.name == "sqlite":
            parameter = orjson.dumps(chunk).decode()
        else:
            parameter = list(chunk)
        out += conn.execute(stmt, {"values": parameter}).all()
    return out


#: Values per statement of :func:`select_in`, by dialect ("" for the others).
#: the largest row id the store holds (a signed 64-bit integer on every back end): an id in an
#: address or a command line beyond it is refused as a bad value, not sent to the driver
MAX_ROW_ID = 2**63 - 1
IN_CHUNK = {"postgresql": 10_000, "sqlite": 10_000, "": 500}


@lru_cache(maxsize=256)
def _select_in_statement(dialect: str, columns: tuple[ColumnElement[Any], ...], key: ColumnElement[Any]) -> Select[Any]:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        elements = func.json_array_elements_text(cast(bindparam("values", type_=Text), JSON)).table_valued("value")
        array = select(func.array_agg(cast(elements.c.value, key.type))).scalar_subquery()
        return select(*columns).where(key == any_(cast(array, ARRAY(key.type))))  # cast: an array, not a row set
    if dialect == "sqlite":
        elements = func.json_each(bindparam("values", type_=Text)).table_valued("value")
        return select(*columns).where(key.in_(select(elements.c.value)))
    return select(*columns).where(key.in_(bindparam("values", expanding=True)))


_LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")


def lock_key(conn: Connection, key: str) -> None:
    """Serialise writers of one key for the rest of the transaction.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, BEGIN IMMEDIATE
    already holds the database write lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_KEY, {"k": key})


def lock_batch(conn: Connection, key: str) -> None:
    """:func:`lock_key` for a pipeline batch, which on PostgreSQL also plans by keys.

    Every statement of a batch looks rows up by a key (natural keys, identifiers, blocking
    keys, counter days), so a sequential scan is never the right plan there; yet a planner
    working from stale statistics picks one: a store analysed while nearly empty, then grown
    (autovacuum off or behind) read ``person_identifiers`` whole for every batch, 183 records/s
    instead of 7,500 (benchmarks/scale.py, docs/performance.md). ``enable_seqscan`` off for
    the transaction only, set in the same round trip as the lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_BATCH, {"k": key})


_LOCK_BATCH = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0)), set_config('enable_seqscan', 'off', true)")


def allocate_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """``n`` new ids of ``table``'s ``id`` column, before its rows are written: a COPY returns
    no ids, and the key directory (``record_keys``) is written beside the records.

    PostgreSQL: ``n`` values of the column's sequence in one statement (unique however many
    writers run; gaps as with any sequence). SQLite: the next ``n`` after the largest, which
    is safe because every transaction here begins IMMEDIATE (``store.db``), holding the one
    write lock until it ends.
    """
    if n == 0:
        return []
    if conn.dialect.name == "postgresql":
        return list(conn.execute(_nextvals(_sequence(conn, table.name)), {"n": n}).scalars())
    top = conn.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(top + 1, top + n + 1))


def _sequence(conn: Connection, table: str) -> str:
    """The id sequence's name, looked up once per store: named as a constant, 1,000 ids cost
    0.4 ms; with ``pg_get_serial_sequence`` in the statement PostgreSQL ran it once per id
    (5,000 catalog buffers, 4–7 ms; EXPLAIN printed by benchmarks/scale.py)."""
    known = _SEQUENCES.get(conn.engine)
    if known is None:
        known = _SEQUENCES[conn.engine] = {}
    if table not in known:
        known[table] = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar_one()
    return known[table]


#: per engine (a store), forgotten with it
_SEQUENCES: WeakKeyDictionary[Engine, dict[str, str]] = WeakKeyDictionary()


@lru_cache(maxsize=32)
def _nextvals(sequence: str) -> TextClause:
    return text(f"SELECT nextval('{sequence}') FROM generate_series(1, :n)")


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

    A JSON column's value may come already serialised, as UTF-8 JSON text in ``bytes`` (no
    JSON value is bytes): it is stored as it is, not serialised again (the pipeline's
    records, see ``ingest.keys.document``).
    """
    if not rows:
        return
    if conn.dialect.name == "sqlite" and typed:
        _sqlite_executemany(conn, table, rows)
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), _json_parsed(table, rows))
        return
    sql, types, wrap, values_of = _copy_plan(conn.dialect, table, tuple(rows[0].keys()), typed)
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(sql) as copy:
        if typed:
            copy.set_types(types)
        write = copy.write_row
        for row in rows:
            values = list(values_of(row))
            for i, to_json in wrap.items():
                if values[i] is not None:
                    values[i] = to_json(values[i])
            write(values)


@lru_cache(maxsize=256)
def _copy_plan(dialect: Any, table: Table, columns: tuple[str, ...], typed: bool) -> tuple[str, list[str], dict[int, Any], Any]:
    """COPY statement, column types, JSON wrappers and row reader of one (table, columns),
    worked out once: a batch runs up to four COPYs (compiling the ten types of a record
    took 14 µs)."""
    from psycopg.types.json import Json, Jsonb

    types: list[str] = []
    if typed:
        types = [table.c[c].type.compile(dialect=dialect).lower().split("(")[0] for c in columns]
        wrap: dict[int, Any] = {i: partial(Jsonb if t == "jsonb" else Json, dumps=_json_bytes)
                                for i, t in enumerate(types) if t in ("json", "jsonb")}
    else:
        wrap = {i: _json_text for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)}
    values_of, names = _columns(list(columns))
    sql = f'COPY "{table.name}" ({names}) FROM STDIN' + (" (FORMAT BINARY)" if typed else "")
    return sql, types, wrap, values_of


def _json_text(value: Any) -> str:
    return value.decode() if type(value) is bytes else orjson.dumps(value).decode()


def _json_bytes(value: Any) -> bytes:
    return value if type(value) is bytes else orjson.dumps(value)


def _json_parsed(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows for SQLAlchemy, which serialises JSON columns itself: JSON text parsed back."""
    columns = [c for c in rows[0] if c in table.c and isinstance(table.c[c].type, JSON)]
    if not any(type(r[c]) is bytes for r in rows for c in columns):
        return list(rows)
    return [{**r, **{c: orjson.loads(r[c]) for c in columns if type(r[c]) is bytes}} for r in rows]


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
        if isinstance(table.c[c].type, JSON) and process is not None:
            convert[i] = partial(_json_or_text, process)
        elif process is not None:
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


def _json_or_text(process: Any, value: Any) -> Any:
    """SQLite JSON column: JSON text (bytes) stored as text (bytes would be a BLOB)."""
    return value.decode() if type(value) is bytes else process(value)


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

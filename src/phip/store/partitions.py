"""Monthly partitions of the tables that grow with a province's years (PostgreSQL only).

A province stores billions of records; kept in one table each, every index of ``records`` is
as large as the store and an old year can only leave by a DELETE of a billion rows. On
PostgreSQL the tables below are declaratively partitioned by month of the column named here
(RANGE), with a DEFAULT partition for what falls outside the months created (events of a
back-loaded history, records without an event time): a month's indexes are sized by that
month, the reports and quality runs, which always name a day range, prune to their months,
and an old month leaves by ``DETACH PARTITION`` (:mod:`phip.store.archive`).

PostgreSQL allows a unique index on a partitioned table only if it holds the partition
column, and a record's natural key does not (a corrected resend may move its event into
another month). Uniqueness of the natural key therefore lives in ``record_keys``, the key
directory (one small row per record, not partitioned), which the pipeline reads and writes
in the batch's transaction; ``records`` keeps a plain index on the natural key for readers.

SQLite keeps the simple layout (one table each): a city's store on one machine does not need
any of this, and the same SQL runs on both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import Connection, Engine, text

from .sql import lock_key

#: table -> the column whose month places a row. ``records`` by the event (what reports,
#: timelines and quality runs select on), and their versions by the same (a month's records
#: leave for the archive with their history); counters and findings by their day.
PARTITIONED: dict[str, str] = {
    "records": "event_time",
    "record_versions": "event_time",
    "event_daily": "day",
    "ingest_daily": "day",
    "measure_daily": "day",
    "quality_findings": "day",
    "batch_findings": "created_at",
}


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    y, m = divmod(month.year * 12 + month.month - 1 + n, 12)
    return date(y, m + 1, 1)


def partition_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


def is_partitioned(conn: Connection, table: str = "records") -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text("SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                                  "WHERE c.relname = :t AND c.relnamespace = 'public'::regnamespace"), {"t": table}).first())


def months_of(conn: Connection, table: str) -> list[date]:
    """The months that have a partition of their own."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t AND p.relnamespace = 'public'::regnamespace"),
        {"t": table}).scalars()
    prefix = f"{table}_p"
    return sorted(date(int(n[-6:-2]), int(n[-2:]), 1) for n in rows if n.startswith(prefix) and n[len(prefix):].isdigit())


def ensure_months(conn: Connection, months: Iterable[date]) -> list[str]:
    """Create the missing month partitions of every partitioned table; returns their names.

    Rows of such a month already in the DEFAULT partition move into the new one (the default
    is detached, the month created and filled from it, the default attached again), all in
    the caller's transaction: run by the worker ahead of time and by ``phip db partitions``,
    never inside an ingest batch (creating a partition locks the parent table).
    """
    created: list[str] = []
    wanted = sorted({month_start(m) for m in months})
    for table, column in PARTITIONED.items():
        if not is_partitioned(conn, table):
            continue
        have = set(months_of(conn, table))
        for month in wanted:
            if month in have:
                continue
            _create_month(conn, table, column, month)
            created.append(partition_name(table, month))
    return created


def _create_month(conn: Connection, table: str, column: str, month: date) -> None:
    name, default = partition_name(table, month), f"{table}_default"
    bounds = {"lo": month, "hi": add_months(month, 1)}
    in_month = f'"{column}" >= :lo AND "{column}" < :hi'
    stray = conn.execute(text(f'SELECT 1 FROM "{default}" WHERE {in_month} LIMIT 1'), bounds).first()
    range_sql = f"FOR VALUES FROM ('{bounds['lo']}') TO ('{bounds['hi']}')"
    if stray is None:
        conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{table}" {range_sql}'))
        return
    conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{default}"'))
    conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{table}" {range_sql}'))
    conn.execute(text(f'INSERT INTO "{name}" SELECT * FROM "{default}" WHERE {in_month}'), bounds)
    conn.execute(text(f'DELETE FROM "{default}" WHERE {in_month}'), bounds)
    conn.execute(text(f'ALTER TABLE "{table}" ATTACH PARTITION "{default}" DEFAULT'))


def window(today: date, back: int = 6, ahead: int = 3) -> list[date]:
    """The months a store keeps partitions for by default: ``back`` before today's, ``ahead`` after."""
    this = month_start(today)
    return [add_months(this, n) for n in range(-back, ahead + 1)]


def partition_table(conn: Connection, table: str, column: str, months: Iterable[date]) -> None:
    """Turn an existing plain table into a table partitioned by month of ``column``, keeping
    every row, its columns, defaults (the id sequence), primary key (with ``column`` added),
    and indexes; a unique index without ``column`` becomes a plain one (see the module).

    Runs inside the migration's transaction: a failure leaves the table as it was.
    """
    old = f"{table}_unpartitioned"
    constraints = conn.execute(text(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u')"), {"t": table}).all()
    backing = {name for name, _, _ in constraints}
    indexes, sequences = _indexes_and_sequences(conn, table)
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING STORAGE) '
                      f'PARTITION BY RANGE ("{column}")'))
    conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
    for month in sorted({month_start(m) for m in months}):
        conn.execute(text(f'CREATE TABLE "{partition_name(table, month)}" PARTITION OF "{table}" '
                          f"FOR VALUES FROM ('{month}') TO ('{add_months(month, 1)}')"))
    conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{old}"'))
    for col, seq in sequences:  # the id sequence follows the new table, so dropping the old keeps it
        conn.execute(text(f'ALTER SEQUENCE {seq} OWNED BY "{table}"."{col}"'))
    conn.execute(text(f'DROP TABLE "{old}"'))
    nullable = conn.execute(text(
        "SELECT NOT attnotnull FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attname = :c"),
        {"t": table, "c": column}).scalar_one()
    for name, kind, definition in constraints:
        cols = _cols(definition)
        listed = ", ".join(f'"{c}"' for c in cols)
        if column in cols:
            conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
        elif kind == "p" and not nullable:
            conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" PRIMARY KEY ({listed}, "{column}")'))
        else:  # no unique index without the partition column; a nullable one cannot join a key
            conn.execute(text(f'CREATE INDEX "ix_{table}_{"_".join(cols)}" ON "{table}" ({listed})'))
    for name, definition in indexes:
        if name not in backing:
            conn.execute(text(definition.replace(f" ON public.{old} ", f" ON public.{table} ")))


def _indexes_and_sequences(conn: Connection, table: str) -> tuple[list, list]:
    """A table's indexes (name, definition) and its columns' owned sequences (column, sequence)."""
    indexes = conn.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = :t"),
        {"t": table}).all()
    sequences = conn.execute(text(
        "SELECT a.attname, pg_get_serial_sequence(:t, a.attname) FROM pg_attribute a "
        "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped "
        "AND pg_get_serial_sequence(:t, a.attname) IS NOT NULL"), {"t": table}).all()
    return indexes, sequences


def _cols(definition: str) -> list[str]:
    return [c.strip().strip('"') for c in definition[definition.index("(") + 1 : definition.rindex(")")].split(",")]


def unpartition_table(conn: Connection, table: str) -> None:
    """The reverse of :func:`partition_table` (the migration's downgrade)."""
    old = f"{table}_partitioned"
    indexes, sequences = _indexes_and_sequences(conn, table)
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING STORAGE)'))
    conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{old}"'))
    for col, seq in sequences:
        conn.execute(text(f'ALTER SEQUENCE {seq} OWNED BY "{table}"."{col}"'))
    conn.execute(text(f'DROP TABLE "{old}" CASCADE'))
    for _name, definition in indexes:
        conn.execute(text(definition.replace(f" ON ONLY public.{old} ", f" ON public.{table} ")
                          .replace(f" ON public.{old} ", f" ON public.{table} ")))


def ensure_ahead(engine: Engine, today: date, ahead: int = 3) -> list[str]:
    """This month's and the next ``ahead`` months' partitions, created if missing (the worker's
    pass; several workers may run it at once: one advisory lock, and the others find them made)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        if not is_partitioned(conn):
            return []
        lock_key(conn, "phip.store.partitions")
        return ensure_months(conn, window(today, back=0, ahead=ahead))


def listing(conn: Connection) -> list[dict[str, object]]:
    """Each partitioned table's month partitions with their estimated rows and size on disk."""
    out = []
    for table in PARTITIONED:
        if not is_partitioned(conn, table):
            continue
        rows = conn.execute(text(
            "SELECT c.relname, c.reltuples, pg_total_relation_size(c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :t AND p.relnamespace = 'public'::regnamespace ORDER BY c.relname"), {"t": table})
        out += [{"table": table, "partition": name, "rows": max(int(n), 0), "bytes": size} for name, n, size in rows]
    return out

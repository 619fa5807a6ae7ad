"""Archive a closed month (归档) to Parquet and detach it; restore it from the files.

A province keeps years of records; the old months are read rarely (an audit, a research
extract) and need not sit in the database's indexes and backups. ``archive_month`` writes the
month's partition of each table in :data:`ARCHIVED` to ``<dir>/<table>_pYYYYMM.parquet``
(pyarrow, zstd; JSON documents as their text), checks each file's row count against the
table, and only then, in one transaction (the partitions locked against writers and counted
again: a record written since its export refuses the month), detaches and drops them, records the
files with their SHA-256 in ``archived_months`` and marks the month's records archived in the
key directory: a resend with the same content stays "unchanged", a changed one is refused
(RECORD_ARCHIVED) instead of silently writing into a month that is not there. A crash before
that transaction leaves the store as it was (the files are written again on the next try).

The counters (``event_daily``, ``ingest_daily``, ``measure_daily``) stay, so the upload
statistics and every report built on them read the same for an archived month. The files are
readable as they are (DuckDB ``read_parquet``, pyarrow, Spark), and ``restore_month`` puts a
month back (the file's checksum checked first) for any reader of the store.

PostgreSQL only: SQLite keeps one table each (a city's store), nothing to detach.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, text

from phip.errors import PhipError

from . import partitions

#: the partitioned tables whose months leave the store (the counters stay; see the module)
ARCHIVED = ("records", "record_versions", "quality_findings", "batch_findings")
_CHUNK = 50_000


class ArchiveError(PhipError):
    """A month that cannot be archived or restored, with the operator's message."""


@dataclass
class Part:
    table: str
    month: date
    path: Path
    rows: int
    sha256: str


def archive_month(engine: Engine, month: date, directory: Path, today: date, now: datetime | None = None) -> list[Part]:
    """Export, check, then detach ``month`` of every table in :data:`ARCHIVED`; ``now`` (the
    platform's clock, which this layer cannot import) stamps the register."""
    return detach_month(engine, month, export_month(engine, month, directory, today), now)


def export_month(engine: Engine, month: date, directory: Path, today: date) -> list[Part]:
    """Step one: each table's partition of a closed ``month`` to its Parquet file, checked
    against the table's row count at the time. Ingest goes on meanwhile."""
    month = partitions.month_start(month)
    _check_store(engine)
    if month >= partitions.add_months(partitions.month_start(today), -1):
        raise ArchiveError("ARCHIVE_OPEN_MONTH", f"{month:%Y-%m} 尚未结束或仍在补传期（本月与上月不能归档）")
    directory.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        held = {t for t in ARCHIVED if month in partitions.months_of(conn, t)}
    if "records" not in held:
        raise ArchiveError("NO_SUCH_PARTITION", f"{month:%Y-%m} 没有记录分区（已归档，或从未建立：phip db partitions 查看）")
    return [_export(engine, table, month, directory) for table in ARCHIVED if table in held]


def detach_month(engine: Engine, month: date, parts: list[Part], now: datetime | None = None) -> list[Part]:
    """Step two, one transaction: the exported partitions locked against writers, counted
    again, then registered, marked archived in the key directory, detached and dropped.

    A late record or a correction of the month written after its export (a hospital may send
    one any time) would otherwise be dropped with the partition and be in no file: with the
    partitions locked no write gets in, and one that got in since the export changes a count
    (a correction adds a superseded version to the same month), so the month is refused
    (ARCHIVE_ROWS_DIFFER, its files removed) and a rerun exports it again. A writer waiting on
    the lock while holding its own may deadlock with the detach; PostgreSQL then aborts one
    of the two transactions, which changes nothing that a retry does not mend."""
    month = partitions.month_start(month)
    with engine.begin() as conn:
        for p in parts:
            conn.execute(text(f'LOCK TABLE "{partitions.partition_name(p.table, month)}" IN SHARE MODE'))
        for p in parts:
            part = partitions.partition_name(p.table, month)
            rows = conn.execute(text(f'SELECT count(*) FROM "{part}"')).scalar_one()
            if rows != p.rows:
                for q in parts:
                    q.path.unlink(missing_ok=True)
                raise ArchiveError("ARCHIVE_ROWS_DIFFER", f"{part}：导出 {p.rows} 行后又有写入，现为 {rows} 行；"
                                   "未归档，请重新执行")
        name = partitions.partition_name("records", month)
        conn.execute(text(f'UPDATE record_keys SET archived = true WHERE record_id IN (SELECT id FROM "{name}")'))
        now = now or datetime.now()
        for p in parts:
            conn.execute(text("INSERT INTO archived_months (table_name, month, path, rows, sha256, archived_at) "
                              "VALUES (:t, :m, :p, :r, :s, :at)"),
                         {"t": p.table, "m": month, "p": str(p.path), "r": p.rows, "s": p.sha256, "at": now})
            part = partitions.partition_name(p.table, month)
            conn.execute(text(f'ALTER TABLE "{p.table}" DETACH PARTITION "{part}"'))
            conn.execute(text(f'DROP TABLE "{part}"'))
    return parts


def restore_month(engine: Engine, month: date) -> list[Part]:
    """Put an archived month back from its files (each checked against its recorded SHA-256)."""
    month = partitions.month_start(month)
    _check_store(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT table_name, path, rows, sha256 FROM archived_months WHERE month = :m"),
                            {"m": month}).all()
    if not rows:
        raise ArchiveError("NOT_ARCHIVED", f"{month:%Y-%m} 没有归档记录")
    parts = [Part(t, month, Path(p), n, s) for t, p, n, s in rows]
    for p in parts:
        if not p.path.is_file():
            raise ArchiveError("ARCHIVE_FILE_MISSING", f"归档文件不存在：{p.path}")
        if _sha256(p.path) != p.sha256:
            raise ArchiveError("ARCHIVE_FILE_CHANGED", f"归档文件的校验值与归档时不符，未恢复：{p.path}")
    with engine.begin() as conn:
        partitions.ensure_months(conn, [month])
        for p in parts:
            loaded = _load(conn, p)
            if loaded != p.rows:
                raise ArchiveError("ARCHIVE_ROWS_DIFFER", f"{p.path} 读出 {loaded} 行，归档时为 {p.rows} 行；未恢复")
        name = partitions.partition_name("records", month)
        conn.execute(text(f'UPDATE record_keys SET archived = false WHERE record_id IN (SELECT id FROM "{name}")'))
        conn.execute(text("DELETE FROM archived_months WHERE month = :m"), {"m": month})
    return parts


def _check_store(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise ArchiveError("NOT_PARTITIONED", "SQLite 存储不分区，不能按月归档")
    with engine.connect() as conn:
        if not partitions.is_partitioned(conn):
            raise ArchiveError("NOT_PARTITIONED", "存储尚未分区（先运行 phip db upgrade）")


def _columns(conn: Connection, table: str) -> list[tuple[str, str]]:
    return conn.execute(text(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = :t ORDER BY ordinal_position"), {"t": table}).all()


def _export(engine: Engine, table: str, month: date, directory: Path) -> Part:
    """One partition to Parquet, written under a temporary name and renamed when complete."""
    part = partitions.partition_name(table, month)
    path = directory / f"{part}.parquet"
    partial = path.with_suffix(".parquet.partial")
    with engine.connect() as conn:
        columns = _columns(conn, table)
        select = ", ".join(f'"{c}"::text AS "{c}"' if kind in ("json", "jsonb") else f'"{c}"' for c, kind in columns)
        expected = conn.execute(text(f'SELECT count(*) FROM "{part}"')).scalar_one()
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(text(f'SELECT {select} FROM "{part}"'))
        names = [c for c, _ in columns]
        writer: pq.ParquetWriter | None = None
        schema = pa.schema([(c, _arrow_type(kind)) for c, kind in columns])
        try:
            writer = pq.ParquetWriter(partial, schema, compression="zstd")
            for chunk in result.partitions(_CHUNK):
                writer.write_table(pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in chunk], schema))
        finally:
            if writer is not None:
                writer.close()
    written = pq.read_metadata(partial).num_rows
    if written != expected:
        partial.unlink(missing_ok=True)
        raise ArchiveError("ARCHIVE_ROWS_DIFFER", f"{part}：写出 {written} 行，表中 {expected} 行；未归档")
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    partial.replace(path)
    return Part(table, month, path, expected, _sha256(path))


def _arrow_type(kind: str) -> pa.DataType:
    return {"bigint": pa.int64(), "integer": pa.int32(), "boolean": pa.bool_(), "date": pa.date32(),
            "timestamp without time zone": pa.timestamp("us")}.get(kind, pa.string())


def _load(conn: Connection, part: Part) -> int:
    """COPY a file's rows back through the parent table (they land in the month's partition)."""
    names = pq.read_schema(part.path).names
    cursor = conn.connection.dbapi_connection.cursor()
    n = 0
    quoted = ", ".join(f'"{c}"' for c in names)
    with cursor.copy(f'COPY "{part.table}" ({quoted}) FROM STDIN') as copy:
        for batch in pq.ParquetFile(part.path).iter_batches(batch_size=_CHUNK):
            for row in batch.to_pylist():
                copy.write_row([row[c] for c in names])
                n += 1
    return n


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""Change detection for tables without an update time (变更检测, ``change_detection: checksum``).

A table with no update-time column cannot be read incrementally: a corrected row looks like
every other. Reading it whole every night costs the whole table each time. As
pt-table-checksum does between a master and its replicas, the table is cut into **chunks**,
ranges of a unique key (``[lo, hi)``, about ``chunk_size`` rows each when drawn), and the
*source* computes for each chunk its row count and a checksum of the mapped columns — MySQL/
MariaDB ``BIT_XOR`` of the first 64 bits of ``MD5(CONCAT_WS('#', columns…, null flags))``,
PostgreSQL ``SUM`` of the same bits of ``MD5(ROW(columns…)::text)`` — ``chunks_per_query``
chunks per query (their bounds as a derived table joined to the source on the key: an index
range per chunk, see :meth:`ChunkSql.checksums`). Only the rows of
the chunks whose (count, checksum) differ from those of the platform's last read are fetched
and sent through the pipeline, which stores a changed row as a new version and recognises the
others by content hash. Every query is generated here and passes the read-only guard before it
is sent.

Chunks are drawn at the source (every ``chunk_size``-th key, ``ROW_NUMBER``) on the first run,
and again inside a chunk that has grown past twice the size (rows appended after the last key
land in the last, open-ended chunk). Each chunk row keeps its own bounds, so chunks never
depend on Python ordering the keys as the database does.

Crash safety: a chunk's count and checksum are those the source computed *before* its rows were
read, and are written only after the pipeline has committed those rows. A kill in between
leaves the old state: the chunk differs again on the next run and is read again (unchanged rows
cost a hash comparison, nothing is stored twice). A row changed between the checksum and the
read is read in its new state and found again next run. Newly drawn chunks (first run, a chunk
drawn again) are recorded at once with the count -1, "never read", which no source count
equals: the stored chunks cover the whole key range at every moment, so a kill never leaves a
range that no chunk compares.

Deleted rows: a chunk whose rows were deleted at the source differs and is re-read; the rows
that are gone are simply not among those read. The platform keeps the record as last read (it
keeps every version and never deletes on its own; the standard has no deletion message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select, text, update

from phip.standard.validate import platform_now

from . import state
from .guard import check_query
from .mapping import FieldMap, Job, Mapping, MappingError
from .source import SourceError, describe_error, mask_url, source_url
from .tables import CollectChunk, CollectRun

if TYPE_CHECKING:
    from .runner import Collector, JobResult, Progress

K = CollectChunk.__table__
SUPPORTED = ("mysql", "mariadb", "postgresql")
UNREAD = -1  # the count stored for a chunk drawn but not read yet: it differs from any source count
#: Changed chunks are read about this many batches per query. Within one query the reader works
#: ahead while the collector writes; one batch per query left them taking turns (181,400 rows
#: re-read at 16,000 rows/s beside the full re-read's 24,000). A kill re-reads at most a group.
GROUP_BATCHES = 8


@dataclass
class Chunk:
    lo: list[Any] | None  # None: no lower bound (the first chunk)
    hi: list[Any] | None  # None: no upper bound (the last chunk)
    rows: int = 0  # at the source, now
    checksum: str | None = None
    stored: tuple[int, str | None] | None = None  # (rows, checksum) of the platform's last read

    @property
    def changed(self) -> bool:
        return self.stored != (self.rows, self.checksum)


def _encode(key: list[Any] | None) -> str | None:
    return None if key is None else json.dumps(key, ensure_ascii=False, separators=(",", ":"))


def _decode(raw: str | None) -> list[Any] | None:
    return None if raw in (None, "") else json.loads(raw)  # type: ignore[arg-type]


def _plain_key(value: Any) -> Any:
    """A key value as JSON keeps it (integer and text keys; others as their text)."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | str | float) or value is None:
        return value
    return str(value)


class ChunkSql:
    """The SQL of one change-detection job in the source's dialect."""

    def __init__(self, job: Job, dialect: str):
        assert job.change_detection is not None
        if dialect not in SUPPORTED:
            raise MappingError("CHECKSUM_DIALECT", f"数据集{job.key}：变更检测（change_detection）目前支持 MySQL/MariaDB 与 "
                                                   f"PostgreSQL 数据源，不支持 {dialect}")
        self.job = job
        self.dialect = dialect
        self.keys = [f"src.{k.split('.')[-1]}" for k in job.change_detection.keys]
        seen: dict[str, None] = {}
        for col in [*job.change_detection.keys, *(c for fm in job.fields.values() if isinstance(fm, FieldMap)
                                                   for c in fm.columns())]:
            seen.setdefault(f"src.{col.split('.')[-1]}", None)
        self.columns = list(seen)  # the key and every mapped column: what a change must show in

    @property
    def aggregate(self) -> str:
        cols = ", ".join(self.columns)
        if self.dialect == "postgresql":
            return (f"SUM(CAST(CAST('x' || SUBSTR(MD5(CAST(ROW({cols}) AS TEXT)), 1, 16) AS BIT(64)) AS BIGINT))")
        nulls = ", ".join(f"ISNULL({c})" for c in self.columns)
        return f"BIT_XOR(CAST(CONV(SUBSTRING(MD5(CONCAT_WS('#', {cols}, CONCAT({nulls}))), 1, 16), 16, 10) AS UNSIGNED))"

    def _bound(self, op: str, key: list[Any], name: str, params: dict[str, Any]) -> str:
        if len(self.keys) == 1:
            params[name] = key[0]
            return f"{self.keys[0]} {op} :{name}"
        names = []
        for i, value in enumerate(key):
            params[f"{name}_{i}"] = value
            names.append(f":{name}_{i}")
        return f"({', '.join(self.keys)}) {op} ({', '.join(names)})"

    def range(self, lo: list[Any] | None, hi: list[Any] | None, tag: str, params: dict[str, Any]) -> str:
        """``[lo, hi)`` of the key; rows whose key is NULL belong to no chunk (see the docs)."""
        parts = [f"{k} IS NOT NULL" for k in self.keys] if lo is None else [self._bound(">=", lo, f"l{tag}", params)]
        if hi is not None:
            parts.append(self._bound("<", hi, f"h{tag}", params))
        return " AND ".join(parts)

    def checksums(self, chunks: list[Chunk]) -> tuple[str, dict[str, Any]]:
        """ONE query for many chunks: their bounds as a derived table joined to the source on
        the key range (each bound row is an index range at the source: MariaDB "range checked
        for each record", PostgreSQL a parameterised index scan), grouped by chunk. The chunks
        without a lower or upper bound (the first, the last) are parts of their own. A part of
        the full expression per chunk cost the read-only guard 5 ms of parsing per chunk (a
        million rows in chunks of 100: 50 s); a bound row costs it 0.25 ms."""
        params: dict[str, Any] = {}
        width = len(self.keys)
        rows, parts = [], []
        for i, c in enumerate(chunks):
            if c.lo is None or c.hi is None:
                parts.append(f"SELECT {i} AS n, COUNT(*) AS cnt, {self.aggregate} AS crc FROM ({self.job.sql}) src "
                             f"WHERE {self.range(c.lo, c.hi, str(i), params)}")
                continue
            cells = []
            for j in range(width):
                params[f"l{i}_{j}"], params[f"h{i}_{j}"] = c.lo[j], c.hi[j]
                cells += [f":l{i}_{j}", f":h{i}_{j}"]
            if not rows:
                names = [f"{side}{j}" for j in range(width) for side in ("lo", "hi")]
                cells = [f"{cell} AS {name}" for cell, name in zip(cells, names, strict=True)]
                rows.append(f"SELECT {i} AS n, {', '.join(cells)}")
            else:
                rows.append(f"SELECT {i}, {', '.join(cells)}")
        if rows:
            los = ", ".join(f"b.lo{j}" for j in range(width))
            his = ", ".join(f"b.hi{j}" for j in range(width))
            keys = ", ".join(self.keys)
            on = (f"{keys} >= {los} AND {keys} < {his}" if width == 1
                  else f"({keys}) >= ({los}) AND ({keys}) < ({his})")
            parts.insert(0, f"SELECT b.n, COUNT(*) AS cnt, {self.aggregate} AS crc FROM ({' UNION ALL '.join(rows)}) b "
                            f"JOIN ({self.job.sql}) src ON {on} GROUP BY b.n")
        return " UNION ALL ".join(parts), params

    def boundaries(self, lo: list[Any] | None, hi: list[Any] | None, size: int) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"size": size}
        keys = ", ".join(f"{k} AS k{i}" for i, k in enumerate(self.keys))
        order = ", ".join(self.keys)
        out = ", ".join(f"b.k{i}" for i in range(len(self.keys)))
        return (f"SELECT {out} FROM (SELECT {keys}, ROW_NUMBER() OVER (ORDER BY {order}) AS phip_rn "
                f"FROM ({self.job.sql}) src WHERE {self.range(lo, hi, 'b', params)}) b "
                f"WHERE MOD(b.phip_rn - 1, :size) = 0 ORDER BY {out}", params)

    def rows(self, chunks: list[Chunk]) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}
        where = " OR ".join(f"({self.range(c.lo, c.hi, str(i), params)})" for i, c in enumerate(chunks))
        return f"SELECT * FROM ({self.job.sql}) src WHERE {where} ORDER BY {', '.join(self.keys)}", params


def _query(mapping: Mapping, job: Job, source: Engine, sql: str, params: dict[str, Any]) -> list[Any]:
    """Run one generated query at the source, after the guard; driver errors as SourceError."""
    check_query(sql, source.dialect.name, f"数据集{job.key}的变更检测查询")
    url = source_url(mapping)
    where = f"数据源{mapping.name}（{mask_url(url)}）"
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    try:
        with source.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    except ProgrammingError as exc:
        raise MappingError("SOURCE_QUERY", f"{where}执行变更检测查询出错：{describe_error(exc, url)}") from None
    except (DBAPIError, OSError, ConnectionError) as exc:
        raise SourceError(f"{where}变更检测查询失败：{describe_error(exc, url)}") from None


def _draw(mapping: Mapping, job: Job, source: Engine, sql: ChunkSql, lo: list[Any] | None,
          hi: list[Any] | None) -> list[Chunk]:
    """Chunks of about ``chunk_size`` rows covering ``[lo, hi)``, drawn at the source."""
    assert job.change_detection is not None
    text_, params = sql.boundaries(lo, hi, job.change_detection.chunk_size)
    starts = [[_plain_key(v) for v in row] for row in _query(mapping, job, source, text_, params)]
    bounds: list[list[Any] | None] = [lo, *starts[1:], hi]
    return [Chunk(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _measure(mapping: Mapping, job: Job, source: Engine, sql: ChunkSql, chunks: list[Chunk]) -> int:
    """Fill each chunk's count and checksum at the source; returns the number of queries."""
    assert job.change_detection is not None
    step = job.change_detection.chunks_per_query
    queries = 0
    for start in range(0, len(chunks), step):
        part = chunks[start:start + step]
        text_, params = sql.checksums(part)
        for c in part:  # a chunk with no row left has no group in the result
            c.rows, c.checksum = 0, None
        for n, cnt, crc in _query(mapping, job, source, text_, params):
            part[int(n)].rows = int(cnt)
            part[int(n)].checksum = None if crc is None or int(cnt) == 0 else str(int(crc))
        queries += 1
    return queries


def _stored(engine: Engine, mapping: Mapping, job: Job) -> list[Chunk]:
    with engine.connect() as conn:
        rows = conn.execute(select(K.c.lo, K.c.hi, K.c.rows, K.c.checksum)
                            .where(K.c.source == mapping.name, K.c.job == job.key)).all()
    return [Chunk(_decode(r.lo), _decode(r.hi), stored=(int(r.rows), r.checksum)) for r in rows]


def _save(conn: Any, mapping: Mapping, job: Job, chunks: list[Chunk], run_id: int, unread: bool = False) -> None:
    now = platform_now()
    for c in chunks:
        lo = _encode(c.lo) or ""
        rows, checksum = (UNREAD, None) if unread else (c.rows, c.checksum)
        values = {"hi": _encode(c.hi), "rows": rows, "checksum": checksum, "run_id": run_id, "updated_at": now}
        where = (K.c.source == mapping.name, K.c.job == job.key, K.c.lo == lo)
        if conn.execute(update(K).where(*where).values(**values)).rowcount == 0:
            conn.execute(insert(K).values(source=mapping.name, job=job.key, lo=lo, **values))


def _groups(chunks: list[Chunk], rows_per_group: int) -> list[list[Chunk]]:
    """Changed chunks read together, about ``rows_per_group`` rows per query."""
    groups: list[list[Chunk]] = []
    rows = 0
    for c in chunks:
        if not groups or rows + c.rows > rows_per_group:
            groups.append([])
            rows = 0
        groups[-1].append(c)
        rows += c.rows
    return groups


def _unread(engine: Engine, mapping: Mapping, job: Job, chunks: list[Chunk], run_id: int) -> None:
    """Record newly drawn chunks as never read (count -1), in one transaction, before any is
    read: the stored chunks always cover the whole key range, so a kill leaves no range that
    no chunk would ever compare again."""
    for c in chunks:
        c.stored = (UNREAD, None)
    with engine.begin() as conn:
        _save(conn, mapping, job, chunks, run_id, unread=True)


def plan(engine: Engine, mapping: Mapping, job: Job, source: Engine, everything: bool = False,
         run_id: int = 0) -> tuple[list[Chunk], int]:
    """The job's chunks with the source's counts and checksums, drawn again where they grew;
    and the number of checksum queries sent. ``everything``: every chunk counts as changed."""
    assert job.change_detection is not None
    sql = ChunkSql(job, source.dialect.name)
    chunks = _stored(engine, mapping, job)
    if not chunks:
        chunks = _draw(mapping, job, source, sql, None, None)  # first run: all new, all read
        _unread(engine, mapping, job, chunks, run_id)
    queries = _measure(mapping, job, source, sql, chunks)
    limit = 2 * job.change_detection.chunk_size
    out: list[Chunk] = []
    for c in chunks:
        if c.rows <= limit:
            out.append(c)
            continue
        parts = _draw(mapping, job, source, sql, c.lo, c.hi)
        queries += _measure(mapping, job, source, sql, parts)
        _unread(engine, mapping, job, parts, run_id)  # the first part takes over the chunk's row
        out.extend(parts)
    if everything:
        for c in out:
            c.stored = None
    return out, queries


def run_checksum(collector: Collector, mapping: Mapping, job: Job, source: Engine, result: JobResult,
                 progress: Progress | None, everything: bool) -> None:
    """Compare, re-read the changed chunks, and record their state after each commit."""
    engine = collector.engine
    chunks, _ = plan(engine, mapping, job, source, everything, result.run_id or 0)
    changed = [c for c in chunks if c.changed]
    result.chunks, result.chunks_changed = len(chunks), len(changed)
    with engine.begin() as conn:
        conn.execute(update(CollectRun.__table__).where(CollectRun.__table__.c.id == result.run_id)
                     .values(chunks=len(chunks), chunks_changed=len(changed)))
    if progress is not None:
        progress.start(job, sum(c.rows for c in changed))
    dataset = collector.pipeline.dataset(job.dataset)
    batch_size = job.batch_size or mapping.source.batch_size
    sql = ChunkSql(job, source.dialect.name)
    ref = f"{mapping.name}/{job.key}#{result.run_id}"
    with engine.begin() as conn:  # emptied at the source: nothing to read, nothing to wait for
        _save(conn, mapping, job, [c for c in changed if c.rows == 0], result.run_id or 0)
    for group in _groups([c for c in changed if c.rows > 0], batch_size * GROUP_BATCHES):
        text_, params = sql.rows(group)
        check_query(text_, source.dialect.name, f"数据集{job.key}的变更检测查询")
        for n_rows, _, receipt in collector._committed(  # noqa: SLF001 - the collector's own reading path
                mapping, job, dataset, source, text_, text_, params, batch_size, False, lambda _n: None, ref,
                result.rows_read):
            with engine.begin() as conn:  # the pipeline has committed the batch
                state.renew_lease(conn, mapping.name, collector.holder)
                state.add_to_run(conn, result.run_id or 0, rows=n_rows, receipt=receipt, cursor_to=None)
            result.rows_read += n_rows
            for name in ("accepted", "updated", "unchanged", "rejected", "warnings"):
                setattr(result, name, getattr(result, name) + getattr(receipt, name))
            result.event_days |= receipt.event_days
            if progress is not None:
                progress.advance(job, n_rows)
        with engine.begin() as conn:  # every row of the group is committed: its chunks are current
            _save(conn, mapping, job, group, result.run_id or 0)


def forget(engine: Engine, source: str, job: str) -> None:
    """Drop a job's chunk state (its next run reads everything again)."""
    with engine.begin() as conn:
        conn.execute(delete(K).where(K.c.source == source, K.c.job == job))

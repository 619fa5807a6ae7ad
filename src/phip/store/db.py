"""Engine creation and schema migration.

SQLite is the embedded default: WAL journal (readers never block the writer), NORMAL
synchronous (durable at checkpoints, safe against application crashes), a busy timeout so
that a second writer waits instead of failing, and ``BEGIN IMMEDIATE`` so a write
transaction takes the write lock up front instead of failing on upgrade mid-batch.

Writes are ``engine.begin()`` and reads ``engine.connect()`` throughout PHIP (a test keeps it
so): only the first begin IMMEDIATE. A read begins deferred, on its own snapshot: begun
IMMEDIATE, a page, export or API read would hold the one write lock while it ran, and a
reader running reports back to back cut ingest to a few percent (benchmarks/concurrent_reads.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url

from .checkpoint import Checkpointer

MIGRATIONS = Path(__file__).parent / "migrations"
#: bytes the SQLite WAL file is cut back to when the log starts over (PRAGMA journal_size_limit)
WAL_SIZE_LIMIT = 64 << 20


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _json_loads(value: str | bytes | int | float) -> object:
    """A JSON column's value: SQLite gives a column declared JSON numeric affinity, so a
    document that is a bare number (a rejected record sent as ``7``) comes back as a number,
    not as its text."""
    return value if isinstance(value, int | float) else orjson.loads(value)


def make_engine(url: str, **kwargs: object) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=_json_dumps, json_deserializer=_json_loads,
                               connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # A city's store outgrows SQLite's defaults (2 MiB of page cache, a checkpoint
            # every 1,000 WAL pages): the pipeline's batch touches pages of a dozen indexes, and
            # checkpointing every batch or two copied and synced them again and again. With
            # 16 MiB of cache, reads through a 256 MiB memory map (shared by all connections)
            # and a checkpoint every 10,000 pages (40 MiB of WAL), 100,000 streamed visits went
            # from 16,000 to 18,300 records/s.
            cur.execute("PRAGMA cache_size=-16384")
            cur.execute("PRAGMA mmap_size=268435456")
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            # A long read (an export) pins its snapshot, so the WAL grows with every write
            # meanwhile; SQLite then reuses the file at that size for good. Cut back to 64 MiB
            # (above the 40 MiB a checkpoint lets it reach) when the log starts over.
            cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _WRITING.get() else "BEGIN")

        engine.begin = _writing(engine.begin)  # type: ignore[method-assign]

        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            checkpointer = Checkpointer(parsed.database)  # see phip.store.checkpoint
            event.listen(engine, "commit", lambda _conn: checkpointer.request())
            event.listen(engine, "engine_disposed", lambda _engine: checkpointer.pause())
            weakref.finalize(engine, checkpointer.close)
            engine.checkpointer = checkpointer  # type: ignore[attr-defined]
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return create_engine(url, json_serializer=_json_dumps, json_deserializer=_json_loads,
                         pool_pre_ping=True, **kwargs)


#: set while ``engine.begin()`` opens its transaction: the SQLite begin event then takes the write lock
_WRITING: ContextVar[bool] = ContextVar("phip_sqlite_writing", default=False)


def _writing(begin: Callable[[], AbstractContextManager[Connection]]) -> Callable[[], AbstractContextManager[Connection]]:
    """``engine.begin`` that marks its transaction a write while it begins (reads inside it,
    on other connections, begin deferred as usual)."""

    @contextmanager
    def write() -> Iterator[Connection]:
        with ExitStack() as stack:
            token = _WRITING.set(True)
            try:
                conn = stack.enter_context(begin())
            finally:
                _WRITING.reset(token)
            yield conn

    return write


def create_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` when the server lacks it (tests, benchmarks)."""
    target = make_url(url)
    admin = make_engine(target.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database}).first():
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


def wipe(engine: Engine) -> None:
    """Drop every table of the store, migrations' bookkeeping included (tests and benchmarks
    start from nothing). PostgreSQL: the ``public`` schema is recreated, which also takes
    tables no model declares; elsewhere every table found in the store is dropped."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            return
        found = MetaData()
        found.reflect(conn)  # the store sits below the areas that declare tables: read what is there
        found.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    command.upgrade(alembic_config(engine), "head")

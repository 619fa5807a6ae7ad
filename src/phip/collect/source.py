"""Connections to hospital databases: read-only sessions, streaming, masked URLs.

The guard refuses writing SQL; the session refuses writes too, where the dialect allows:
MariaDB/MySQL ``SET SESSION TRANSACTION READ ONLY`` (pymysql ``init_command``), PostgreSQL
``default_transaction_read_only`` (libpq ``options``), SQLite ``mode=ro`` URI plus
``PRAGMA query_only``. SQL Server and Oracle have no session-wide switch a client can set;
there the read-only account and the guard carry the rule.

Passwords never leave this module: URLs are shown with ``***`` and driver messages are
scrubbed of the password before they reach a log, a status table or the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from phip.errors import PhipError

from .mapping import Mapping, MappingError, resolve_url


class SourceError(PhipError):
    """The source failed: ``code`` says how (:mod:`phip.collect.source_errors`), ``retry``
    whether trying again can help (a server down: yes; a wrong password: no), ``source_wide``
    whether the source's other jobs would meet the same wall (then they are skipped)."""

    def __init__(self, message: str, code: str = "SOURCE_DOWN", retry: bool = True, source_wide: bool = True,
                 driver: str | None = None):
        super().__init__(code, message)  # pickled by PhipError: raised in the reader process
        self.retry = retry
        self.source_wide = source_wide
        self.driver = driver  # the driver's text (password scrubbed): logged, never shown


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (safe to print and log)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<无法解析的连接串>"
    return parsed.render_as_string(hide_password=True)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def describe_error(exc: BaseException, url: URL | None = None) -> str:
    """A short, password-free description of a driver error."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()[0] if str(orig if orig is not None else exc).strip() else type(exc).__name__
    text = _scrub(text, url.password if url is not None and url.password else None)
    return text[:500]


def source_url(mapping: Mapping) -> URL:
    try:
        return make_url(resolve_url(mapping.source))
    except ArgumentError:
        raise MappingError("BAD_URL", f"数据源{mapping.name}的连接串格式不正确：{mask_url(mapping.source.url)}") from None


def open_source(mapping: Mapping) -> Engine:
    """An engine whose every session is read-only where the dialect allows it."""
    url = source_url(mapping)
    backend = url.get_backend_name()
    timeout = mapping.source.connect_timeout
    kwargs: dict[str, Any] = {"pool_pre_ping": False, "pool_size": 1, "max_overflow": 1} if backend != "sqlite" else {}
    connect_args: dict[str, Any] = {}
    if backend in ("mysql", "mariadb"):
        # net_write_timeout: the server waits that long for us to read the next rows of a
        # streamed result while a batch is in the pipeline.
        legacy = mapping.source.legacy_encoding
        connect_args = {"init_command": "SET SESSION TRANSACTION READ ONLY", "connect_timeout": timeout,
                        "read_timeout": max(timeout, 600),
                        # latin1 hands the stored bytes over untouched, to be decoded as they were written
                        "charset": "latin1" if legacy else url.query.get("charset", "utf8mb4"),
                        "conv": _mysql_converters(legacy)}
    elif mapping.source.legacy_encoding:
        raise MappingError("BAD_LEGACY_ENCODING", f"数据源{mapping.name}：legacy_encoding 仅适用于MySQL/MariaDB数据源")
    elif backend == "postgresql":
        connect_args = {"options": "-c default_transaction_read_only=on", "connect_timeout": timeout,
                        "application_name": "phip-collect"}
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        url = _sqlite_read_only(url)
        connect_args = {"uri": True, "timeout": timeout}
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _query_only(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA query_only = ON")
            # one row's bytes that are no UTF-8 failed the whole read as "source down" (the
            # sqlite3 module raises while fetching); the bad bytes read as U+FFFD, as a MySQL
            # source's undecodable legacy bytes do
            dbapi_conn.text_factory = _sqlite_text

    elif backend in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _net_timeout(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION net_write_timeout = 600")

    elif backend == "oracle":

        @event.listens_for(engine, "begin")
        def _read_only_tx(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    return engine


def _sqlite_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _mysql_converters(legacy_encoding: str | None) -> dict[Any, Any]:
    """pymysql's converters for a source: zero dates as NULL (:func:`_zero_dates_as_null`),
    and with ``legacy_encoding`` every text value decoded from the bytes it was stored as
    (the session is latin1, which maps bytes to characters one to one)."""
    conv = _zero_dates_as_null()
    if legacy_encoding:
        from pymysql.constants import FIELD_TYPE

        def decode(value: Any) -> Any:
            raw = value.encode("latin1") if isinstance(value, str) else bytes(value)
            try:
                return raw.decode(legacy_encoding)
            except UnicodeDecodeError:
                return raw.decode(legacy_encoding, "replace")  # shown as U+FFFD, reported by validation

        for name in ("VARCHAR", "VAR_STRING", "STRING", "BLOB", "TINY_BLOB", "MEDIUM_BLOB", "LONG_BLOB", "ENUM", "SET"):
            conv[getattr(FIELD_TYPE, name)] = decode
    return conv


def _zero_dates_as_null() -> dict[Any, Any]:
    """pymysql's converters, with MySQL's zero dates (``0000-00-00``, ``0000-00-00 00:00:00``)
    read as NULL, as JDBC's ``zeroDateTimeBehavior=convertToNull`` does in most hospital
    integrations: old HIS schemas write them for "not yet" (a visit not ended, a row never
    updated). pymysql hands them over as text, which validation rejected as a bad date (the
    whole record lost for an optional field) and the cursor could not order (the run failed).
    Other impossible dates (``2026-02-00``) stay text and are reported as BAD_DATE."""
    from pymysql.constants import FIELD_TYPE
    from pymysql.converters import conversions

    def zero_as_null(convert: Any) -> Any:
        def read(value: Any) -> Any:
            text = value.decode("ascii") if isinstance(value, bytes | bytearray) else value
            return None if text.startswith("0000-00-00") else convert(text)
        return read

    types = (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.DATE)
    return {**conversions, **{t: zero_as_null(conversions[t]) for t in types}}


def _sqlite_read_only(url: URL) -> URL:
    """``sqlite:///path`` → ``sqlite:///file:path?mode=ro&uri=true`` (fails if the file is missing)."""
    database = url.database or ""
    if database.startswith("file:"):
        query = dict(url.query)
        query.setdefault("mode", "ro")
        query["uri"] = "true"
        return url.set(query=query)
    if not database or database == ":memory:":
        raise MappingError("BAD_URL", "SQLite数据源须指定数据库文件路径")
    return url.set(database=f"file:{Path(database).resolve()}", query={"mode": "ro", "uri": "true"})

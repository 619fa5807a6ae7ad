"""The embedded store's locking (SQLite, WAL): a read runs beside the writer and other
readers on its own snapshot; writes take the one write lock up front and follow each other."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Column, Engine, Integer, MetaData, Table, func, insert, select

from phip.store.db import make_engine

T = Table("t", MetaData(), Column("x", Integer))


def _store(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.begin() as conn:
        T.create(conn)
    return engine


def _in_thread(work) -> threading.Thread:  # noqa: ANN001
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_an_open_read_blocks_neither_the_writer_nor_another_reader(tmp_path: Path):
    engine = _store(tmp_path)
    done: list[str] = []
    with engine.connect() as reader:  # a report page halfway through its queries
        before = reader.execute(select(func.count()).select_from(T)).scalar_one()

        def write() -> None:
            with engine.begin() as conn:
                conn.execute(insert(T), [{"x": 1}])
            done.append("write")

        def read() -> None:
            with engine.connect() as conn:
                conn.execute(select(func.count()).select_from(T)).scalar_one()
            done.append("read")

        threads = [_in_thread(write), _in_thread(read)]
        for t in threads:
            t.join(5)
        assert sorted(done) == ["read", "write"]  # both within 5 s (begun IMMEDIATE, they waited for the reader)
        # the open read still sees its snapshot
        assert reader.execute(select(func.count()).select_from(T)).scalar_one() == before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(T)).scalar_one() == before + 1
    engine.dispose()


def test_writes_take_the_lock_up_front_and_follow_each_other(tmp_path: Path):
    engine = _store(tmp_path)
    order: list[str] = []
    with engine.begin() as first:  # holds the write lock from its BEGIN, before any statement
        def second() -> None:
            with engine.begin() as conn:
                order.append("second begun")
                conn.execute(insert(T), [{"x": 2}])

        thread = _in_thread(second)
        time.sleep(0.5)
        assert order == []  # waiting for the first writer
        first.execute(insert(T), [{"x": 1}])
        order.append("first done")
    thread.join(10)
    assert order == ["first done", "second begun"]
    engine.dispose()


def test_processes_upgrading_one_new_store_at_once_all_succeed(tmp_path: Path):
    """`phip serve`, `phip worker` and `phip demo` each bring the schema up at start: the
    migration is one write transaction, so the others wait and find the schema current
    (begun deferred, three of four failed with "database is locked")."""
    import subprocess
    import sys

    code = f"from phip.store.db import make_engine, upgrade; upgrade(make_engine('sqlite:///{tmp_path / 'm.db'}'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [err[-300:] for p in procs for _, err in [p.communicate(timeout=120)] if p.returncode != 0]
    assert not errors, errors


def test_the_wal_shrinks_back_after_a_long_read(tmp_path: Path, monkeypatch):
    """An open read pins its snapshot, so writes meanwhile grow the WAL past any checkpoint;
    once the read ends and the log starts over, the file is cut back to WAL_SIZE_LIMIT rather
    than kept at its high-water mark for the life of the server."""
    import os

    from sqlalchemy import LargeBinary

    from phip.store import db

    monkeypatch.setattr(db, "WAL_SIZE_LIMIT", 4 << 20)
    blobs = Table("blobs", MetaData(), Column("id", Integer, primary_key=True), Column("b", LargeBinary))
    engine = _store(tmp_path)
    with engine.begin() as conn:
        blobs.create(conn)
    wal = tmp_path / "s.db-wal"
    with engine.connect() as reader:  # an export halfway through
        reader.execute(select(func.count()).select_from(T)).scalar_one()
        for _ in range(24):
            with engine.begin() as conn:
                conn.execute(insert(blobs), [{"b": os.urandom(1 << 20)}])
        assert wal.stat().st_size > 20 << 20
    deadline = time.monotonic() + 10
    while wal.stat().st_size > 4 << 20 and time.monotonic() < deadline:
        with engine.begin() as conn:  # the writer starts the log over once it is all copied
            conn.execute(insert(T), [{"x": 1}])
        time.sleep(0.05)
    assert wal.stat().st_size <= 4 << 20
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(blobs)).scalar_one() == 24
    engine.dispose()

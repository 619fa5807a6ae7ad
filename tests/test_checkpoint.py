"""Background WAL checkpoints of the SQLite store (phip.store.checkpoint)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text

from phip.store.checkpoint import Checkpointer
from phip.store.db import make_engine


def _wait(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_commits_are_checkpointed_beside_the_writer_and_nothing_is_lost(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    for batch in range(200):  # the checkpointer copies while these commit
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": f"{batch}-{i}" * 20} for i in range(50)])
    assert _wait(lambda: engine.checkpointer.runs > 0)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT v) FROM t")).one() == (10_000, 10_000)
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    # and the database file itself holds them (what a checkpoint is for): read without the WAL
    engine.dispose()
    plain = sqlite3.connect(f"file:{tmp_path}/store.db?mode=ro", uri=True)
    assert plain.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 10_000
    plain.close()


def test_the_thread_runs_only_while_commits_come(tmp_path: Path, monkeypatch):
    from phip.store import checkpoint

    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    checkpointer = engine.checkpointer

    def running() -> bool:
        thread = checkpointer._thread
        return thread is not None and thread.is_alive() and thread.name == checkpoint.THREAD_NAME

    assert not running()  # no thread before the first commit
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    assert _wait(running) and _wait(lambda: checkpointer.runs > 0)
    engine.dispose()  # ends it
    assert _wait(lambda: not running())
    with engine.begin() as conn:  # the next commit starts it again
        conn.execute(text("INSERT INTO t DEFAULT VALUES"))
    assert _wait(running)
    monkeypatch.setattr(checkpoint, "IDLE", 0.2)
    with engine.begin() as conn:  # the thread picks up the short idle time on its next wait
        conn.execute(text("INSERT INTO t DEFAULT VALUES"))
    assert _wait(lambda: not running())  # idle: ended
    engine.dispose()


def test_a_missing_file_is_never_created(tmp_path: Path):
    missing = tmp_path / "nowhere.db"
    checkpointer = Checkpointer(missing)
    checkpointer.request()
    time.sleep(0.3)
    checkpointer.close(wait=2)
    assert not missing.exists() and checkpointer.runs == 0

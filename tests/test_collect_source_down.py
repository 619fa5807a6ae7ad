"""A source that is down or drops the connection mid-stream: retries with exponential backoff,
a clear Chinese status, no password anywhere, nothing half-written, and a later run (or the
next retry) picks up from the cursor with nothing lost."""

from __future__ import annotations

import pytest

import os
import subprocess
import sys

from sqlalchemy import create_engine, func, select, text

from phip.collect import state
from phip.synth import his_synth
from phip.collect.runner import Collector
from phip.runtime import build_pipeline
from phip.store import models as m
from tests.collect_support import SUFFIX, assert_matches_truth, demo_mapping, source_url

PASSWORD = "s3cr3t-Pw"
DOWN_URL = f"mysql+pymysql://phip_ro:{PASSWORD}@127.0.0.1:1/his"  # nothing listens on port 1


@pytest.mark.slow
def test_source_down_retries_then_fails_clearly(engine, tmp_path):
    mapping = demo_mapping(DOWN_URL, tmp_path, retries=2, backoff="3s", connect_timeout=2)
    waits: list[float] = []
    results = Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping)
    first, rest = results[0], results[1:]
    assert first.status == "failed" and first.code == "SOURCE_DOWN"
    assert "无法连接数据源his_demo" in first.error and "***" in first.error and PASSWORD not in first.error
    assert waits == [3.0, 6.0]  # two retries, exponential backoff
    assert {r.status for r in rest} == {"skipped"}  # the other data sets are not hammered
    (run,) = state.runs_of(engine, "his_demo")
    assert run.status == "failed" and run.attempts == 3 and PASSWORD not in run.error
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.Record)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(m.Batch)).scalar_one() == 0
    assert state.lease_of(engine, "his_demo") == (None, None)  # released for the next try

    # The same through the command line: exit code 2, password masked in everything printed.
    mapping = demo_mapping(DOWN_URL, tmp_path, retries=0, connect_timeout=2)
    env = {**os.environ, "PHIP_DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "HIS_DEMO_URL": DOWN_URL, "PHIP_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-m", "phip.cli", "collect", "run", str(mapping.path), "-d", "exam_report"],
                         env={**env, "COLUMNS": "300"}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert PASSWORD not in out.stdout + out.stderr and "phip_ro:***@127.0.0.1:1" in out.stdout
    status = subprocess.run([sys.executable, "-m", "phip.cli", "collect", "status"], env={**env, "COLUMNS": "300"},
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "失败" in status.stdout and PASSWORD not in status.stdout

    # The source comes back: the next run succeeds from scratch.
    url = source_url("sqlite", "back", tmp_path)
    data = his_synth.build(url, seed=4, days=1, visits=5, admissions=1)
    back = demo_mapping(url, tmp_path)
    assert {r.status for r in Collector(engine, build_pipeline(engine)).run(back)} == {"ok"}
    assert_matches_truth(engine, data)


class _KillOnce:
    """Progress hook that terminates the source's server process once, mid-stream.

    PostgreSQL: the collector reads through a named (server-side) cursor, one FETCH per batch,
    so the next FETCH after the kill fails for real — the rows are not in a client buffer.
    """

    def __init__(self, admin_url: str, job: str):
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.job = job
        self.killed = 0

    def start(self, job, total):
        pass

    def advance(self, job, rows):
        if job.key != self.job or self.killed:
            return
        with self.admin.connect() as conn:
            self.killed = len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND application_name = 'phip-collect'"), {"db": f"phip_his_drop{SUFFIX}"}).all())


def test_connection_dropped_mid_stream_is_resumed(engine, tmp_path):
    url = source_url("postgresql", "drop", tmp_path)
    data = his_synth.build(url, seed=9, days=1, visits=120, admissions=0, tables={"MZ_JZJL", "MZ_ZDXX", "MZ_FYMX"})
    mapping = demo_mapping(url, tmp_path, batch_size=25, backoff="1s")
    hook = _KillOnce(url, "fee_detail")
    waits: list[float] = []
    try:
        (result,) = Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping, ["fee_detail"], progress=hook)
    finally:
        hook.admin.dispose()
    assert hook.killed == 1, "the streaming query was not found to kill"
    assert result.status == "ok" and waits == [1.0]
    (run,) = state.runs_of(engine, "his_demo")
    assert run.attempts == 2
    assert result.accepted == len(data.truth["fee_detail"])
    assert_matches_truth(engine, data, ["fee_detail"])

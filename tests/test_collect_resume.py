"""Kill-and-resume: ``phip collect run`` is SIGKILLed mid-run, then run again; the platform ends
with exactly the records of a clean run — no gap, no duplicate, no spurious version, counters
that match the records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, func, select

from phip.synth import his_synth
from phip.collect.runner import Collector
from phip.runtime import build_pipeline
from phip.collect.tables import CollectRun
from phip.runtime import prepare
from phip.store import models as m
from phip.store.db import make_engine
from tests.collect_support import ORG_CODE, assert_matches_truth, demo_mapping, source_url

JOBS = ["outpatient_visit", "fee_detail"]  # a time cursor and an id cursor


def _hashes(engine):
    with engine.connect() as conn:
        return dict(conn.execute(select(m.Record.record_key + "/" + m.Record.dataset, m.Record.content_hash)
                                 .where(m.Record.org_code == ORG_CODE)).all())


def _rows_read(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(CollectRun.rows_read), 0))).scalar_one())


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(engine, tmp_path):
    url = source_url("mariadb", "resume", tmp_path)
    data = his_synth.build(url, seed=11, days=2, visits=350, admissions=0, tables={"MZ_JZJL", "MZ_ZDXX", "MZ_FYMX"})
    total = len(data.truth["outpatient_visit"]) + len(data.truth["fee_detail"])
    mapping = demo_mapping(url, tmp_path, batch_size=20)
    env = {**os.environ, "PHIP_DATABASE_URL": engine.url.render_as_string(hide_password=False), "HIS_DEMO_URL": url,
           "PHIP_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "phip.cli", "collect", "run", str(mapping.path)] + [a for j in JOBS for a in ("-d", j)]
    # A plain engine to watch progress: the store's SQLite engine begins with BEGIN IMMEDIATE,
    # which would queue behind the collector's writes instead of reading beside them.
    watch = create_engine(engine.url)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _rows_read(watch) < total // 4:
            assert proc.poll() is None, f"collector ended before the kill: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "collector made no progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        watch.dispose()
    assert proc.returncode == -signal.SIGKILL
    at_kill = _rows_read(engine)
    assert total // 4 <= at_kill < total, "the kill must land mid-run"

    results = Collector(engine, build_pipeline(engine)).run(mapping, JOBS)  # resume: the dead holder's lease is taken over
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    assert_matches_truth(engine, data, JOBS)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.RecordVersion)).scalar_one() == 0
        records = conn.execute(select(func.count()).select_from(m.Record)).scalar_one()
        counted = conn.execute(select(func.sum(m.EventDaily.records))).scalar_one()
        statuses = [r.status for r in conn.execute(select(CollectRun.status).order_by(CollectRun.id))]
    assert records == total and counted == total
    assert "interrupted" in statuses and statuses[-2:] == ["ok", "ok"]

    clean = prepare(make_engine(f"sqlite:///{tmp_path / 'clean.db'}"))
    try:
        Collector(clean, build_pipeline(clean)).run(mapping, JOBS)
        assert _hashes(clean) == _hashes(engine)
    finally:
        clean.dispose()

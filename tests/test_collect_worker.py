"""Scheduling: the lease keeps two workers off one source (also two real ``phip worker``
processes started together), a dead holder's lease is taken over, due/not-due and the
failure backoff; and the probe's pinyin-initial matching and mapping skeleton."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import update

from phip.collect import state
from phip.synth import his_synth
from phip.collect.probe import initials, inspect_source, propose
from phip.collect import scheduler
from phip.collect.scheduler import Worker
from phip.collect.source import open_source
from phip.collect.tables import CollectSource
from phip.runtime import build_pipeline
from phip.standard.validate import platform_now
from tests.collect_support import ORG_CODE, demo_mapping, source_url


@pytest.mark.slow
def test_lease_excludes_a_second_holder_and_survives_a_dead_one(engine):
    state.acquire_lease(engine, "his_x", ORG_CODE, "hostA:1:aa")
    with pytest.raises(state.SourceBusy):
        state.acquire_lease(engine, "his_x", ORG_CODE, "hostB:2:bb")
    with engine.begin() as conn:
        state.renew_lease(conn, "his_x", "hostA:1:aa")
        with pytest.raises(state.LeaseLost):
            state.renew_lease(conn, "his_x", "hostB:2:bb")
    state.release_lease(engine, "his_x", "hostA:1:aa")
    state.acquire_lease(engine, "his_x", ORG_CODE, "hostB:2:bb")
    # A holder on this machine whose process is gone loses the lease at once …
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = state.new_holder().rsplit(":", 2)[0]
    with engine.begin() as conn:
        conn.execute(update(CollectSource).values(lease_holder=f"{here}:{dead.stdout.strip()}:dd"))
    state.acquire_lease(engine, "his_x", ORG_CODE, "hostC:3:cc")
    # … a live holder elsewhere keeps it until it expires.
    with engine.begin() as conn:
        conn.execute(update(CollectSource).values(lease_expires_at=platform_now() - timedelta(seconds=1)))
    state.acquire_lease(engine, "his_x", ORG_CODE, "hostD:4:dd")
    assert state.lease_of(engine, "his_x")[0] == "hostD:4:dd"


def test_worker_runs_due_sources_and_backs_off_on_failure(engine, tmp_path, monkeypatch):
    url = source_url("sqlite", "sched", tmp_path)
    his_synth.build(url, seed=6, days=1, visits=4, admissions=1)
    monkeypatch.setenv("PHIP_COLLECT_DIR", str(tmp_path))
    mapping = demo_mapping(url, tmp_path)  # written into the sources directory, schedule 15m
    worker = Worker(engine, build_pipeline(engine))
    made = []
    ensure_ahead = scheduler.partitions.ensure_ahead
    monkeypatch.setattr(scheduler.partitions, "ensure_ahead", lambda *a: made.append(a) or ensure_ahead(*a))
    first = worker.run_pass()
    assert set(first.ran) == {"his_demo"} and {r.status for r in first.ran["his_demo"]} == {"ok"}
    assert worker.run_pass().not_due == ["his_demo"]
    assert len(made) == 1, "the months ahead are made sure of once a day, not every pass"
    row = state.source_state(engine, "his_demo")
    assert timedelta(minutes=14) < row.next_run_at - platform_now() <= timedelta(minutes=15) and row.failures == 0

    demo_mapping("mysql+pymysql://ro:pw@127.0.0.1:1/his", tmp_path, retries=0, connect_timeout=2)
    state.set_schedule(engine, "his_demo", next_run_at=None, failures=0, last_error=None)
    failed = worker.run_pass()
    assert failed.ran["his_demo"][0].code == "SOURCE_DOWN"
    row = state.source_state(engine, "his_demo")
    assert row.failures == 1 and "SOURCE_DOWN" in row.last_error
    assert timedelta(seconds=50) < row.next_run_at - platform_now() <= timedelta(minutes=1)
    assert mapping.name == "his_demo"


@pytest.mark.slow
def test_two_worker_processes_never_run_one_source_twice(engine, tmp_path):
    url = source_url("sqlite", "twins", tmp_path)
    his_synth.build(url, seed=8, days=1, visits=40, admissions=2)
    demo_mapping(url, tmp_path)
    env = {**os.environ, "PHIP_DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "PHIP_COLLECT_DIR": str(tmp_path), "HIS_DEMO_URL": url, "PHIP_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "phip.cli", "worker", "--once"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    runs = state.runs_of(engine, "his_demo")
    assert len(runs) == 10 and {r.status for r in runs} == {"ok"}, outputs  # one run per data set, in total
    assert len({r.holder for r in runs}) == 1


@pytest.mark.slow
def test_probe_matches_pinyin_initials_and_writes_a_skeleton(tmp_path):
    assert initials("病人姓名") == "BRXM" and initials("身份证号") == "SFZH" and initials("性别") == "XB"
    url = source_url("sqlite", "probe", tmp_path)  # SQLite keeps no column comments: names alone
    his_synth.build(url, seed=1, days=1, visits=3, admissions=1)
    mapping = demo_mapping(url, tmp_path)
    engine = open_source(mapping)
    try:
        tables = inspect_source(engine)
    finally:
        engine.dispose()
    assert {t.name: t.rows for t in tables}["MZ_JZJL"] == 3
    proposals = {p.dataset.code: p for p in propose(tables)}
    patient = proposals["patient_info"]
    assert patient.table.name == "BR_JBXX" and patient.cursor == ("XGSJ", "time")
    chosen = {m.field.name: m.column.name for m in patient.matches}
    assert chosen["name"] == "BRXM" and chosen["id_no"] == "SFZH" and chosen["sex_code"] == "XB"
    assert chosen["birth_date"] == "CSRQ"
    assert proposals["outpatient_registration"].table.name == "MZ_GHXX"

    out = tmp_path / "draft.yaml"
    env = {**os.environ, "HIS_DEMO_URL": url}
    run = subprocess.run([sys.executable, "-m", "phip.cli", "collect", "probe", str(mapping.path), "-o", str(out)],
                         env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "BR_JBXX" in run.stdout and "病人" not in run.stderr
    draft = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert draft["source"]["url"] == "${HIS_DEMO_URL}" and draft["source"]["org"] == ORG_CODE
    jobs = {d["dataset"]: d for d in draft["datasets"]}
    assert jobs["patient_info"]["from"] == "BR_JBXX" and jobs["patient_info"]["fields"]["name"] == "BRXM"

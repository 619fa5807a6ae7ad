"""The nightly quality analysis that ``phip worker`` starts (phip.quality.schedule), on SQLite
and PostgreSQL: when it is due, that it runs once a day per institution, that a dead run is
taken up again, and that it rides on the worker's pass."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from sqlalchemy import func, insert, select

from phip.collect.scheduler import Worker
from phip.quality.schedule import ScheduleError, due_institutions, quality_time, run_due
from phip.quality.tables import QualityFinding, QualityRun
from phip.standard.validate import platform_now
from tests.records_support import visits

MIDNIGHT = time(0, 0)


def uploaded(pipeline, orgs):
    org, records = visits(orgs, n=6, day=platform_now().date() - timedelta(days=1))
    records[0] = {k: v for k, v in records[0].items() if k != "id_no"}  # something for quality to find
    pipeline.ingest(org, "outpatient_visit", records)
    return org


def test_the_setting_reads_a_time_or_off():
    assert quality_time("") == time(2, 30) and quality_time("03:05") == time(3, 5) and quality_time("off") is None
    with pytest.raises(ScheduleError) as exc:
        quality_time("25:99")
    assert "PHIP_QUALITY_AT" in str(exc.value)


def test_nothing_is_due_before_the_time_and_without_uploads(pipeline, engine, orgs):
    assert due_institutions(engine, MIDNIGHT) == []  # no institution has uploaded yet
    org = uploaded(pipeline, orgs)
    today = platform_now().date()
    assert due_institutions(engine, time(3, 0), now=datetime.combine(today, time(2, 59))) == []
    assert due_institutions(engine, time(3, 0), now=datetime.combine(today, time(3, 0))) == [org]


def test_each_institution_is_analysed_once_a_day(pipeline, engine, orgs):
    org = uploaded(pipeline, orgs)
    (result,) = run_due(engine, MIDNIGHT)
    assert result.org_code == org and result.records == 6 and result.findings >= 1
    assert run_due(engine, MIDNIGHT) == []  # the second pass of the night finds it done
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(QualityRun)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(QualityFinding)).scalar_one() == result.findings
    assert run_due(engine, None) == []  # PHIP_QUALITY_AT=off


def test_a_run_whose_worker_died_is_taken_up_again(pipeline, engine, orgs):
    org = uploaded(pipeline, orgs)
    noon = datetime.combine(platform_now().date(), time(12, 0))
    row = {"org_code": org, "dataset": None, "day_from": noon.date(), "day_to": noon.date(), "records": 0, "findings": 0}
    with engine.begin() as conn:
        conn.execute(insert(QualityRun), [{**row, "id": "a" * 32, "started_at": noon - timedelta(minutes=10)}])
    assert due_institutions(engine, MIDNIGHT, now=noon) == []  # running (or about to finish) elsewhere
    with engine.begin() as conn:
        conn.execute(QualityRun.__table__.update().values(started_at=noon - timedelta(hours=2)))
    assert due_institutions(engine, MIDNIGHT, now=noon) == [org]  # two hours, unfinished: its worker is gone
    with engine.begin() as conn:
        conn.execute(QualityRun.__table__.update().values(finished_at=noon - timedelta(hours=1)))
    assert due_institutions(engine, MIDNIGHT, now=noon) == []  # finished today


def test_the_worker_pass_starts_it(pipeline, engine, orgs, tmp_path, monkeypatch):
    monkeypatch.setenv("PHIP_COLLECT_DIR", str(tmp_path))  # no collection sources: only the analysis is due
    org = uploaded(pipeline, orgs)
    assert Worker(engine, pipeline, quality_at=None).run_pass().quality == []
    report = Worker(engine, pipeline, quality_at=MIDNIGHT).run_pass()
    assert [r.org_code for r in report.quality] == [org]
    assert Worker(engine, pipeline, quality_at=MIDNIGHT).run_pass().quality == []

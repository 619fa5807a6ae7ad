"""Quality control: planted errors of every dimension are found with the right code; clean
data gives no finding; a re-run replaces instead of doubling; findings reach the feedback API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from phip.quality.rules import load_rules
from phip.quality.run import analyse
from phip.quality.tables import QualityFinding, QualityScore
from phip.reports.tables import AnalysedMark
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.synth.generator import Generator


def one_day(gen: Generator, org: tuple[str, str], now) -> dict[str, list[dict]]:  # noqa: ANN001
    """All data sets of one institution for today (small: 12 visits, 6 stays)."""
    return {ds: recs for _, ds, recs in gen.day([org], now.date(), visits=12, admissions=6, now=now)}


def ingest_all(pipeline, org_code: str, batches: dict, now) -> None:  # noqa: ANN001
    # Connected (first upload) a month ago: a visit sent five days late is late, not history.
    with pipeline.engine.begin() as conn:
        conn.execute(update(Institution).where(Institution.code == org_code, Institution.first_upload_at.is_(None))
                     .values(first_upload_at=now - timedelta(days=30)))
    for ds, recs in batches.items():
        receipt = pipeline.ingest(org_code, ds, recs, now=now)
        assert receipt.rejected == 0, (ds, receipt.rejections[:1])


def findings(engine, org_code: str) -> list:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(select(QualityFinding).where(QualityFinding.org_code == org_code)).all()


def run(engine, org_code: str, now):  # noqa: ANN001
    # as_of 10 days on: every companion (front page within 7 days …) is due
    return analyse(engine, org_code, now.date() - timedelta(days=7), now.date(), as_of=now + timedelta(days=10))


def test_clean_data_gives_no_finding(engine, pipeline, orgs):
    now = platform_now()
    org = orgs[0]
    ingest_all(pipeline, org[0], one_day(Generator(seed=11), org, now), now)
    result = run(engine, org[0], now)
    assert result.records > 100
    assert [(f.dataset, f.code, f.message) for f in findings(engine, org[0])] == []
    with engine.connect() as conn:
        scores = conn.execute(select(QualityScore.dimension, func.min(QualityScore.score)).group_by(QualityScore.dimension)).all()
        assert {d for d, _ in scores} == set(load_rules().dimensions)
        assert all(s == 100.0 for _, s in scores)
        assert conn.execute(select(AnalysedMark.org_code)).scalars().all() == [org[0]]


def test_planted_errors_of_every_dimension_are_found(engine, pipeline, orgs):
    now = platform_now()
    org = orgs[1]
    gen = Generator(seed=12)
    batches = one_day(gen, org, now)
    planted = gen.plant_quality(batches)
    ingest_all(pipeline, org[0], batches, now)  # quality errors pass validation
    rules = load_rules()
    assert {rules.codes[p.code].dimension for p in planted} == set(rules.dimensions)
    run(engine, org[0], now)
    found = findings(engine, org[0])
    got = {(f.dataset, f.record_key, f.code) for f in found}
    for p in planted:
        assert (p.dataset, p.key, p.code) in got, p
    # nothing is reported about records nobody corrupted
    assert {(f.dataset, f.record_key) for f in found} <= {(p.dataset, p.key) for p in planted}
    by_code = {f.code: f for f in found}
    assert "出生日期" in by_code["QC_EXPECTED_MISSING"].message
    assert by_code["QC_SUM_MISMATCH"].dimension == "consistency"
    with engine.connect() as conn:
        low = conn.execute(select(QualityScore.dimension).where(QualityScore.score < 100).distinct()).scalars().all()
    assert set(low) == set(rules.dimensions)


def test_rerun_replaces_findings(engine, pipeline, orgs):
    now = platform_now()
    org = orgs[2]
    gen = Generator(seed=13)
    batches = one_day(gen, org, now)
    gen.plant_quality(batches)
    ingest_all(pipeline, org[0], batches, now)
    first = run(engine, org[0], now)
    second = run(engine, org[0], now)
    assert first.findings == second.findings == len(findings(engine, org[0])) > 0
    with engine.connect() as conn:
        mark = conn.execute(select(AnalysedMark)).one()
    assert mark.runs == 2 and mark.last_run_id == second.run_id


@pytest.mark.slow
def test_killed_run_leaves_no_duplicate_and_no_gap(tmp_path):
    """SIGKILL `phip quality run` after some data sets are written; the re-run ends with exactly
    the findings and scores of an uninterrupted run."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from phip.runtime import build_pipeline
    from phip.runtime import prepare
    from phip.store.db import make_engine

    engine = prepare(make_engine(f"sqlite:///{tmp_path / 'phip.db'}"))
    now = platform_now()
    org = ("12220104412001376B", "长春中医药大学附院")
    gen = Generator(seed=14)
    pipeline = build_pipeline(engine)
    for offset in (2, 1, 0):
        batches = {ds: recs for _, ds, recs in gen.day([org], now.date() - timedelta(days=offset), visits=40, admissions=8, now=now)}
        if offset == 0:
            gen.plant_quality(batches)
        ingest_all(pipeline, org[0], batches, now)
    engine.dispose()
    env = {**os.environ, "PHIP_DATA_DIR": str(tmp_path)}
    env.pop("PHIP_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "phip.cli", "quality", "run", "--org", org[0]]

    def state() -> tuple[list, list]:
        with sqlite3.connect(tmp_path / "phip.db") as db:
            f = db.execute("SELECT dataset, record_key, code FROM quality_findings ORDER BY 1, 2, 3").fetchall()
            s = db.execute("SELECT dataset, day, dimension, checked, failed FROM quality_scores ORDER BY 1, 2, 3").fetchall()
        return f, s

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        with sqlite3.connect(tmp_path / "phip.db", timeout=30) as db:
            done = db.execute("SELECT count(DISTINCT dataset) FROM quality_scores").fetchone()[0]
        if done >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(tmp_path / "phip.db") as db:
        assert db.execute("SELECT count(*) FROM quality_runs WHERE finished_at IS NULL").fetchone()[0] == 1  # killed mid-run
        assert db.execute("SELECT count(*) FROM onboarding_analysed").fetchone()[0] == 0
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    resumed = state()
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)  # an uninterrupted run over the same data
    assert state() == resumed
    assert len(resumed[0]) == len(set(resumed[0])) > 0  # no duplicate finding
    with sqlite3.connect(tmp_path / "phip.db") as db:
        assert db.execute("SELECT count(*) FROM onboarding_analysed").fetchone()[0] == 1

"""History loaded as history (历史补采), on SQLite and PostgreSQL: the quality analysis covers the
event days that received data, however old, and judges lateness only from the institution's
connection on; a collection job's first run (and ``--backfill``) is a back-fill."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select, update

from phip.runtime import build_pipeline
from phip.synth import his_synth
from phip.collect.runner import Collector
from phip.quality.run import analyse, connection_time
from phip.quality.schedule import run_due, window
from phip.quality.tables import QualityFinding, QualityScore
from phip.quality.window import analyse_windows, covered_until, windows
from phip.standard.validate import platform_now
from phip.store import models as m
from phip.store.dayranges import merge, pack, to_ranges, unpack
from tests.collect_support import demo_mapping, source_url
from tests.records_support import visits

MIDNIGHT = time(0, 0)


def test_day_ranges():
    days = [date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 2), date(2026, 2, 1)]
    assert to_ranges(days) == [(date(2026, 1, 1), date(2026, 1, 3)), (date(2026, 2, 1), date(2026, 2, 1))]
    assert unpack(pack(days)) == to_ranges(days)
    assert pack([]) is None
    assert merge(to_ranges(days), gap_days=28) == [(date(2026, 1, 1), date(2026, 2, 1))]


def _visits(orgs, n, seed, day, tag):  # noqa: ANN001
    """Outpatient visits of ``day``, numbered apart from the other calls' (``tag``)."""
    org, records = visits(orgs, n=n, seed=seed, day=day)
    return org, [{**r, "visit_no": f"{tag}{r['visit_no']}"} for r in records]


def _late_days(engine, org):  # noqa: ANN001
    with engine.connect() as conn:
        return set(conn.execute(select(QualityFinding.day).where(
            QualityFinding.org_code == org, QualityFinding.code == "QC_LATE_UPLOAD")).scalars())


def test_backfilled_history_is_analysed_on_its_days_and_never_late(pipeline, engine, orgs):
    now = platform_now().replace(microsecond=0)
    connected = datetime.combine((now - timedelta(days=30)).date(), time(23, 59))  # after that day's visits
    history, late = (now - timedelta(days=400)).date(), (now - timedelta(days=5)).date()

    # Connected a month ago (its first upload, on time); today its history arrives, and one
    # day of visits five days late.
    org, live = _visits(orgs, 4, 31, connected.date(), "A")
    assert pipeline.ingest(org, "outpatient_visit", live, now=connected).accepted == 4
    assert connection_time(engine, org) == datetime.combine(connected.date(), time())
    _, old = _visits(orgs, 5, 32, history, "H")
    arrived = now - timedelta(hours=2)  # before the night's analysis (batches of its last hour are looked at twice)
    receipt = pipeline.ingest(org, "outpatient_visit", old, now=arrived)
    assert receipt.accepted == 5 and receipt.event_days == {history}
    _, overdue = _visits(orgs, 3, 33, late, "L")
    assert pipeline.ingest(org, "outpatient_visit", overdue, now=arrived).accepted == 3
    with engine.connect() as conn:
        stored = conn.execute(select(m.Batch.event_days).order_by(m.Batch.received_at)).scalars().all()
    assert [unpack(v) for v in stored][1] == [(history, history)]

    # The last seven days of receipt would not reach the history; the analysis windows do.
    assert history < window(now.date())[0]
    ranges = windows(engine, org, now.date())
    assert any(a <= history <= b for a, b in ranges) and any(a <= connected.date() <= b for a, b in ranges)
    # An analysis of dates chosen by hand did not look at what arrived: the windows stay.
    analyse(engine, org, late, late)
    assert windows(engine, org, now.date()) == ranges

    assert covered_until(engine, org) is None
    results = analyse_windows(engine, org, now.date(), as_of=now)  # tonight's pass (run_due: tomorrow's below)
    assert sum(r.records for r in results) == 12
    assert covered_until(engine, org) is not None
    with engine.connect() as conn:
        scored = set(conn.execute(select(QualityScore.day).where(QualityScore.org_code == org)).scalars())
    assert {history, late, connected.date()} <= scored
    assert _late_days(engine, org) == {late}  # history is not late; after the connection it is

    # The next night covers only the recent days: the history was analysed once.
    tomorrow = now + timedelta(days=1)
    again = run_due(engine, MIDNIGHT, now=tomorrow)
    assert [(r.day_from, r.day_to) for r in again] == [window(tomorrow.date())]
    assert _late_days(engine, org) == {late}


def test_connection_is_the_later_of_docking_start_and_first_upload(pipeline, engine, orgs):
    org, records = visits(orgs, n=2, seed=34, day=(platform_now() - timedelta(days=2)).date())
    assert connection_time(engine, org) is None  # nothing sent yet, no reply form
    when = platform_now() - timedelta(days=1)
    pipeline.ingest(org, "outpatient_visit", records, now=when)
    assert connection_time(engine, org) == datetime.combine(when.date(), time())
    later = platform_now().date() + timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(update(m.Institution).where(m.Institution.code == org).values(docking_start=later))
    assert connection_time(engine, org) == datetime.combine(later, time())


def test_first_run_and_backfill_flag_load_history(engine, tmp_path):
    url = source_url("sqlite", "backfill", tmp_path)
    data = his_synth.build(url, seed=5, days=3, visits=6, admissions=2)
    mapping = demo_mapping(url, tmp_path)
    jobs = ["patient_info", "outpatient_visit"]
    first = Collector(engine, build_pipeline(engine)).run(mapping, jobs)
    assert {r.mode for r in first} == {"backfill"} and all(r.status == "ok" for r in first)
    visit_days = {r.event_days.__len__() for r in first if r.job == "outpatient_visit"}
    assert visit_days == {3}  # the three days of the synthetic HIS
    second = Collector(engine, build_pipeline(engine)).run(mapping, jobs)
    assert {r.mode for r in second} == {"incremental"}
    assert all(r.rows_read < f.rows_read for r, f in zip(second, first, strict=True))
    third = Collector(engine, build_pipeline(engine)).run(mapping, jobs, backfill=True)
    assert {r.mode for r in third} == {"backfill"}
    assert [r.rows_read for r in third] == [f.rows_read for f in first]  # everything, again
    assert sum(r.accepted + r.updated for r in third) == 0  # and nothing new
    with engine.connect() as conn:
        modes = conn.execute(select(m.Base.metadata.tables["collect_runs"].c.mode)
                             .order_by(m.Base.metadata.tables["collect_runs"].c.id)).scalars().all()
    assert modes == ["backfill"] * 2 + ["incremental"] * 2 + ["backfill"] * 2
    assert len(data.truth["outpatient_visit"]) == first[1].accepted


def test_cli_backfill_says_what_history_arrived_and_analyses_it(tmp_path):
    from tests.cli_support import run

    url = source_url("sqlite", "backfill_cli", tmp_path)
    data = his_synth.build(url, seed=6, days=2, visits=4, admissions=1)
    mapping = demo_mapping(url, tmp_path)  # sets HIS_DEMO_URL, which the command inherits
    out = run(["collect", "run", str(mapping.path), "--dataset", "outpatient_visit", "--backfill", "--analyse"],
              tmp_path / "data").stdout
    assert "历史补采" in out and "历史补采的数据业务日期" in out
    visits_stored = len(data.truth["outpatient_visit"])
    assert f"{visits_stored} 条记录" in out  # the two days' visits, analysed at once

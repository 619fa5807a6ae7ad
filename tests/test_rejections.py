"""Rejections are first-class (issue 17), on real SQLite and PostgreSQL: one current rejection
per source row and content however often it is re-read (push resend, file re-import, pull
collection re-run), a changed content replaces it, a corrected record clears it, the feedback
API lists each open one once, and the daily count of new ones feeds the upload report.

Built on rejections that stay rejections under any severity policy: the natural key missing,
an unparseable event time, an object where a text is expected, another institution's code."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import column, func, select, table

from phip.api.app import create_app
from phip.ingest.files import ingest_file
from phip.orgs.keys import create_key
from phip.store import models as m
from phip.synth.generator import Generator

NOW = datetime(2026, 11, 22, 12, 0, 0)
DS = "outpatient_visit"


def visits(orgs, n=8, seed=4):
    gen = Generator(seed=seed)
    records = []
    for _, _, recs in gen.day([orgs[0]], NOW.date() - timedelta(days=1), visits=n, admissions=1, datasets=[DS], now=NOW):
        records += recs
    return orgs[0][0], records


def spoil(records, other_org):
    """Four records that cannot be stored, whatever the severity of the other checks."""
    bad = list(records)
    bad[1] = {k: v for k, v in bad[1].items() if k != "visit_no"}  # natural key missing: known by content
    bad[3] = {**bad[3], "visit_time": "昨天上午"}  # event time unreadable
    bad[5] = {**bad[5], "visit_time": {"日期": "上午"}}  # an object where a text is expected
    bad[6] = {**bad[6], "org_code": other_org}  # another institution's record
    return bad


def current(engine):
    with engine.connect() as conn:
        return {r.reject_key: r for r in conn.execute(select(m.RejectedRecord))}


def daily(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.sum(m.IngestDaily.rejected), func.sum(m.IngestDaily.rejected_new))).one()


def test_re_reading_the_same_rejected_rows_keeps_one_each(pipeline, engine, orgs):
    org, records = visits(orgs)
    bad = spoil(records, orgs[1][0])
    first = pipeline.ingest(org, DS, bad, now=NOW)
    second = pipeline.ingest(org, DS, bad, now=NOW + timedelta(hours=1))
    third = pipeline.ingest(org, DS, bad, now=NOW + timedelta(hours=2))
    # every receipt still tells the hospital about every rejection
    assert first.rejected == second.rejected == third.rejected == 4
    assert [r.index for r in third.rejections] == [1, 3, 5, 6]
    kept = current(engine)
    assert len(kept) == 4
    assert {r.times_seen for r in kept.values()} == {3}
    assert {r.first_seen for r in kept.values()} == {NOW} and {r.last_seen for r in kept.values()} == {NOW + timedelta(hours=2)}
    assert {r.batch_id for r in kept.values()} == {third.batch_id}
    assert all(r.resolved_at is None for r in kept.values())
    # the keyed ones are known by the natural key a stored record would have; the keyless one by content
    keyed = {k for k in kept if not k.startswith("#")}
    assert keyed == {bad[3]["visit_no"], bad[5]["visit_no"], bad[6]["visit_no"]}
    assert sum(k.startswith("#") for k in kept) == 1
    codes = {r.record_key: {f["code"] for f in r.findings} for r in kept.values()}
    assert "ORG_MISMATCH" in codes[bad[6]["visit_no"]]
    assert kept[bad[5]["visit_no"]].payload["visit_time"] == {"日期": "上午"}  # as sent, for correction
    assert tuple(daily(engine)) == (12, 4)  # every rejection received, four of them new


def test_changed_content_replaces_and_a_correction_clears(pipeline, engine, orgs):
    org, records = visits(orgs)
    target = {**records[2], "visit_time": "2026-13-45 08:00:00"}
    pipeline.ingest(org, DS, [target], now=NOW)
    pipeline.ingest(org, DS, [target], now=NOW + timedelta(minutes=1))
    (before,) = current(engine).values()
    assert before.times_seen == 2
    changed = {**target, "visit_time": "下午"}
    pipeline.ingest(org, DS, [changed], now=NOW + timedelta(minutes=2))
    (after,) = current(engine).values()
    assert after.id == before.id and after.content_hash != before.content_hash
    assert (after.times_seen, after.first_seen) == (1, NOW + timedelta(minutes=2))
    assert after.payload["visit_time"] == "下午"
    assert tuple(daily(engine)) == (3, 2)  # the changed content is a new rejection

    fixed = pipeline.ingest(org, DS, [records[2]], now=NOW + timedelta(minutes=3))
    assert fixed.accepted == 1
    (resolved,) = current(engine).values()
    assert resolved.resolved_at == NOW + timedelta(minutes=3) and resolved.resolved_batch == fixed.batch_id
    # the same bad content sent again after the correction opens it anew
    pipeline.ingest(org, DS, [changed], now=NOW + timedelta(minutes=4))
    (reopened,) = current(engine).values()
    assert reopened.resolved_at is None and reopened.times_seen == 1 and reopened.first_seen == NOW + timedelta(minutes=4)
    # an unchanged resend of the stored record clears it too (the last word of the hospital counts)
    again = pipeline.ingest(org, DS, [records[2]], now=NOW + timedelta(minutes=5))
    assert again.unchanged == 1
    assert next(iter(current(engine).values())).resolved_at == NOW + timedelta(minutes=5)


def test_the_last_word_of_a_batch_on_a_key_counts(pipeline, engine, orgs):
    org, records = visits(orgs, n=3)
    bad = {**records[0], "visit_time": ["昨天"]}
    receipt = pipeline.ingest(org, DS, [bad, records[0]], now=NOW)  # corrected further on in the batch
    assert (receipt.rejected, receipt.accepted) == (1, 1)
    assert current(engine) == {}
    receipt = pipeline.ingest(org, DS, [records[1], {**records[1], "visit_time": ["昨天"]}], now=NOW)  # spoilt after
    (open_,) = current(engine).values()
    assert open_.record_key == records[1]["visit_no"] and open_.resolved_at is None
    assert receipt.rejected == 1
    # two copies of one bad row in a batch are one rejection seen twice
    row = {k: v for k, v in records[2].items() if k != "visit_no"}
    pipeline.ingest(org, DS, [row, row], now=NOW)
    assert next(r for k, r in current(engine).items() if k.startswith("#")).times_seen == 2


def test_file_re_import_and_push_resend_list_each_once_in_feedback(pipeline, engine, orgs, tmp_path):
    org, records = visits(orgs)
    bad = spoil(records, orgs[1][0])
    path = tmp_path / "visits.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in bad) + b"{broken\n")
    for _ in range(2):
        receipt = ingest_file(pipeline, path, org, DS)
        assert receipt.rejected == 5  # the four, and the line that is no JSON
    assert len(current(engine)) == 5

    client = TestClient(create_app(engine))
    _, key = create_key(engine, org)
    auth = {"Authorization": f"Bearer {key}"}
    pushable = [r for r in bad if r.get("org_code") != orgs[1][0]]  # the API refuses another's code whole (403)
    for _ in range(2):
        assert client.post(f"/api/v1/datasets/{DS}/records", json=pushable, headers=auth).json()["counts"]["rejected"] == 3
    items = client.get("/api/v1/feedback", headers=auth).json()["items"]
    assert len(items) == 5 and len({(i["record_key"], i["index"], i["batch_id"]) for i in items}) == 5
    by_key = {i["record_key"]: i for i in items}
    assert by_key[bad[3]["visit_no"]]["times_seen"] == 4  # two imports, two pushes
    assert by_key[bad[6]["visit_no"]]["times_seen"] == 2  # imported only
    # corrected over the API: no longer listed
    client.post(f"/api/v1/datasets/{DS}/records", json=[records[3], records[5]], headers=auth)
    left = [i["record_key"] for i in client.get("/api/v1/feedback", headers=auth).json()["items"]]
    assert sorted(left, key=str) == sorted([None, None, bad[6]["visit_no"]], key=str)
    # the stored receipts still list each batch's rejections
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.BatchFinding)
                            .where(m.BatchFinding.rejected.is_(True))).scalar_one() == 2 * 5 + 2 * 3


def test_a_pull_collection_run_again_adds_no_rejection(engine, tmp_path):
    """The issue's case: a second run over the same source rows (22 → 44 before). Three visits
    at the source carry a visit time that is no time (an event time cannot be kept)."""
    from phip.synth import his_synth
    from phip.collect.runner import Collector
    from phip.runtime import build_pipeline
    from tests.collect_support import ORG_CODE, demo_mapping, execute, source_url

    url = source_url("sqlite", "rerun", tmp_path)
    data = his_synth.build(url, seed=7, days=1, visits=20, admissions=4)
    spoilt = sorted(data.truth["outpatient_visit"])[:3]
    for visit_no in spoilt:
        execute(url, "UPDATE MZ_JZJL SET JZSJ = '不详' WHERE JZXH = :v", v=visit_no)
    mapping = demo_mapping(url, tmp_path)
    collector = Collector(engine, build_pipeline(engine))
    runs = [collector.run(mapping, ["outpatient_visit"], full=True) for _ in range(2)]
    assert [sum(r.rejected for r in results) for results in runs] == [3, 3]
    kept = current(engine)
    assert sorted(kept) == sorted(spoilt) and {r.times_seen for r in kept.values()} == {2}
    assert {f["code"] for r in kept.values() for f in r.findings} == {"BAD_DATETIME"}
    _, key = create_key(engine, ORG_CODE)
    client = TestClient(create_app(engine))
    items = client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"}).json()["items"]
    assert sorted(i["record_key"] for i in items) == sorted(spoilt)
    # corrected at the source: the next run clears them
    for visit_no in spoilt:
        execute(url, "UPDATE MZ_JZJL SET JZSJ = '2026-11-21 09:00:00' WHERE JZXH = :v", v=visit_no)
    collector.run(mapping, ["outpatient_visit"], full=True)
    assert all(r.resolved_at is not None for r in current(engine).values())
    assert client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"}).json()["items"] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_carries_receipts_rejections_over_once(tmp_path, orgs, backend):
    """A store at 0007 whose batch_findings hold the same rejection twice and one since corrected."""
    from alembic import command

    from phip.store.db import alembic_config, upgrade, wipe
    from tests.conftest import scratch_store, seed_before_0012

    engine = scratch_store(backend, tmp_path, "carry")
    command.upgrade(alembic_config(engine), "0007_key_collation")
    seed_before_0012(engine, tmp_path)
    org = orgs[0][0]
    row = {"org_code": org, "dataset": DS, "rejected": True, "findings": [{"code": "BAD_DATETIME"}]}
    with engine.begin() as conn:
        conn.execute(m.BatchFinding.__table__.insert(), [
            {**row, "batch_id": "b1", "idx": 0, "record_key": "MZ1", "payload": {"visit_no": "MZ1"}, "created_at": NOW},
            {**row, "batch_id": "b2", "idx": 3, "record_key": "MZ1", "payload": {"visit_no": "MZ1"},
             "created_at": NOW + timedelta(days=1)},
            {**row, "batch_id": "b1", "idx": 1, "record_key": None, "payload": {"x": 1}, "created_at": NOW},
            {**row, "batch_id": "b1", "idx": 2, "record_key": "MZ2", "payload": {"visit_no": "MZ2"}, "created_at": NOW},
        ])
        conn.execute(m.Record.__table__.insert(), [{
            "org_code": org, "dataset": DS, "record_key": "MZ2", "version": 1, "content_hash": "h", "event_time": NOW,
            "received_at": NOW + timedelta(hours=1), "batch_id": "b9", "payload": {}}])
        old_daily = table("ingest_daily", *(column(c) for c in ("org_code", "dataset", "day", "received", "accepted",
                                                                   "updated", "unchanged", "rejected", "warnings")))
        conn.execute(old_daily.insert(), [
            {"org_code": org, "dataset": DS, "day": NOW.date(), "received": 3, "accepted": 0, "updated": 0,
             "unchanged": 0, "rejected": 3, "warnings": 0},
            {"org_code": org, "dataset": DS, "day": NOW.date() + timedelta(days=1), "received": 1, "accepted": 0,
             "updated": 0, "unchanged": 0, "rejected": 1, "warnings": 0}])
    upgrade(engine)
    kept = current(engine)
    assert set(kept) == {"MZ1", "MZ2", next(k for k in kept if k.startswith("#"))} and len(kept) == 3
    assert (kept["MZ1"].times_seen, kept["MZ1"].first_seen, kept["MZ1"].batch_id, kept["MZ1"].idx) == (2, NOW, "b2", 3)
    assert kept["MZ2"].resolved_at == NOW + timedelta(hours=1) and kept["MZ2"].resolved_batch == "b9"
    assert kept["MZ1"].resolved_at is None
    with engine.connect() as conn:
        assert dict(conn.execute(select(m.IngestDaily.day, m.IngestDaily.rejected_new)).all()) == {
            NOW.date(): 3, NOW.date() + timedelta(days=1): 0}
    command.downgrade(alembic_config(engine), "0007_key_collation")
    if backend != "sqlite":
        wipe(engine)
    engine.dispose()


def test_upload_report_counts_each_rejected_row_once(pipeline, engine, orgs):
    from io import BytesIO

    from openpyxl import load_workbook

    from phip.reports import export
    from phip.reports.period import parse_period
    from phip.reports.uploads import upload_report

    org, records = visits(orgs)
    bad = spoil(records, orgs[1][0])
    for hours in (0, 1, 2):  # re-read three times: 12 rejections received, 4 rows rejected
        pipeline.ingest(org, DS, bad, now=NOW + timedelta(hours=hours))
    pipeline.ingest(org, DS, [{**bad[3], "visit_time": "今天"}], now=NOW + timedelta(hours=3))  # changed: one more
    pipeline.ingest(orgs[2][0], DS, [{k: v for k, v in records[0].items() if k not in ("org_code", "org_name", "visit_no")}],
                    now=NOW)
    report = upload_report(engine, parse_period(f"{NOW:%Y-%m}"), "institution", extras=True)
    rows = {r.key: r for r in report.rows}
    assert rows[org].rejected == 5 and rows[org].volume == 4  # the four good visits
    assert rows[orgs[2][0]].rejected == 1 and report.total.rejected == 6
    regional = upload_report(engine, parse_period(f"{NOW:%Y-%m}"), "region")
    assert sum(r.rejected for r in regional.rows) == 6
    assert [label for key, label, _ in report.columns if key == "rejected"] == ["拒收"]
    ws = load_workbook(BytesIO(export.to_xlsx(report))).active
    col = 2 + [key for key, _, _ in report.columns].index("rejected")
    assert ws.cell(3, col).value == "拒收"
    first = next(i for i, r in enumerate(report.rows) if r.key == org)
    assert ws.cell(export.FIRST_DATA_ROW + first, col).value == 5
    lines = export.to_csv(report).splitlines()
    assert lines[0].split(",")[col - 1] == "附：平台统计-拒收"
    assert next(line for line in lines if line.startswith(rows[org].name)).split(",")[col - 1] == "5"
    assert not upload_report(engine, parse_period("2026-10"), "institution").total.rejected


def test_dashboard_page_lists_open_rejections_masked(pipeline, engine, orgs):
    """TestClient on both back ends (tests/test_dashboard_browser.py opens it in Chromium)."""
    from tests.web_support import PASSWORD, SCRIPT, login

    from phip.accounts import create_user

    create_user(engine, "ops", PASSWORD, display_name="值班员")
    client = TestClient(create_app(engine))
    org, records = visits(orgs, n=60)
    bad = [{**r, "visit_time": SCRIPT} for r in records[:55]]
    id_no = bad[0]["id_no"]
    for _ in range(2):
        pipeline.ingest(org, DS, bad, now=NOW)
    pipeline.ingest(org, DS, records[:3], now=NOW)  # three corrected
    page = f"/ops/institutions/{org}/rejections/{DS}"
    assert "/login" in client.get(page, follow_redirects=False).headers["location"]
    login(client)
    inst = client.get(f"/ops/institutions/{org}").text
    assert f'href="/ops/institutions/{org}/rejections/{DS}"' in inst and 'id="inst-rejections-link"' in inst
    html = client.get(page).text
    assert "未纠正 52 条" in html and "第 1 / 2 页" in html and html.count("<code>BAD_DATETIME</code>") == 50
    assert id_no not in html and f"{id_no[:6]}********{id_no[-4:]}" in html
    assert SCRIPT not in html and "&lt;script&gt;" in html
    from phip.privacy import mask_name

    assert bad[0]["name"] not in html and mask_name(bad[0]["name"]) in html  # names masked too (issue 19)
    second = client.get(page, params={"page": 2}).text
    assert second.count("<code>BAD_DATETIME</code>") == 2
    everything = client.get(page, params={"state": "all"}).text
    assert "全部 55 条" in everything, re.search(r'id="rej-total">[^<]*', everything)
    assert client.get(page, params={"state": "all", "page": 2}).text.count("已纠正 20") == 3  # 已纠正 2026-…
    index = client.get(f"/ops/institutions/{org}/rejections").text
    assert f'/ops/institutions/{org}/rejections/{DS}"' in index and 'id="rej-table"' not in index
    assert client.get(f"/ops/institutions/{org}/rejections/nope").status_code == 404
    assert client.get(f"/ops/institutions/NOPE/rejections").status_code == 404


def test_open_rejections_lower_the_quality_score(pipeline, engine, orgs):
    from phip.quality.run import analyse
    from phip.quality.service import dataset_scores

    org, records = visits(orgs, n=10)
    day = NOW.date() - timedelta(days=1)
    pipeline.ingest(org, DS, records[:8], now=NOW)
    analyse(engine, org, day, day, as_of=NOW)
    (clean,) = dataset_scores(engine, org, day, NOW.date())
    assert clean["rejected"] == 0 and clean["acceptance"] == 100.0
    bad = [{**r, "visit_time": "不详"} for r in records[8:]]
    for _ in range(3):  # re-sent: still two rejected rows
        pipeline.ingest(org, DS, bad, now=NOW)
    (scored,) = dataset_scores(engine, org, day, NOW.date())
    assert scored["rejected"] == 2 and scored["acceptance"] == 80.0
    assert scored["overall"] == round(clean["overall"] * 8 / 10, 2) < clean["overall"]
    assert scored["scores"] == clean["scores"]  # the dimensions judge the stored records
    pipeline.ingest(org, DS, records[8:], now=NOW)  # corrected
    (fixed,) = dataset_scores(engine, org, day, NOW.date())
    assert fixed["rejected"] == 0
    # a data set with nothing stored and rejections open scores 0
    pipeline.ingest(org, "outpatient_registration", [{"registration_no": "G1"}], now=NOW)
    by_ds = {e["dataset"]: e for e in dataset_scores(engine, org, day, NOW.date())}
    assert by_ds["outpatient_registration"]["overall"] == 0.0 and by_ds["outpatient_registration"]["checked"] == 0
    # outside the window the rejection does not count
    assert all(e["dataset"] != "outpatient_registration"
               for e in dataset_scores(engine, org, day - timedelta(days=30), day - timedelta(days=20)))


def test_a_failure_after_the_rejections_are_written_leaves_none(pipeline, engine, orgs):
    """The database dies after the current rejections are written (at the counters): neither
    the new rejections nor a resolution nor a times-seen survive; the replay counts them once."""
    from sqlalchemy import event, text

    org, records = visits(orgs)
    bad = spoil(records, orgs[1][0])
    pipeline.ingest(org, DS, bad, now=NOW)
    before = {k: (r.times_seen, r.resolved_at) for k, r in current(engine).items()}

    def die(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "ingest_daily" in statement and statement.lstrip().upper().startswith("INSERT"):
            if conn.dialect.name == "postgresql":
                pid = conn.connection.dbapi_connection.info.backend_pid
                with engine.connect() as killer:
                    killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            else:
                raise OSError("disk I/O error (simulated power loss)")

    again = [*bad, {**records[3]}, {**records[0], "visit_time": "不详"}]  # one re-read, one correction, one new
    event.listen(engine, "before_cursor_execute", die)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
            pipeline.ingest(org, DS, again, now=NOW + timedelta(hours=1))
    finally:
        event.remove(engine, "before_cursor_execute", die)
    engine.dispose()
    assert {k: (r.times_seen, r.resolved_at) for k, r in current(engine).items()} == before
    pipeline.ingest(org, DS, again, now=NOW + timedelta(hours=1))
    kept = current(engine)
    assert len(kept) == 5 and kept[bad[3]["visit_no"]].resolved_at == NOW + timedelta(hours=1)
    assert kept[bad[5]["visit_no"]].times_seen == 2


def test_a_record_that_is_a_bare_number_is_listed_not_a_500(pipeline, engine, orgs):
    """A record sent as ``7`` or ``1.5`` is rejected NOT_AN_OBJECT and kept as sent. SQLite
    gives a JSON column numeric affinity, so the kept payload came back as a number the JSON
    decoder refused: the institution's rejections page, the CLI and the API answered 500
    while the row stayed open."""
    from phip.accounts import create_user
    from phip.quality.rejections import find
    from tests.web_support import PASSWORD, login

    org = orgs[0][0]
    receipt = pipeline.ingest(org, DS, [7, 1.5, 12345678901234567, -0.25, True, "文本"], now=NOW)
    assert receipt.rejected == 6 and {f.code for r in receipt.rejections for f in r.findings} == {"NOT_AN_OBJECT"}
    views, total = find(engine, org, DS)
    assert total == 6
    assert sorted(v.example["原文"] for v in views) == sorted(["7", "1.5", "12345678901234567", "-0.25", "true", "文本"])
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    client = TestClient(create_app(engine))
    login(client)
    page = client.get(f"/ops/institutions/{org}/rejections/{DS}")
    assert page.status_code == 200 and "12345678901234567" in page.text
    _, key = create_key(engine, org)
    feedback = client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"})
    assert feedback.status_code == 200 and len(feedback.json()["items"]) == 6, feedback.text

"""The worked example pulled from a synthetic HIS on MariaDB, PostgreSQL and SQLite into the
platform on SQLite and PostgreSQL: counts and values row for row, the planted bad rows kept as
findings the hospital can fetch, incremental reruns, corrections and a full re-pull."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from phip.api.app import create_app
from phip.synth import his_synth
from phip.collect.runner import Collector
from phip.runtime import build_pipeline
from phip.orgs.keys import create_key
from phip.standard.validate import platform_now
from phip.store import models as m
from tests.collect_support import ORG_CODE, assert_matches_truth, demo_mapping, execute, source_url, stored


@pytest.fixture(scope="module", params=["mariadb", "postgresql", "sqlite"])
def his(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("his")
    url = source_url(request.param, "test", tmp)
    data = his_synth.build(url, seed=7, days=1, visits=20, admissions=4)
    return url, data, tmp


def _by_job(results):
    return {r.job: r for r in results}


def test_worked_example_row_for_row(his, engine):
    url, data, tmp = his
    mapping = demo_mapping(url, tmp)
    first = _by_job(Collector(engine, build_pipeline(engine)).run(mapping))
    assert {r.status for r in first.values()} == {"ok"}, [r.error for r in first.values()]
    assert len(first) == 10
    for job in mapping.datasets:
        r = first[job.key]
        assert r.accepted == len(data.truth.get(job.dataset, {})), job.key
        assert r.rejected == 0, job.key
        assert r.rows_read == r.accepted
    assert_matches_truth(engine, data)

    # The planted rows are stored without their bad value, with the precise finding.
    with engine.connect() as conn:
        flagged = conn.execute(select(m.BatchFinding.dataset, m.BatchFinding.record_key, m.BatchFinding.findings)
                               .where(m.BatchFinding.rejected.is_(False))).all()
        sources = set(conn.execute(select(m.Batch.source).distinct()).scalars())
    assert sources == {"collect"}
    found = {(r.dataset, r.record_key): {f["code"] for f in r.findings} for r in flagged}
    planted = {(ds, key): code for ds, bad in data.bad.items() for key, code in bad.items()}
    assert planted and all(code in found[where] for where, code in planted.items())
    bad_patient = next(r for r in flagged if r.dataset == "patient_info" and (r.dataset, r.record_key) in planted)
    birth = next(f for f in bad_patient.findings if f["code"] == "BAD_DATE")
    assert birth["field"] == "birth_date" and "19850230" in birth["message"] and birth["severity"] == "warning"

    # An incremental rerun only re-reads the overlap window and changes nothing.
    second = _by_job(Collector(engine, build_pipeline(engine)).run(mapping))
    assert sum(r.rows_read for r in second.values()) < sum(r.rows_read for r in first.values())
    assert sum(r.accepted + r.updated for r in second.values()) == 0
    assert_matches_truth(engine, data)


def test_corrections_new_rows_and_full_repull(engine, tmp_path):
    url = source_url("sqlite", "changes", tmp_path)
    data = his_synth.build(url, seed=3, days=1, visits=10, admissions=2)
    mapping = demo_mapping(url, tmp_path)
    collector = Collector(engine, build_pipeline(engine))
    collector.run(mapping, ["patient_info", "fee_detail"])
    patient = next(iter(data.truth["patient_info"]))
    now = platform_now().replace(microsecond=0)
    execute(url, "UPDATE BR_JBXX SET BRXM = :n, XGSJ = :t WHERE BRID = :b", n="王更正", t=now, b=patient)
    top = max(r["MXID"] for r in data.rows["MZ_FYMX"])
    row = {**data.rows["MZ_FYMX"][-1], "MXID": top + 1, "SFSJ": now - timedelta(minutes=5)}
    execute(url, "INSERT INTO MZ_FYMX (MXID, JZXH, BRID, BRXM, FYLB, SFXMDM, SFXMMC, DJ, SL, JE, KSDM, KSMC, SFSJ) "
                 "VALUES (:MXID, :JZXH, :BRID, :BRXM, :FYLB, :SFXMDM, :SFXMMC, :DJ, :SL, :JE, :KSDM, :KSMC, :SFSJ)", **row)
    again = _by_job(collector.run(mapping, ["patient_info", "fee_detail"]))
    assert again["patient_info"].updated == 1 and again["patient_info"].accepted == 0
    assert again["fee_detail"].accepted == 1 and again["fee_detail"].rows_read <= 101 + 1  # id overlap: 100
    assert stored(engine, "patient_info")[patient]["name"] == "王更正"
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.RecordVersion)).scalar_one() == 1

    full = _by_job(collector.run(mapping, ["fee_detail"], full=True))["fee_detail"]
    assert full.rows_read == len(data.rows["MZ_FYMX"]) + 1
    assert full.accepted == 0 and full.unchanged == full.rows_read


def test_hospital_fetches_collect_findings(engine, tmp_path):
    url = source_url("sqlite", "feedback", tmp_path)
    his_synth.build(url, seed=5, days=1, visits=8, admissions=1)
    Collector(engine, build_pipeline(engine)).run(demo_mapping(url, tmp_path), ["patient_info", "outpatient_registration"])
    _, key = create_key(engine, ORG_CODE)
    client = TestClient(create_app(engine))
    body = client.get("/api/v1/feedback", params={"warnings": "true"}, headers={"Authorization": f"Bearer {key}"}).json()
    codes = {(item["dataset"], f["code"], f["field"]) for item in body["items"] for f in item["findings"]}
    assert all(item["rejected"] is False for item in body["items"])  # both rows were stored
    rejected_only = client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"}).json()
    assert rejected_only["items"] == []
    assert ("patient_info", "BAD_DATE", "birth_date") in codes
    assert ("outpatient_registration", "NOT_IN_DOMAIN", "registration_type_code") in codes


def _findings(engine):
    with engine.connect() as conn:
        return sorted(
            (r.dataset, r.idx, r.record_key, r.rejected, repr(r.findings), repr(r.payload))
            for r in conn.execute(select(m.BatchFinding.dataset, m.BatchFinding.idx, m.BatchFinding.record_key,
                                         m.BatchFinding.rejected, m.BatchFinding.findings, m.BatchFinding.payload))
        )


def test_reader_process_and_in_process_reading_store_the_same(engine, tmp_path, monkeypatch):
    """Reading the source in the validation process (phip.collect.reader) is an optimisation
    only: the same counts, records and findings (rejected rows as sent, row numbers) as the
    collector reading in its own process."""
    from phip.ingest import workers
    from tests.conftest import empty_store

    url = source_url("sqlite", "reader", tmp_path)
    data = his_synth.build(url, seed=11, days=1, visits=30, admissions=3)
    mapping = demo_mapping(url, tmp_path, batch_size=7)  # several batches, some with planted bad rows
    remote = Collector(engine, build_pipeline(engine)).run(mapping)
    assert workers.pool() is not None, "this test needs the reader process"
    remote_records, remote_findings = stored_all(engine), _findings(engine)
    assert sum(r.warnings for r in remote) >= sum(len(b) for b in data.bad.values()) > 0
    empty_store(engine)
    monkeypatch.setenv("PHIP_VALIDATION_PROCESS", "0")
    local = Collector(engine, build_pipeline(engine)).run(mapping)
    counts = lambda results: [(r.job, r.rows_read, r.accepted, r.rejected, r.warnings, r.status) for r in results]  # noqa: E731
    assert counts(remote) == counts(local)
    assert remote_records == stored_all(engine)
    assert remote_findings == _findings(engine)


def stored_all(engine):
    with engine.connect() as conn:
        return sorted(conn.execute(select(m.Record.dataset, m.Record.record_key, m.Record.content_hash)).all())


def test_mysql_zero_dates_are_read_as_empty(engine, tmp_path):
    """Old HIS schemas on MySQL/MariaDB write 0000-00-00 for "not yet". Read as NULL (JDBC's
    convertToNull): an optional time is simply absent, a required one is reported missing
    (REQUIRED, not a bad date), and a zero cursor value no longer fails the run."""
    from sqlalchemy import create_engine, text

    url = source_url("mariadb", "zerodates", tmp_path)
    data = his_synth.build(url, seed=11, days=1, visits=6, admissions=1)
    visit = sorted(data.truth["outpatient_visit"])[0]
    patient = sorted(set(data.truth["patient_info"]) - set(data.bad["patient_info"]))[0]  # not the planted row
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(text("UPDATE MZ_JZJL SET JSSJ = '0000-00-00 00:00:00' WHERE JZXH = :v"), {"v": visit})
        conn.execute(text("UPDATE BR_JBXX SET XGSJ = '0000-00-00 00:00:00' WHERE BRID = :p"), {"p": patient})
    admin.dispose()
    results = _by_job(Collector(engine, build_pipeline(engine)).run(demo_mapping(url, tmp_path), ["patient_info", "outpatient_visit"]))
    assert {r.status for r in results.values()} == {"ok"}, [r.error for r in results.values()]
    visits = stored(engine, "outpatient_visit")
    assert set(visits) == set(data.truth["outpatient_visit"])
    assert "visit_end_time" not in visits[visit] and "visit_end_time" in visits[sorted(visits)[1]]
    patients = stored(engine, "patient_info")
    assert patient not in patients and len(patients) == len(data.truth["patient_info"]) - 1
    with engine.connect() as conn:
        found = conn.execute(select(m.BatchFinding.findings).where(
            m.BatchFinding.dataset == "patient_info", m.BatchFinding.record_key == patient)).scalar_one()
    assert [(f["code"], f["field"]) for f in found] == [("REQUIRED", "update_time")]
    assert results["patient_info"].cursor is not None


def test_a_cursor_value_that_is_no_time_costs_its_row_only(engine, tmp_path, monkeypatch):
    """A text cursor column holding something that is no time: that row is still read and
    reported by validation, the watermark moves by the others, the run is ok. A defect in one
    job's processing is reported as such (COLLECT_ERROR), not as a database that is down, and
    the source's other jobs still run."""
    from phip.collect import runner

    url = source_url("sqlite", "badcursor", tmp_path)
    data = his_synth.build(url, seed=11, days=1, visits=6, admissions=1)
    patient = sorted(set(data.truth["patient_info"]) - set(data.bad["patient_info"]))[0]  # not the planted row
    execute(url, "UPDATE BR_JBXX SET XGSJ = 'not a time' WHERE BRID = :p", p=patient)
    mapping = demo_mapping(url, tmp_path)
    first = _by_job(Collector(engine, build_pipeline(engine)).run(mapping, ["patient_info"]))["patient_info"]
    assert first.status == "ok" and first.cursor is not None, first.error
    assert first.rejected == 1  # the update time is the event time: without it, no record
    assert first.accepted == len(data.truth["patient_info"]) - 1
    with engine.connect() as conn:
        found = conn.execute(select(m.BatchFinding.findings).where(m.BatchFinding.record_key == patient)).scalar_one()
    assert [(f["code"], f["field"]) for f in found] == [("BAD_DATETIME", "update_time")]

    real = runner.map_batches

    def broken(job, batches, number=0):  # noqa: ANN001, ANN202 - a defect planted in one job
        if job.dataset == "outpatient_registration":
            raise RuntimeError("planted defect")
        return real(job, batches, number)

    monkeypatch.setattr(runner, "map_batches", broken)
    monkeypatch.setenv("PHIP_VALIDATION_PROCESS", "0")  # read in this process, where the defect is planted
    results = _by_job(Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_registration", "outpatient_visit"]))
    assert results["outpatient_registration"].status == "failed"
    failed = results["outpatient_registration"]
    assert failed.code == "COLLECT_ERROR" and "RuntimeError" in failed.error
    assert "planted defect" not in failed.error  # an exception's text may quote a row's value: not shown
    assert results["outpatient_visit"].status == "ok"


def test_legacy_latin1_tables_holding_gbk_are_read_as_gbk(engine, tmp_path):
    """Old MySQL HIS: text columns declared latin1, filled with GBK bytes by GBK clients.
    Read through a utf8mb4 session they are mojibake (张三 → ÕÅÈý); with
    ``legacy_encoding: gbk`` the patients come out as the truth has them."""
    from sqlalchemy import create_engine, text

    url = source_url("mariadb", "legacy", tmp_path)
    data = his_synth.build(url, seed=5, days=1, visits=4, admissions=1)
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text("ALTER TABLE BR_JBXX CONVERT TO CHARACTER SET gbk"))  # the bytes are now GBK
        columns = conn.execute(text(
            "SELECT COLUMN_NAME, CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = 'BR_JBXX' AND DATA_TYPE IN ('varchar', 'char')")).all()
        for name, length in columns:  # relabel them latin1 without converting: what the old HIS has
            conn.execute(text(f"ALTER TABLE BR_JBXX MODIFY `{name}` VARBINARY({length * 2})"))
            conn.execute(text(f"ALTER TABLE BR_JBXX MODIFY `{name}` VARCHAR({length * 2}) CHARACTER SET latin1"))
    admin.dispose()
    garbled = _by_job(Collector(engine, build_pipeline(engine)).run(demo_mapping(url, tmp_path), ["patient_info"]))["patient_info"]
    # 男 read as ÄÐ matches no local code: stored without a sex, names garbled, every row flagged
    assert garbled.status == "ok" and garbled.warnings == garbled.accepted == len(data.truth["patient_info"])
    with engine.connect() as conn:
        codes = {f["code"] for fs in conn.execute(select(m.BatchFinding.findings)).scalars() for f in fs}
    assert "NOT_IN_DOMAIN" in codes
    mapping = demo_mapping(url, tmp_path, legacy_encoding="gbk")
    result = _by_job(Collector(engine, build_pipeline(engine)).run(mapping, ["patient_info"], full=True))["patient_info"]
    assert result.status == "ok" and result.updated == len(data.truth["patient_info"]), result
    assert_matches_truth(engine, data, ["patient_info"])  # every value as the hospital meant it


def test_legacy_encoding_is_refused_for_other_databases(engine, tmp_path):
    from phip.collect.mapping import MappingError

    url = source_url("sqlite", "notmysql", tmp_path)
    his_synth.build(url, seed=5, days=1, visits=2, admissions=1)
    with pytest.raises(MappingError) as exc:
        Collector(engine, build_pipeline(engine)).run(demo_mapping(url, tmp_path, legacy_encoding="gbk"), ["patient_info"])
    assert exc.value.code == "BAD_LEGACY_ENCODING"


def test_a_query_ending_in_a_line_comment_runs(engine, tmp_path):
    """The collector wraps a mapping's query (SELECT * FROM (<query>) src …): a query whose last
    line is a -- comment swallowed the closing parenthesis and failed at run time."""
    import yaml

    from tests.collect_support import EXAMPLE

    url = source_url("sqlite", "linecomment", tmp_path)
    data = his_synth.build(url, seed=2, days=1, visits=3, admissions=1)
    spec = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    job = next(d for d in spec["datasets"] if d["dataset"] == "outpatient_visit")
    job["query"] = job["query"].rstrip() + "  -- 门诊就诊，按修改时间增量"
    path = tmp_path / "commented.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    import os

    os.environ["HIS_DEMO_URL"] = url
    from phip.collect.mapping import load_mapping

    result = _by_job(Collector(engine, build_pipeline(engine)).run(load_mapping(path), ["outpatient_visit"]))["outpatient_visit"]
    assert result.status == "ok" and result.accepted == len(data.truth["outpatient_visit"]), result


def test_a_sqlite_source_row_that_is_no_utf8_is_read_not_a_dead_source(engine, tmp_path):
    """One name stored as bytes that are no UTF-8 made the sqlite3 module raise while the
    rows were fetched: the whole job failed as SOURCE_DOWN after three retries, 0 rows read.
    The row is read now, the bad bytes as U+FFFD, every other row as it was."""
    import sqlite3

    url = source_url("sqlite", "badutf8", tmp_path)
    data = his_synth.build(url, seed=3, days=1, visits=6, admissions=1)
    path = url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        victim = conn.execute("SELECT BRID FROM BR_JBXX ORDER BY BRID LIMIT 1").fetchone()[0]
        conn.execute("UPDATE BR_JBXX SET BRXM = CAST(X'C0FFEE' AS TEXT) WHERE BRID = ?", (victim,))
    result = Collector(engine, build_pipeline(engine)).run(demo_mapping(url, tmp_path), ["patient_info"])[0]
    assert result.status == "ok", result.error
    assert result.rows_read == len(data.truth["patient_info"])
    names = {key: payload.get("name") for key, payload in stored(engine, "patient_info").items()}
    assert "\ufffd" in "".join(n or "" for n in names.values())

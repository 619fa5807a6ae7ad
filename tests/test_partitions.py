"""Migration 0016: a store at the previous layout (records, versions, counters, findings) gets
the key directory and, on PostgreSQL, monthly partitions; nothing is lost, the reports are
the same, the pipeline still versions and inserts; the worker creates months ahead, and a
month created late takes its rows out of the default partition."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, func, select, text

from phip.quality.run import analyse
from phip.reports.period import parse_period
from phip.reports.uploads import upload_report
from phip.runtime import build_pipeline
from phip.store import models as m
from phip.store import partitions
from phip.store.db import alembic_config, upgrade
from phip.synth.generator import Generator

from .conftest import scratch_store, seed_before_0012

NOW = datetime(2026, 11, 22, 12, 0, 0)
OLD = datetime(2024, 3, 5, 9, 0, 0)  # a month the migration creates because the data hold it
LATE = datetime(2023, 1, 9, 9, 0, 0)  # a month no one created: waits in the default partition


def _visits(orgs, n: int, seed: int, day: date) -> list[dict]:
    return next(recs for _, _, recs in Generator(seed=seed).day(orgs[:1], day, visits=n, admissions=1, now=NOW,
                                                               datasets=["outpatient_visit"]))


def _state(engine: Engine) -> dict[str, list]:
    """Every row the migration must keep, in a comparable order."""
    with engine.connect() as conn:
        return {
            "records": conn.execute(select(m.Record.id, m.Record.record_key, m.Record.version, m.Record.content_hash,
                                           m.Record.event_time, m.Record.payload).order_by(m.Record.id)).all(),
            "versions": conn.execute(select(m.RecordVersion.record_id, m.RecordVersion.version,
                                            m.RecordVersion.content_hash).order_by(m.RecordVersion.record_id)).all(),
            "event_daily": conn.execute(select(m.EventDaily.__table__).order_by(*m.EventDaily.__table__.primary_key)).all(),
            "ingest_daily": conn.execute(select(m.IngestDaily.__table__).order_by(*m.IngestDaily.__table__.primary_key)).all(),
            "findings": conn.execute(text("SELECT id, code, day FROM quality_findings ORDER BY id")).all(),
            "batch_findings": conn.execute(text("SELECT id, record_key FROM batch_findings ORDER BY id")).all(),
        }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_partition_migration_keeps_a_store_and_its_reports(tmp_path, orgs, backend):
    engine = scratch_store(backend, tmp_path, "partitions")
    command.upgrade(alembic_config(engine), "0015_regional_accounts")
    seed_before_0012(engine, tmp_path)
    org = orgs[0][0]
    with engine.begin() as conn:  # today's pipeline writes the directory: lend it for the old store's writes
        m.RecordKey.__table__.create(conn)
    pipeline = build_pipeline(engine)
    visits = _visits(orgs, 30, 5, NOW.date() - timedelta(days=3))
    old = [{**v, "visit_no": v["visit_no"] + "-OLD", "visit_time": OLD.strftime("%Y-%m-%d %H:%M:%S")} for v in visits[:4]]
    assert pipeline.ingest(org, "outpatient_visit", visits + old, now=NOW).accepted == 34
    corrected = [{**visits[0], "dept_name": "更正后的科室"}]
    assert pipeline.ingest(org, "outpatient_visit", corrected, now=NOW + timedelta(hours=1)).updated == 1
    bad = [{**visits[1], "visit_no": visits[1]["visit_no"] + "X", "visit_time": "not a time"}]
    assert pipeline.ingest(org, "outpatient_visit", bad, now=NOW).rejected == 1
    analyse(engine, org, NOW.date() - timedelta(days=10), NOW.date(), as_of=NOW + timedelta(hours=2))
    with engine.begin() as conn:
        m.RecordKey.__table__.drop(conn)
    period = parse_period("2026-11")
    before, report = _state(engine), upload_report(engine, period).rows
    assert before["versions"] and before["batch_findings"] and before["event_daily"]

    upgrade(engine)

    assert _state(engine) == before
    assert upload_report(engine, period).rows == report
    with engine.connect() as conn:
        directory = conn.execute(select(m.RecordKey.record_key, m.RecordKey.record_id, m.RecordKey.version)
                                 .order_by(m.RecordKey.record_id)).all()
        assert directory == [(r.record_key, r.id, r.version) for r in before["records"]]
        if backend == "postgresql":
            for table in partitions.PARTITIONED:
                assert partitions.is_partitioned(conn, table), table
            assert date(2026, 11, 1) in partitions.months_of(conn, "records")
            assert conn.execute(text("SELECT count(*) FROM records_p202403")).scalar() == 4  # months the data held
            nov = partitions.partition_name("records", date(2026, 11, 1))
            assert conn.execute(text(f"SELECT count(*) FROM {nov}")).scalar() == 30

    # the pipeline after the migration: the same batch changes nothing, a correction versions
    # the head found through the directory, a new record is inserted once
    again = build_pipeline(engine).ingest(org, "outpatient_visit", visits + old, now=NOW + timedelta(days=1))
    assert (again.accepted, again.updated) == (0, 1)  # visits[0] goes back to its first content
    fresh = [{**v, "visit_no": v["visit_no"] + "-NEW"} for v in _visits(orgs, 3, 77, NOW.date())]
    twice = build_pipeline(engine).ingest(org, "outpatient_visit", fresh + [{**fresh[0], "dept_name": "再更正"}],
                                          now=NOW + timedelta(days=1))
    assert (twice.accepted, twice.updated) == (3, 1)
    late = [{**visits[2], "visit_no": visits[2]["visit_no"] + "-LATE", "visit_time": LATE.strftime("%Y-%m-%d %H:%M:%S")}]
    assert build_pipeline(engine).ingest(org, "outpatient_visit", late, now=NOW).accepted == 1
    with engine.connect() as conn:
        n_records = conn.execute(select(func.count()).select_from(m.Record)).scalar()
        n_keys = conn.execute(select(func.count()).select_from(m.RecordKey)).scalar()
        assert n_records == n_keys == 38
        assert conn.execute(select(m.Record.version).where(m.Record.record_key == visits[0]["visit_no"])).scalar() == 3

    if backend == "postgresql":  # a month created late takes its rows out of the default partition
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM records_default")).scalar() == 1
            assert partitions.ensure_months(conn, [date(2023, 1, 1)]) == [
                partitions.partition_name(t, date(2023, 1, 1)) for t in partitions.PARTITIONED]
            assert conn.execute(text("SELECT count(*) FROM records_default")).scalar() == 0
            assert conn.execute(text("SELECT record_key FROM records_p202301")).scalars().all() == [late[0]["visit_no"]]
        assert partitions.ensure_ahead(engine, date(2027, 6, 15)) == [
            partitions.partition_name(t, date(2027, month, 1)) for t in partitions.PARTITIONED for month in (6, 7, 8, 9)]
        assert partitions.ensure_ahead(engine, date(2027, 6, 15)) == []

    after = _state(engine)
    command.downgrade(alembic_config(engine), "0015_regional_accounts")
    assert _state(engine) == after
    with engine.connect() as conn:
        if backend == "postgresql":
            assert not partitions.is_partitioned(conn, "records")
            kinds = dict(conn.execute(text("SELECT conname, contype FROM pg_constraint "
                                           "WHERE conrelid = 'records'::regclass")).all())
            assert kinds == {"pk_records": "p", "uq_records_natural_key": "u"}


def test_partitions_command_creates_months_and_refuses_bad_ones(tmp_path):
    """``phip db partitions`` on PostgreSQL: --from/--to create the months (listed after), a bad
    month or range is refused with its code and creates nothing; on SQLite it says why not."""
    from .conftest import PG_URL
    from tests.cli_support import run

    engine = scratch_store("postgresql", tmp_path, "partitions_cli")
    upgrade(engine)
    url = PG_URL + "_partitions_cli"
    made = run(["db", "partitions", "--from", "2021-11", "--to", "2022-01"], tmp_path, database_url=url)
    assert "新建分区 21 个" in made.stdout and "records_p202112" in made.stdout
    with engine.connect() as conn:
        assert {date(2021, 11, 1), date(2021, 12, 1), date(2022, 1, 1)} <= set(partitions.months_of(conn, "records"))
    for args, code in ((["--from", "2021-13"], "BAD_MONTH"), (["--from", "2022-02", "--to", "2021-01"], "BAD_MONTH_RANGE"),
                       (["--from", "9999-11", "--to", "9999-12"], "BAD_MONTH"), (["--from", "0001-01"], "BAD_MONTH")):  # a traceback, a year-1 partition
        refused = run(["db", "partitions", *args], tmp_path, database_url=url, check=False)
        assert refused.returncode != 0 and code in refused.stderr + refused.stdout
    with engine.connect() as conn:
        assert date(2021, 1, 1) not in partitions.months_of(conn, "records")
    engine.dispose()
    lite = run(["db", "partitions"], tmp_path, database_url=f"sqlite:///{tmp_path / 'lite.db'}")
    assert "不分区" in lite.stdout


def test_archive_a_month_to_parquet_and_restore_it(tmp_path, orgs):
    """An old month leaves the store for Parquet files (checked, then detached in one
    transaction): the reports read the same, the files read back with DuckDB, an equal resend
    is unchanged and a changed one refused; a tampered file is not restored, the real one
    brings every row back and corrections are taken again."""
    import duckdb

    from phip.store.archive import ArchiveError, archive_month, restore_month

    engine = scratch_store("postgresql", tmp_path, "archive")
    upgrade(engine)
    seed_before_0012(engine, tmp_path)
    org = orgs[0][0]
    august = datetime(2025, 8, 12, 9, 0, 0)
    with engine.begin() as conn:
        partitions.ensure_months(conn, [date(2025, 8, 1), date(2025, 9, 1)])
    pipeline = build_pipeline(engine)
    visits = [{**v, "visit_time": (august + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")}
              for i, v in enumerate(_visits(orgs, 20, 9, august.date()))]
    assert pipeline.ingest(org, "outpatient_visit", visits, now=NOW).accepted == 20
    assert pipeline.ingest(org, "outpatient_visit", [{**visits[0], "dept_name": "更正"}], now=NOW).updated == 1
    september = [{**v, "visit_no": v["visit_no"] + "-9", "visit_time": "2025-09-03 10:00:00"} for v in visits[:5]]
    assert pipeline.ingest(org, "outpatient_visit", september, now=NOW).accepted == 5
    period = parse_period("2025-08")
    report, before = upload_report(engine, period).rows, _state(engine)

    with pytest.raises(ArchiveError) as open_month:
        archive_month(engine, date(2026, 11, 1), tmp_path / "arch", today=date(2026, 12, 6))
    assert open_month.value.code == "ARCHIVE_OPEN_MONTH"
    parts = archive_month(engine, date(2025, 8, 1), tmp_path / "arch", today=date(2026, 12, 6))
    assert {p.table: p.rows for p in parts} == {"records": 20, "record_versions": 1, "quality_findings": 0,
                                                 "batch_findings": 0}  # the findings' months are their own
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.Record)).scalar() == 5  # September's stay
        assert date(2025, 8, 1) not in partitions.months_of(conn, "records")
        assert conn.execute(select(func.count()).where(m.RecordKey.archived)).scalar() == 20
    assert upload_report(engine, period).rows == report  # the counters stay
    records_file = next(p.path for p in parts if p.table == "records")
    keys = {r[0] for r in duckdb.sql(f"SELECT record_key FROM read_parquet('{records_file}')").fetchall()}
    assert keys == {v["visit_no"] for v in visits}

    same = pipeline.ingest(org, "outpatient_visit", visits[1:3], now=NOW)
    assert (same.unchanged, same.rejected) == (2, 0)
    changed = pipeline.ingest(org, "outpatient_visit", [{**visits[2], "dept_name": "再改"}], now=NOW)
    assert (changed.updated, changed.rejected) == (0, 1)
    assert changed.rejections[0].findings[0].code == "RECORD_ARCHIVED" and "2025-08" in changed.rejections[0].findings[0].message

    good = records_file.read_bytes()
    records_file.write_bytes(good[:-100] + b"x" * 100)
    with pytest.raises(ArchiveError) as tampered:
        restore_month(engine, date(2025, 8, 1))
    assert tampered.value.code == "ARCHIVE_FILE_CHANGED"
    records_file.write_bytes(good)
    assert {p.table: p.rows for p in restore_month(engine, date(2025, 8, 1))}["record_versions"] == 1
    restored = _state(engine)
    assert restored["records"] == before["records"] and restored["versions"] == before["versions"]
    again = pipeline.ingest(org, "outpatient_visit", [{**visits[2], "dept_name": "再改"}], now=NOW)
    assert (again.updated, again.rejected) == (1, 0)
    with pytest.raises(ArchiveError) as nothing:
        restore_month(engine, date(2025, 8, 1))
    assert nothing.value.code == "NOT_ARCHIVED"
    engine.dispose()


def _killed_while_blocked(args: list[str], url: str, data_dir, lock: str, engine: Engine) -> None:
    """Run ``phip <args>`` while another session holds ``lock``; SIGKILL it once its
    transaction waits on that lock (its files written, its changes made but not committed),
    then release the lock and wait until its server session has rolled back and gone."""
    from tests.cli_support import PHIP

    env = {**os.environ, "PHIP_DATA_DIR": str(data_dir), "PHIP_DATABASE_URL": url}
    with engine.connect() as holder:
        holder.execute(text(lock))
        proc = subprocess.Popen([*PHIP, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        blocked_pid = None
        deadline = time.monotonic() + 120
        while blocked_pid is None and time.monotonic() < deadline and proc.poll() is None:
            with engine.connect() as probe:
                blocked_pid = probe.execute(text("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                                 "AND datname = current_database()")).scalar()
            time.sleep(0.05)
        assert blocked_pid is not None, f"the command never waited on the lock: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        holder.rollback()
    for _ in range(600):
        with engine.connect() as probe:  # a transaction each: pg_stat_activity is read once per transaction
            if probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": blocked_pid}).scalar() == 0:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("the killed command's session did not end")


def test_archive_and_restore_refusals_and_a_kill_in_their_transaction(tmp_path, orgs):
    """Every refusal of archive and restore leaves the store as it was, with its code; a
    ``phip db archive`` or ``restore`` killed inside its one transaction (files written, rows
    moved, not committed) changes nothing, and run again it completes with every row."""
    from phip.store.archive import ArchiveError, archive_month, restore_month

    from .conftest import PG_URL

    with pytest.raises(ArchiveError) as lite:
        archive_month(scratch_store("sqlite", tmp_path, "lite"), date(2025, 8, 1), tmp_path / "a", today=date(2026, 12, 6))
    assert lite.value.code == "NOT_PARTITIONED"
    engine, _ = _august_store(tmp_path, orgs, "archive_kill")
    before = _state(engine)
    with pytest.raises(ArchiveError) as absent:
        archive_month(engine, date(2025, 3, 1), tmp_path / "a", today=date(2026, 12, 6))
    assert absent.value.code == "NO_SUCH_PARTITION"

    def archived() -> tuple:
        with engine.connect() as conn:
            return (date(2025, 8, 1) in partitions.months_of(conn, "records"),
                    conn.execute(select(func.count()).where(m.RecordKey.archived)).scalar(),
                    conn.execute(text("SELECT count(*) FROM archived_months")).scalar())

    url, to = PG_URL + "_archive_kill", tmp_path / "arch"
    _killed_while_blocked(["db", "archive", "--month", "2025-08", "--to", str(to)], url, tmp_path,
                          "LOCK TABLE archived_months IN ACCESS EXCLUSIVE MODE", engine)
    assert archived() == (True, 0, 0) and _state(engine) == before
    assert (to / "records_p202508.parquet").is_file()  # written before the transaction; written again below
    assert {p.table: p.rows for p in archive_month(engine, date(2025, 8, 1), to, today=NOW.date(), now=NOW)}["records"] == 12
    assert archived() == (False, 12, 4)
    with engine.connect() as conn:  # stamped by the platform's clock, not the machine's
        assert set(conn.execute(text("SELECT archived_at FROM archived_months")).scalars()) == {NOW}

    records_file = to / "records_p202508.parquet"
    records_file.rename(tmp_path / "moved.parquet")
    with pytest.raises(ArchiveError) as missing:
        restore_month(engine, date(2025, 8, 1))
    assert missing.value.code == "ARCHIVE_FILE_MISSING" and archived() == (False, 12, 4)
    (tmp_path / "moved.parquet").rename(records_file)
    with engine.begin() as conn:  # a register that no longer agrees with its file
        conn.execute(text("UPDATE archived_months SET rows = rows + 1 WHERE table_name = 'records'"))
    with pytest.raises(ArchiveError) as differ:
        restore_month(engine, date(2025, 8, 1))
    assert differ.value.code == "ARCHIVE_ROWS_DIFFER" and archived() == (False, 12, 4)
    with engine.begin() as conn:
        conn.execute(text("UPDATE archived_months SET rows = rows - 1 WHERE table_name = 'records'"))

    _killed_while_blocked(["db", "restore", "--month", "2025-08"], url, tmp_path,
                          "LOCK TABLE record_keys IN EXCLUSIVE MODE", engine)
    assert archived() == (False, 12, 4)
    restore_month(engine, date(2025, 8, 1))
    assert archived() == (True, 0, 0) and _state(engine) == before
    engine.dispose()


def _august_store(tmp_path, orgs, name: str) -> tuple[Engine, list[dict]]:
    """A partitioned store holding 12 visits of August 2025 (closed by NOW)."""
    engine = scratch_store("postgresql", tmp_path, name)
    upgrade(engine)
    seed_before_0012(engine, tmp_path)
    with engine.begin() as conn:
        partitions.ensure_months(conn, [date(2025, 8, 1)])
    august = datetime(2025, 8, 12, 9, 0, 0)
    visits = [{**v, "visit_time": (august + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")}
              for i, v in enumerate(_visits(orgs, 12, 11, august.date()))]
    assert build_pipeline(engine).ingest(orgs[0][0], "outpatient_visit", visits, now=NOW).accepted == 12
    return engine, visits


def test_a_write_after_the_export_refuses_the_month_and_a_rerun_keeps_it(tmp_path, orgs):
    """A hospital's correction of an August visit lands between the export and the detach: the
    month is refused (its files removed, nothing detached or marked) instead of dropping the
    correction with the partition; the rerun archives it with the correction in the file."""
    import pyarrow.parquet as pq

    from phip.store.archive import ArchiveError, archive_month, detach_month, export_month

    engine, visits = _august_store(tmp_path, orgs, "archive_late")
    to = tmp_path / "arch"
    parts = export_month(engine, date(2025, 8, 1), to, today=NOW.date())
    assert {p.table: p.rows for p in parts}["records"] == 12
    corrected = {**visits[3], "diagnosis_name": "更正后的诊断"}
    assert build_pipeline(engine).ingest(orgs[0][0], "outpatient_visit", [corrected], now=NOW).updated == 1
    before = _state(engine)
    with pytest.raises(ArchiveError) as late:
        detach_month(engine, date(2025, 8, 1), parts, now=NOW)
    assert late.value.code == "ARCHIVE_ROWS_DIFFER" and "record_versions_p202508" in late.value.message
    assert _state(engine) == before and not any(p.path.exists() for p in parts)
    with engine.connect() as conn:
        assert date(2025, 8, 1) in partitions.months_of(conn, "records")
        assert conn.execute(text("SELECT count(*) FROM archived_months")).scalar() == 0
        assert conn.execute(select(func.count()).where(m.RecordKey.archived)).scalar() == 0

    done = {p.table: p for p in archive_month(engine, date(2025, 8, 1), to, today=NOW.date(), now=NOW)}
    assert done["records"].rows == 12 and done["record_versions"].rows == 1
    payloads = pq.read_table(done["records"].path, columns=["payload"]).column("payload").to_pylist()
    assert sum("更正后的诊断" in p for p in payloads) == 1
    engine.dispose()


def test_a_correction_read_before_its_month_was_archived_is_refused_not_lost(tmp_path, orgs):
    """A batch that read a head before the archive committed finds the row gone when it comes to
    update it: that record is refused RECORD_ARCHIVED (as if read after), nothing is counted
    or versioned, and the rest of the batch is stored."""
    from phip.store.archive import archive_month

    engine, visits = _august_store(tmp_path, orgs, "archive_stale")
    archive_month(engine, date(2025, 8, 1), tmp_path / "arch", today=NOW.date(), now=NOW)
    stale = visits[5]
    with engine.begin() as conn:  # the directory as that batch read it, before the archive's commit
        conn.execute(text("UPDATE record_keys SET archived = false WHERE record_key LIKE :k"),
                     {"k": f"%{stale['visit_no']}%"})
        keys = conn.execute(text("SELECT record_key, version, content_hash FROM record_keys ORDER BY record_key")).all()
        counts = conn.execute(select(m.EventDaily.__table__).order_by(*m.EventDaily.__table__.primary_key)).all()
    new = {**visits[0], "visit_no": "LATE-0001", "visit_time": "2026-11-21 10:00:00"}
    receipt = build_pipeline(engine).ingest(orgs[0][0], "outpatient_visit",
                                            [{**stale, "diagnosis_name": "归档后的更正"}, new], now=NOW)
    assert (receipt.accepted, receipt.updated, receipt.rejected) == (1, 0, 1)
    assert receipt.rejections[0].index == 0
    assert [f.code for f in receipt.rejections[0].findings] == ["RECORD_ARCHIVED"]
    with engine.connect() as conn:
        after = conn.execute(text("SELECT record_key, version, content_hash FROM record_keys ORDER BY record_key")).all()
        assert [k for k in after if "LATE-0001" not in k[0]] == keys  # the stale head not bumped
        assert conn.execute(select(func.count()).select_from(m.RecordVersion)).scalar() == 0
        moved = conn.execute(select(m.EventDaily.__table__).order_by(*m.EventDaily.__table__.primary_key)).all()
    assert [r for r in moved if r.day != date(2026, 11, 21)] == [r for r in counts if r.day != date(2026, 11, 21)]
    engine.dispose()

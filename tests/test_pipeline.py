"""The ingest pipeline on real SQLite and PostgreSQL: versioning, idempotent replay,
per-record rejection, counters, and a database failure in the middle of a batch."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event, func, select, text

from phip.ingest.errors import UnknownDataset, UnknownInstitution
from phip.store import models as m
from phip.synth.generator import Generator
from tests.conftest import empty_store
from tests.records_support import DAY, NOW, visits


def count(engine, table, *where):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_new_then_replay_is_unchanged(pipeline, engine, orgs):
    org, records = visits(orgs)
    first = pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    assert (first.accepted, first.updated, first.unchanged, first.rejected) == (len(records), 0, 0, 0)
    again = pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    assert (again.accepted, again.updated, again.unchanged) == (0, 0, len(records))
    assert count(engine, m.Record) == len(records)
    with engine.connect() as conn:
        day_rows = conn.execute(select(m.EventDaily.day, m.EventDaily.records)).all()
        ingest = conn.execute(select(m.IngestDaily.received, m.IngestDaily.accepted, m.IngestDaily.unchanged)).one()
    assert sum(n for _, n in day_rows) == len(records) and {d for d, _ in day_rows} == {DAY}
    assert tuple(ingest) == (2 * len(records), len(records), len(records))


def test_correction_adds_a_version_and_keeps_the_old(pipeline, engine, orgs):
    org, records = visits(orgs, n=3)
    pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    corrected = {**records[0], "diagnosis_code": "J18.900", "diagnosis_name": "肺炎"}
    receipt = pipeline.ingest(org, "outpatient_visit", [corrected], now=NOW + timedelta(hours=1))
    assert (receipt.accepted, receipt.updated, receipt.unchanged) == (0, 1, 0)
    with engine.connect() as conn:
        head = conn.execute(select(m.Record).where(m.Record.record_key == records[0]["visit_no"])).one()
        old = conn.execute(select(m.RecordVersion).where(m.RecordVersion.record_id == head.id)).one()
    assert head.version == 2 and head.payload["diagnosis_code"] == "J18.900"
    assert old.version == 1 and old.payload["diagnosis_code"] == records[0]["diagnosis_code"]
    # a correction that moves the visit to another day moves it in the counters too
    moved = {**corrected, "visit_time": "2026-11-20 10:00:00", "registration_time": "2026-11-20 09:00:00",
             "visit_end_time": "2026-11-20 10:30:00"}
    pipeline.ingest(org, "outpatient_visit", [moved], now=NOW + timedelta(hours=2))
    with engine.connect() as conn:
        per_day = dict(conn.execute(select(m.EventDaily.day, m.EventDaily.records)).all())
    assert per_day[date(2026, 11, 20)] == 1 and per_day[DAY] == 2
    assert count(engine, m.RecordVersion) == 2


def test_same_key_twice_in_one_batch_becomes_two_versions(pipeline, engine, orgs):
    org, records = visits(orgs, n=1)
    second = {**records[0], "dept_name": "呼吸内科"}
    receipt = pipeline.ingest(org, "outpatient_visit", [records[0], second], now=NOW)
    assert (receipt.accepted, receipt.updated) == (1, 1)
    assert count(engine, m.Record) == 1 and count(engine, m.RecordVersion) == 1


def test_bad_records_are_rejected_alone(pipeline, engine, orgs):
    org, records = visits(orgs, n=10)
    records[3] = {**records[3], "visit_time": "2026-02-30 25:00:00"}
    records[6] = {k: v for k, v in records[6].items() if k != "visit_time"}
    records[8] = "not an object"
    wrong = records[9]["id_no"][:-1] + next(c for c in "0123456789" if c != records[9]["id_no"][-1])
    records[9] = {**records[9], "sex_code": "7", "id_no": wrong}  # stored, flagged
    receipt = pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    assert receipt.accepted == 7 and receipt.rejected == 3 and receipt.warnings >= 1
    assert [r.index for r in receipt.rejections] == [3, 6, 8]
    assert receipt.rejections[0].findings[0].code == "BAD_DATETIME"
    assert receipt.rejections[0].record_key == records[3]["visit_no"]
    with engine.connect() as conn:
        kept = conn.execute(select(m.BatchFinding).where(m.BatchFinding.rejected.is_(True)).order_by(m.BatchFinding.idx)).all()
        current = conn.execute(select(m.RejectedRecord).order_by(m.RejectedRecord.idx)).all()
        flagged = conn.execute(select(m.BatchFinding).where(m.BatchFinding.idx == 9)).one()
        stored = conn.execute(select(m.Record.payload).where(m.Record.record_key == records[9]["visit_no"])).scalar_one()
    assert [k.idx for k in kept] == [3, 6, 8]
    assert [c.idx for c in current] == [3, 6, 8]
    assert current[0].payload["visit_time"] == "2026-02-30 25:00:00"  # the raw record is kept for the hospital to correct
    assert not flagged.rejected and {"NOT_IN_DOMAIN", "ID_NO_CHECKSUM"} <= {f["code"] for f in flagged.findings}
    assert "sex_code" not in stored and stored["id_no"] == wrong


def test_institution_writes_only_its_own_records(pipeline, engine, orgs):
    org, records = visits(orgs, n=2)
    other = orgs[1][0]
    receipt = pipeline.ingest(other, "outpatient_visit", records, now=NOW)
    assert receipt.rejected == 2 and receipt.rejections[0].findings[0].code == "ORG_MISMATCH"
    missing_org = [{k: v for k, v in r.items() if k not in ("org_code", "org_name")} for r in records]
    receipt = pipeline.ingest(other, "outpatient_visit", missing_org, now=NOW)
    assert receipt.accepted == 2  # the sender's own code is filled in
    with pytest.raises(UnknownInstitution):
        pipeline.ingest("91220000000000000X", "outpatient_visit", records, now=NOW)
    with pytest.raises(UnknownDataset):
        pipeline.ingest(org, "no_such_dataset", records, now=NOW)


def test_a_sender_without_a_uscc_is_not_warned_on_each_record(pipeline, engine, orgs):
    """A business system's code (BS0002) is vetted by the register; its records carry no
    USCC warning for it, and a record naming it sent by someone else is still refused."""
    _, records = visits(orgs, n=3)
    own = [{**r, "org_code": "BS0002", "org_name": "出生医学证明管理系统"} for r in records]
    receipt = pipeline.ingest("BS0002", "outpatient_visit", own, now=NOW)
    assert (receipt.accepted, receipt.warnings) == (3, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(m.BatchFinding)
                            .where(m.BatchFinding.org_code == "BS0002")).scalar() == 0
    mismatch = pipeline.ingest(orgs[0][0], "outpatient_visit", own[:1], now=NOW)
    assert mismatch.rejections[0].findings[0].code == "ORG_MISMATCH"  # someone else's code: refused, not excused


def test_person_resolution_links_by_id_number_across_institutions(pipeline, engine, orgs):
    org, records = visits(orgs, n=3)
    pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    other = orgs[1]
    moved = [{**r, "org_code": other[0], "org_name": other[1], "visit_no": "X" + r["visit_no"], "patient_id": "Q" + r["patient_id"]}
             for r in records]
    pipeline.ingest(other[0], "outpatient_visit", moved, now=NOW)
    with engine.connect() as conn:
        persons = conn.execute(select(m.Record.record_key, m.Record.person_id)).all()
    by_key = dict(persons)
    for r in records:
        assert by_key[r["visit_no"]] == by_key["X" + r["visit_no"]] is not None
    assert count(engine, m.Person) == len({r["id_no"] for r in records})


def test_database_failure_mid_batch_writes_nothing_and_replay_is_clean(pipeline, engine, orgs):
    """The connection dies after the records are inserted but before the counters: the whole
    batch must vanish (no half-written record), and replaying it must store it exactly once."""
    org, records = visits(orgs, n=30)
    pipeline.ingest(org, "outpatient_visit", records[:10], now=NOW)

    def die(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "ingest_daily" in statement and statement.lstrip().upper().startswith("INSERT"):
            if conn.dialect.name == "postgresql":
                pid = conn.connection.dbapi_connection.info.backend_pid
                with engine.connect() as killer:
                    killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            else:
                raise OSError("disk I/O error (simulated power loss)")

    event.listen(engine, "before_cursor_execute", die)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the driver's own error type
            pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", die)
    engine.dispose()  # drop the dead connection
    assert count(engine, m.Record) == 10
    assert count(engine, m.Batch) == 1
    replay = pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    assert (replay.accepted, replay.unchanged) == (20, 10)
    assert count(engine, m.Record) == 30
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(m.EventDaily.records))).scalar_one() == 30


def test_every_dataset_flows_through(pipeline, engine, orgs):
    gen = Generator(seed=11)
    totals = {}
    for org_code, code, recs in gen.day(orgs[:1], DAY, visits=15, admissions=3, now=NOW):
        r = pipeline.ingest(org_code, code, recs, now=NOW)
        assert r.rejected == 0, (code, r.rejections[:1] and r.rejections[0].as_dict())
        totals[code] = r.accepted
    assert len(totals) >= 65
    assert count(engine, m.Record) == sum(totals.values())
    with engine.connect() as conn:
        first_upload = conn.execute(select(m.Institution.first_upload_at).where(m.Institution.code == orgs[0][0])).scalar_one()
    assert first_upload == NOW


def test_awkward_text_round_trips_exactly(pipeline, engine, orgs):
    """Tabs, newlines, backslashes, quotes and NUL-free control characters survive the bulk path."""
    org, records = visits(orgs, n=2)
    awkward = "第一行\n第二行\t制表符 \\反斜杠\\N \"引号\" 'single' \r回车"
    records[0] = {**records[0], "present_illness": awkward, "chief_complaint": "\\N"}
    pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    with engine.connect() as conn:
        payload = conn.execute(select(m.Record.payload).where(m.Record.record_key == records[0]["visit_no"])).scalar_one()
    assert payload["present_illness"] == awkward and payload["chief_complaint"] == "\\N"
    assert pipeline.ingest(org, "outpatient_visit", records, now=NOW).unchanged == 2


def test_nul_characters_are_rejected_by_field_and_what_is_kept_of_them_stores(pipeline, engine, orgs):
    """U+0000 cannot be stored in PostgreSQL text or jsonb: a value carrying one is rejected
    with its field (on every back end alike), the batch's other records land, and the
    rejected input kept for the hospital (payload, key, echoed names) shows it as U+FFFD."""
    org, records = visits(orgs, n=5)
    records[0] = {**records[0], "chief_complaint": "胸闷\x00气短"}
    records[1] = {**records[1], "name": "张\x00三"}
    records[2] = {**records[2], "sex_code": "1\x00"}
    records[3] = {**records[3], "visit_no": "MZ\x00BAD", "remark\x00": "x"}
    receipt = pipeline.ingest(org, "outpatient_visit", records, now=NOW)
    assert (receipt.accepted, receipt.rejected) == (1, 4)
    by_index = {r.index: r for r in receipt.rejections}
    assert [(f.code, f.field) for f in by_index[0].findings] == [("NUL_CHARACTER", "chief_complaint")]
    assert [(f.code, f.field) for f in by_index[1].findings] == [("NUL_CHARACTER", "name")]
    assert [(f.code, f.field) for f in by_index[2].findings] == [("NUL_CHARACTER", "sex_code")]
    assert by_index[0].findings[0].message == "【主诉】含有空字符（U+0000），无法保存，请删除后重传"
    unknown = next(f for f in by_index[3].findings if f.code == "UNKNOWN_FIELD")
    assert unknown.field == "remark\ufffd" and "\x00" not in unknown.message
    assert by_index[3].record_key == "MZ\ufffdBAD"
    with engine.connect() as conn:
        kept = {k.idx: k for k in conn.execute(select(m.RejectedRecord))}
        stored = conn.execute(select(m.Record.record_key)).scalars().all()
    assert stored == [records[4]["visit_no"]]
    assert kept[1].payload["name"] == "张\ufffd三" and kept[3].record_key == "MZ\ufffdBAD"
    assert kept[3].payload["remark\ufffd"] == "x"
    # the same input without the NUL goes through: nothing else was wrong with it
    fixed = [{k.replace("\x00", ""): v.replace("\x00", "") if isinstance(v, str) else v for k, v in r.items()
              if k != "remark\x00"} for r in records[:3]]
    assert pipeline.ingest(org, "outpatient_visit", fixed, now=NOW).accepted == 3


def test_an_unreadable_line_with_a_nul_is_kept_for_feedback(pipeline, engine, orgs):
    from phip.ingest.readers import Unreadable

    org, records = visits(orgs, n=1)
    receipt = pipeline.ingest(org, "outpatient_visit", [Unreadable("第2行不是有效的JSON", '{"a":"\x00'), records[0]], now=NOW)
    assert (receipt.accepted, receipt.rejected) == (1, 1)
    with engine.connect() as conn:
        payload = conn.execute(select(m.RejectedRecord.payload)).scalar_one()
    assert payload == {"_unreadable": '{"a":"\ufffd'}


def test_stream_commits_batches_in_order_with_stream_indices(pipeline, engine, orgs):
    """ingest_stream overlaps validation with writing but keeps ingest's contract: one
    receipt per batch, in order, rejection indices counted from the stream's start."""
    org, records = visits(orgs, n=30)
    records[14] = {**records[14], "visit_time": "明天"}
    batches = [records[0:10], records[10:20], records[20:30]]
    receipts = list(pipeline.ingest_stream(org, "outpatient_visit", iter(batches), source="file", now=NOW))
    assert [r.accepted for r in receipts] == [10, 9, 10]
    assert [r.index for r in receipts[1].rejections] == [14]
    assert len({r.batch_id for r in receipts}) == 3
    assert count(engine, m.Record) == 29 and count(engine, m.Batch) == 3


def test_stream_failure_keeps_committed_batches_and_resume_fills_the_gap(pipeline, engine, orgs):
    """The database dies while the second batch is written: the first stays, the second is
    absent, and streaming everything again stores each record exactly once."""
    org, records = visits(orgs, n=30)
    batches = [records[0:10], records[10:20], records[20:30]]
    written = []

    def die(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if "ingest_daily" in statement and statement.lstrip().upper().startswith("INSERT"):
            written.append(1)
            if len(written) == 2:
                raise OSError("connection lost (simulated)")

    event.listen(engine, "before_cursor_execute", die)
    try:
        with pytest.raises(OSError):
            for _ in pipeline.ingest_stream(org, "outpatient_visit", iter(batches), source="file", now=NOW):
                pass
    finally:
        event.remove(engine, "before_cursor_execute", die)
    assert count(engine, m.Record) == 10
    receipts = list(pipeline.ingest_stream(org, "outpatient_visit", iter(batches), source="file", now=NOW))
    assert [(r.accepted, r.unchanged) for r in receipts] == [(0, 10), (10, 0), (10, 0)]
    assert count(engine, m.Record) == 30


def test_stream_hands_back_the_written_batch_before_a_source_error(pipeline, engine, orgs):
    """The batch source fails while batch 1 is being written: batch 1 still commits and its
    receipt comes out before the error, so a cursor kept per receipt covers it."""
    org, records = visits(orgs, n=20)

    def source():
        yield records[:10]
        raise ConnectionError("source went away")

    seen = []
    with pytest.raises(ConnectionError):
        for receipt in pipeline.ingest_stream(org, "outpatient_visit", source(), source="collect", now=NOW):
            seen.append(receipt.accepted)
    assert seen == [10] and count(engine, m.Record) == 10


def _stored(engine):
    with engine.connect() as conn:
        return sorted(conn.execute(select(m.Record.record_key, m.Record.content_hash, m.Record.person_id.is_(None))).all())


def _content(engine):
    """Payloads and versions of the stored records, and the day counters they moved."""
    from phip.reports.tables import MeasureDaily

    r, v = m.Record.__table__, m.RecordVersion.__table__
    with engine.connect() as conn:
        payloads = [("record", key, version, repr(sorted(payload.items())))
                    for key, version, payload in conn.execute(select(r.c.record_key, r.c.version, r.c.payload))]
        history = [("version", key, version, repr(sorted(payload.items()))) for key, version, payload in conn.execute(
            select(r.c.record_key, v.c.version, v.c.payload).join(v, v.c.record_id == r.c.id))]
        events = [("event", str(day), dataset, n) for day, dataset, n in conn.execute(
            select(m.EventDaily.day, m.EventDaily.dataset, m.EventDaily.records)) if n]
        measures = [("measure", str(day), measure, n) for day, measure, n in conn.execute(
            select(MeasureDaily.day, MeasureDaily.measure, MeasureDaily.records)) if n]
    return sorted(payloads + history + events + measures)


def _persons(engine):
    """The persons as a comparable value (ids are random): each person's golden columns,
    blocking keys and identifiers, with the record keys linked to it."""
    from phip.empi.tables import EmpiBlock

    p, b, i, r = m.Person.__table__, EmpiBlock.__table__, m.PersonIdentifier.__table__, m.Record.__table__
    with engine.connect() as conn:
        people = {row.id: row for row in conn.execute(select(p))}
        blocks, idents, linked = {}, {}, {}
        for key, pid in conn.execute(select(b.c.key, b.c.person_id)):
            blocks.setdefault(pid, []).append(key)
        for kind, scope, value, pid in conn.execute(select(i.c.kind, i.c.scope, i.c.value, i.c.person_id)):
            idents.setdefault(pid, []).append((kind, scope, value))
        for key, pid in conn.execute(select(r.c.record_key, r.c.person_id)):
            linked.setdefault(pid, []).append(key)
    return sorted(
        (row.name, row.sex, str(row.birth_date), row.id_no, row.phone, row.address, repr(sorted(row.match.items())),
         repr(sorted((k, sorted(v.items())) for k, v in row.sources.items())), sorted(blocks.get(pid, [])),
         sorted(idents.get(pid, [])), sorted(linked.get(pid, [])))
        for pid, row in people.items()
    )


def test_stream_validated_in_another_process_stores_what_in_process_validation_stores(pipeline, engine, orgs, monkeypatch):
    """The validation process (phip.ingest.workers) is an optimisation only: the same
    receipts, findings, stored rows and persons as validating in the writer's process."""
    from phip.ingest import workers

    org, records = visits(orgs, n=40)
    records[3] = {**records[3], "visit_time": "明天"}  # rejected
    records[7] = {**records[7], "sex_code": "男", "payment_method_code": "ZZ"}  # the name reads as the code; ZZ left out
    records[11] = {**records[11], "id_no": records[11]["id_no"][:17] + "0"}  # kept as sent, flagged
    # the EMPI's other roads: no ID number (probabilistic), a repeat visit with a new phone
    # (survivorship), a known ID number under another name (guard: a new person, a review)
    records[15] = {**records[15], "id_no": None, "id_type_code": None, "health_card_no": None}
    records[25] = {**records[5], "visit_no": "MZ-REPEAT", "phone": "13900001111"}
    records[35] = {**records[9], "visit_no": "MZ-CONFLICT", "name": "欧阳completely", "patient_id": "P-OTHER"}
    batches = [records[i : i + 10] for i in range(0, 40, 10)]
    # corrections in a later batch: versions, measure counters moved (hypertension I10), event day moved
    batches.append([{**records[1], "diagnosis_code": "I10.x00", "diagnosis_name": "高血压"},
                    {**records[2], "registration_time": "2026-11-20 08:00:00", "visit_time": "2026-11-20 09:00:00",
                     "visit_end_time": None, "update_time": "2026-11-20 09:00:00"}])

    remote = [r.as_dict() for r in pipeline.ingest_stream(org, "outpatient_visit", iter(batches), source="file", now=NOW)]
    assert workers._pool is not None, "the stream must have used the validation process"
    stored_remote, persons_remote, content_remote = _stored(engine), _persons(engine), _content(engine)
    empty_store(engine)
    monkeypatch.setenv("PHIP_VALIDATION_PROCESS", "0")
    local = [r.as_dict() for r in pipeline.ingest_stream(org, "outpatient_visit", iter(batches), source="file", now=NOW)]
    strip = lambda receipts: [{k: v for k, v in r.items() if k not in ("batch_id", "received_at")} for r in receipts]  # noqa: E731
    assert strip(remote) == strip(local)
    assert stored_remote == _stored(engine)
    assert persons_remote == _persons(engine)
    assert content_remote == _content(engine)
    assert remote[-1]["counts"]["updated"] == 2
    assert any(row[0] == "measure" and row[2] == "hypertension" for row in content_remote)
    assert len(stored_remote) == sum(r["counts"]["accepted"] for r in remote) == 39  # only the unreadable time rejected
    from phip.empi.tables import EmpiReview

    assert count(engine, EmpiReview, EmpiReview.kind == "id_conflict") == 1  # the guard's road was taken


def test_validation_keeps_the_canonical_text_only_for_the_writer(orgs):
    """In the writer's process a validated record carries the canonical JSON it is stored as;
    a validation process keeps none (it hands back records only): same keys and hashes."""
    import orjson

    from phip.ingest.keys import content_hash
    from phip.ingest.validation import validate_batch
    from phip.standard.catalog import load_standard

    std = load_standard()
    org, records = visits(orgs, n=10)
    kept, _ = validate_batch(std, std.dataset("outpatient_visit"), org, orgs[0][1], records, NOW)
    left, _ = validate_batch(std, std.dataset("outpatient_visit"), org, orgs[0][1], records, NOW, documents=False)
    assert [(g.key, g.hash) for g in kept] == [(g.key, g.hash) for g in left] and len(kept) == 10
    assert all(g.document is None for g in left)
    for g in kept:
        assert orjson.loads(g.document) == orjson.loads(orjson.dumps(g.record)) and content_hash(g.record) == g.hash


def test_stream_record_that_cannot_cross_processes_is_validated_in_process(pipeline, engine, orgs):
    """A record the validation process cannot receive (not picklable) costs only that batch's
    overlap: it is validated here and reported with its reason like any other bad value."""
    org, records = visits(orgs, n=20)
    records[4] = {**records[4], "name": lambda: "x"}
    receipts = list(pipeline.ingest_stream(org, "outpatient_visit", iter([records[:10], records[10:]]), source="file", now=NOW))
    assert [r.accepted for r in receipts] == [10, 10] and [r.warnings for r in receipts][0] >= 1
    with engine.connect() as conn:
        found = conn.execute(select(m.BatchFinding.findings).where(m.BatchFinding.idx == 4)).scalar_one()
        stored = conn.execute(select(m.Record.payload).where(m.Record.record_key == records[4]["visit_no"])).scalar_one()
    assert ("BAD_VALUE_TYPE", "name") in {(f["code"], f["field"]) for f in found} and "name" not in stored
    assert count(engine, m.Record) == 20


@pytest.mark.slow
def test_validation_process_exits_when_its_writer_is_killed(tmp_path):
    """A SIGKILLed collector must not leave its validation process behind (it holds both ends
    of its queue's pipe, so only watching the parent ends it)."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal\n"
        "from phip.ingest import workers\n"
        "if __name__ == '__main__':\n"
        "    workers.warm()\n"
        "    print(*workers.pool()._processes, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PHIP_VALIDATION_PROCESS": "1"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and "Z" not in _state(child):
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{child}") or "Z" in _state(child), "validation process outlived its writer"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_statements_per_batch_do_not_grow_with_its_size(pipeline, engine, orgs):
    """Every step is set-based: a batch of 150 visits costs a couple of dozen statements,
    whether its persons are new, known, or known with a new phone number (a step that went
    to the database once per record would cost 150 more)."""
    statements = []

    def counting(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements.append(statement)

    def run(records):
        statements.clear()
        event.listen(engine, "before_cursor_execute", counting)
        try:
            receipt = pipeline.ingest(org, "outpatient_visit", records, now=NOW)
        finally:
            event.remove(engine, "before_cursor_execute", counting)
        assert receipt.accepted + receipt.updated == len(records)
        return len(statements)

    org, warm = visits(orgs, n=5, seed=3)
    run([{**r, "visit_no": "W" + r["visit_no"]} for r in warm])  # the institution's name and the EMPI model are read once per process
    # values go to the database as one JSON text per statement: 150 visits carry 450 identifiers, one statement
    _, records = visits(orgs, n=150, seed=4)
    counts = {
        "new": run(records),
        "known": run([{**r, "visit_no": r["visit_no"] + "-2"} for r in records]),
        "changed": run([{**r, "visit_no": r["visit_no"] + "-3", "phone": f"139{i:08d}"} for i, r in enumerate(records)]),
    }
    assert max(counts.values()) <= 25, counts

"""The EMPI's events in the one audit trail (issue 19 item 5): each case the old SHA-256 chain
let through — newest event deleted, all deleted, hashes emptied ("pre-chain"), ``reverted_by``
edited, the chain recomputed without a key — is found, naming the event or the trail row."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import pytest
from alembic import command
from sqlalchemy import delete, insert, select, text, update

from phip.audit import mac
from phip.audit.tables import AuditEvent
from phip.empi import edits
from phip.empi.relink import relink
from phip.empi.tables import EmpiEvent
from phip.empi.trail import COLUMNS, TARGET, verify
from phip.store.db import alembic_config, upgrade
from tests.empi_support import _insert_people, id_number


@pytest.fixture()
def history(engine, orgs) -> list[int]:
    """Two relink merges and the undo of the first: three EMPI events, the first reverted."""
    born = date(1970, 3, 9)
    people = {f"c{i}": {"name": "欧阳晓华" if i < 2 else "上官婉儿", "sex": "2", "birth_date": born if i < 2 else date(1971, 4, 1),
                        "id_no": id_number(born, 40 + i) if i in (0, 2) else None, "phone": f"1381234{5678 + i // 2 * 1111}",
                        "address": "南关区人民大街1号"} for i in range(4)}
    _insert_people(engine, people)
    assert relink(engine).persons_merged == 2
    with engine.connect() as conn:
        first = conn.execute(select(EmpiEvent.id).order_by(EmpiEvent.id)).scalars().first()
    edits.undo(engine, first, actor="op1")
    with engine.connect() as conn:
        return conn.execute(select(EmpiEvent.id).order_by(EmpiEvent.id)).scalars().all()


def test_every_event_and_every_undo_is_in_the_trail(engine, history):
    verdict = verify(engine)
    assert verdict.ok and verdict.checked == 3 and verdict.trail.checked == 4
    with engine.connect() as conn:
        trail = conn.execute(select(AuditEvent.action, AuditEvent.target, AuditEvent.username, AuditEvent.role)
                             .order_by(AuditEvent.seq)).all()
    assert [(a, t) for a, t, _, _ in trail] == [
        ("empi.relink", f"{TARGET}{history[0]}"), ("empi.relink", f"{TARGET}{history[1]}"),
        ("empi.unmerge", f"{TARGET}{history[2]}"), ("empi.event.reverted", f"{TARGET}{history[0]}")]
    assert [(u, r) for _, _, u, r in trail] == [("relink", "system")] * 2 + [("op1", "operator")] * 2


def test_deleting_the_newest_event_is_found(engine, history):
    with engine.begin() as conn:
        conn.execute(delete(EmpiEvent).where(EmpiEvent.id == history[-1]))
    verdict = verify(engine)
    assert (verdict.code, verdict.event_id) == ("EMPI_EVENT_DELETED", history[-1])


def test_deleting_every_event_is_found(engine, history):
    with engine.begin() as conn:
        conn.execute(delete(EmpiEvent))
    assert (verify(engine).code, verify(engine).event_id) == ("EMPI_EVENT_DELETED", history[0])


def test_an_event_written_around_the_platform_is_found(engine, history):
    """What the old chain took for a "pre-chain" event (hash NULL) is an event the trail lacks."""
    with engine.begin() as conn:
        new_id = conn.execute(insert(EmpiEvent).values(action="merge", at=datetime(2026, 1, 1),
                                                       actor="op9", person_id="x", other_id="y")
                              .returning(EmpiEvent.id)).scalar_one()
    assert (verify(engine).code, verify(engine).event_id) == ("EMPI_EVENT_UNAUDITED", new_id)


def test_editing_reverted_by_is_found(engine, history):
    with engine.begin() as conn:
        conn.execute(update(EmpiEvent).where(EmpiEvent.id == history[0]).values(reverted_by=None))
    assert (verify(engine).code, verify(engine).event_id) == ("EMPI_EVENT_ALTERED", history[0])


@pytest.mark.parametrize("column", [c for c in COLUMNS if c not in ("id", "reverted_by")])
def test_editing_any_column_of_an_event_is_found(engine, history, column):
    value = {"at": datetime(2020, 1, 1), "detail": {"records": []},
             "review_id": 7, "reverts": 7}.get(column, "x")
    with engine.begin() as conn:
        conn.execute(update(EmpiEvent).where(EmpiEvent.id == history[1]).values({column: value}))
    assert (verify(engine).code, verify(engine).event_id) == ("EMPI_EVENT_ALTERED", history[1])


def test_a_trail_recomputed_with_plain_sha256_is_found(engine, history):
    """The attacker edits an event, writes its new digest into the trail and recomputes every
    later link with unkeyed SHA-256 (all the old chain needed): the first recomputed row fails."""
    from phip.empi.trail import digest

    with engine.begin() as conn:
        conn.execute(update(EmpiEvent).where(EmpiEvent.id == history[1]).values(actor="someone else"))
        row = conn.execute(select(*[EmpiEvent.__table__.c[c] for c in COLUMNS]).where(EmpiEvent.id == history[1])).mappings().one()
        trail = [dict(r) for r in conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.seq)).mappings()]
        previous = trail[0]["mac"]
        for event in trail[1:]:
            if event["target"] == f"{TARGET}{history[1]}":
                event["detail"] = {**event["detail"], "digest": digest(row)}
            event["mac"] = previous = hashlib.sha256(previous.encode() + mac.canonical(event)).hexdigest()
            conn.execute(update(AuditEvent).where(AuditEvent.seq == event["seq"]).values(detail=event["detail"], mac=event["mac"]))
    verdict = verify(engine)
    assert (verdict.trail.code, verdict.trail.seq) == ("AUDIT_EVENT_ALTERED", 2)


def test_phip_empi_verify_exit_codes(engine, history, tmp_path):
    from tests.cli_support import run

    url = engine.url.render_as_string(hide_password=False)
    ok = run(["empi", "verify"], tmp_path, database_url=url)
    assert "已核对 3 条" in ok.stdout
    with engine.begin() as conn:
        conn.execute(update(EmpiEvent).where(EmpiEvent.id == history[0]).values(reverted_by=None))
    broken = run(["empi", "verify"], tmp_path, database_url=url, check=False)
    assert broken.returncode == 1 and "EMPI_EVENT_ALTERED" in broken.stderr and f"操作记录 {history[0]}" in broken.stderr
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
    broken = run(["empi", "verify"], tmp_path, database_url=url, check=False)
    assert broken.returncode == 1 and "AUDIT_TAIL_DELETED" in broken.stderr


def test_migration_0010_carries_existing_events_into_the_trail(tmp_path, store_engine):
    """A store at 0009 with chained and unchained EMPI events goes to head: each event is in the
    trail with its own time, verification passes, and the old hash column is gone."""
    from tests.conftest import scratch_store

    scratch = scratch_store(store_engine.dialect.name, tmp_path, "mig")
    command.upgrade(alembic_config(scratch), "0009_backfill_checksum")
    at = datetime(2026, 11, 1, 8, 30)
    with scratch.begin() as conn:
        for i, h in enumerate([None, "ab" * 32, "cd" * 32]):
            conn.execute(text("INSERT INTO empi_events (action, at, actor, person_id, other_id, detail, hash, reverted_by) "
                              "VALUES ('merge', :at, 'op1', :p, :o, :d, :h, :r)"),
                         {"at": at, "p": f"p{i}", "o": f"o{i}", "d": '{"records": [1, 2]}', "h": h, "r": 3 if i == 0 else None})
    upgrade(scratch)
    verdict = verify(scratch)
    assert verdict.ok and verdict.checked == 3
    with scratch.connect() as conn:
        carried = conn.execute(select(AuditEvent.at, AuditEvent.detail).order_by(AuditEvent.seq)).all()
        assert "hash" not in {c["name"] for c in conn.dialect.get_columns(conn, "empi_events")}
    assert [a for a, _ in carried] == [at] * 3
    assert [d["legacy_hash"] for _, d in carried] == [None, "ab" * 32, "cd" * 32]
    assert carried[0][1]["reverted_by"] == 3
    scratch.dispose()

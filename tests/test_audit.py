"""The audit trail (phip.audit): dense chained appends, and every way of tampering with the
rows in the database found by ``verify`` and ``phip audit verify``, naming the row."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from datetime import datetime

import orjson
import pytest
from sqlalchemy import delete, select, text, update

from phip import audit
from phip.audit import anchor, mac
from phip.audit.tables import COLUMNS, AuditEvent
from phip.audit.verify import verify

DR = audit.Actor("dr_li", "clinician", "12220104412001376B", "内科", "10.0.0.7")
ID_NO, PHONE = "220102199004120614", "13512345678"


def _events(engine, n: int = 5) -> list[int]:
    return [audit.log_event(engine, DR, "share.timeline.read", person_id=f"p{i}", authorization=f"consent:{i}",
                            target=f"record:{i}", detail={"n": i, "items": [1, 2.5, "三"]}) for i in range(n)]


def _rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.seq)).mappings()]


def test_appends_are_dense_chained_and_anchored(engine):
    assert _events(engine) == [1, 2, 3, 4, 5]
    verdict = verify(engine)
    assert verdict.ok and verdict.checked == 5
    assert anchor.read() == anchor.Head(5, _rows(engine)[-1]["mac"], 5)
    assert oct(os.stat(os.environ["PHIP_AUDIT_KEY_FILE"]).st_mode & 0o777) == "0o600"


def test_a_rolled_back_change_leaves_no_event_and_no_anchor(engine):
    _events(engine, 2)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        audit.append(conn, DR, "consent.grant", person_id="p9")
        raise RuntimeError("the change fails")
    assert [r["seq"] for r in _rows(engine)] == [1, 2] and anchor.read().seq == 2
    assert verify(engine).ok
    with engine.begin() as conn:  # two in one transaction: both anchored once it commits
        audit.append(conn, DR, "consent.grant", person_id="p9")
        audit.append(conn, DR, "consent.revoke", person_id="p9")
    assert anchor.read().seq == 4 and verify(engine).ok


@pytest.mark.parametrize("column", [c for c in COLUMNS if c != "seq"] + ["mac"])
def test_updating_any_column_of_a_middle_row_is_found_naming_it(engine, column):
    _events(engine)
    value = {"at": datetime(2020, 1, 1), "detail": {"n": 99}, "flagged": True, "mac": "0" * 64}.get(column, "x")
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 3).values({column: value}))
    verdict = verify(engine)
    assert (verdict.code, verdict.seq) == ("AUDIT_EVENT_ALTERED", 3)


def test_renumbering_a_row_is_found(engine):
    _events(engine)
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).where(AuditEvent.seq == 5).values(seq=6))
    assert (verify(engine).code, verify(engine).seq) == ("AUDIT_EVENT_MISSING", 5)


def test_deleting_a_middle_row_is_found(engine):
    _events(engine)
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
    verdict = verify(engine)
    assert (verdict.code, verdict.seq) == ("AUDIT_EVENT_MISSING", 2)


def test_deleting_the_newest_rows_is_found_by_the_anchor(engine):
    _events(engine)
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    verdict = verify(engine)
    assert (verdict.code, verdict.seq, verdict.checked) == ("AUDIT_TAIL_DELETED", 4, 3)


def test_deleting_every_row_is_found_by_the_anchor(engine):
    _events(engine)
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent))
    assert verify(engine).code == "AUDIT_ALL_DELETED"


def test_emptying_every_mac_is_found(engine):
    _events(engine)
    with engine.begin() as conn:
        conn.execute(update(AuditEvent).values(mac=""))
    assert (verify(engine).code, verify(engine).seq) == ("AUDIT_EVENT_ALTERED", 1)


@pytest.mark.parametrize("forger", ["sha256", "sm3", "other key"])
def test_a_chain_recomputed_without_the_key_is_found(engine, forger):
    """The attacker edits a row and recomputes every link: plain SHA-256 as the old EMPI chain
    allowed, plain SM3, or an HMAC with a key of their own. Without the key file it fails at
    the first row, and the head no longer matches the anchor."""
    _events(engine)
    rows = _rows(engine)
    rows[2]["username"] = "someone else"
    previous = mac.GENESIS
    with engine.begin() as conn:
        for row in rows:
            data = previous.encode() + mac.canonical(row)
            if forger == "other key":
                link = mac.link(b"k" * 32, previous, row)
            else:
                link = hashlib.new(forger, data).hexdigest()
            conn.execute(update(AuditEvent).where(AuditEvent.seq == row["seq"]).values(username=row["username"], mac=link))
            previous = link
    verdict = verify(engine)
    assert (verdict.code, verdict.seq) == ("AUDIT_EVENT_ALTERED", 1)


def test_a_new_key_or_a_missing_key_fails_verification(engine, tmp_path, monkeypatch):
    _events(engine, 2)
    monkeypatch.setenv("PHIP_AUDIT_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(audit.AuditError) as err:
        verify(engine)
    assert err.value.code == "AUDIT_KEY_MISSING" and not (tmp_path / "missing.key").exists()


def test_anchor_never_goes_backwards(tmp_path):
    path = tmp_path / "a"
    assert anchor.advance(anchor.Head(5, "m5", 5), path)
    assert not anchor.advance(anchor.Head(3, "m3", 3), path)
    assert anchor.read(path) == anchor.Head(5, "m5", 5)


def _append_from_a_process(url: str, n: int) -> None:
    from phip.store.db import make_engine

    engine = make_engine(url)
    for i in range(n):
        audit.log_event(engine, audit.Actor(f"w{os.getpid()}", "operator"), "empi.person.read", person_id=f"p{i}")
    engine.dispose()


def test_several_processes_append_one_dense_chain_and_one_anchor(engine):
    """Four worker processes append at once: seq stays dense, the chain verifies and the anchor
    holds the last head (the file lock and the never-backwards rule between processes)."""
    url = engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_from_a_process, args=(url, 15)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = _rows(engine)
    assert [r["seq"] for r in rows] == list(range(1, 61))
    verdict = verify(engine)
    assert verdict.ok and anchor.read() == anchor.Head(60, rows[-1]["mac"], 60)


def test_no_full_id_number_or_phone_in_a_displayed_field(engine):
    audit.log_event(engine, DR, "share.document.read", person_id="p1", target=f"search:{ID_NO}",
                    detail={"query": {"id_no": ID_NO, "phone": PHONE}, "note": f"患者电话{PHONE}，证件{ID_NO}",
                            ID_NO: [PHONE]})
    stored = orjson.dumps(_rows(engine)[0], default=str).decode()
    assert ID_NO not in stored and PHONE not in stored
    assert "220102********0614" in stored and "135****5678" in stored
    assert verify(engine).ok


def test_review_queue_and_a_residents_access_log(engine):
    _events(engine, 1)
    glass = audit.log_event(engine, DR, "share.break_glass", person_id="p0", flagged=True,
                            detail={"reason": "急诊抢救"})
    assert [e["seq"] for e in audit.pending_reviews(engine)] == [glass]
    with pytest.raises(audit.AuditError) as err:
        audit.review(engine, DR, glass, "appropriate", "ok")
    assert err.value.code == "AUDIT_FORBIDDEN"
    auditor = audit.Actor("au_wang", "auditor")
    with pytest.raises(audit.AuditError) as err:
        audit.review(engine, auditor, 1, "appropriate")
    assert err.value.code == "AUDIT_NOT_FLAGGED"
    review = audit.review(engine, auditor, glass, "appropriate", "抢救属实")
    assert audit.pending_reviews(engine) == []
    with pytest.raises(audit.AuditError) as err:
        audit.review(engine, auditor, glass, "inappropriate")
    assert err.value.code == "AUDIT_ALREADY_REVIEWED"
    log = audit.for_person(engine, "p0")
    assert [(e["seq"], e["username"], e["org_code"], e["department"]) for e in log] == [
        (glass, "dr_li", DR.org_code, "内科"), (1, "dr_li", DR.org_code, "内科")]
    assert [e["seq"] for e in audit.search(engine, action_prefix="audit.")] == [review]
    assert [e["seq"] for e in audit.search(engine, flagged=True, username="dr_li")] == [glass]
    assert audit.search(engine, org_code="nobody") == []
    assert verify(engine).ok


def test_cli_verify_names_the_row_and_list_masks(engine, tmp_path):
    """``phip audit verify`` / ``list`` in processes of their own, as an operator runs them."""
    from tests.cli_support import run

    url = engine.url.render_as_string(hide_password=False)
    _events(engine, 3)
    audit.log_event(engine, audit.Actor(ID_NO, "resident"), "consent.grant", person_id="p1")
    ok = run(["audit", "verify"], tmp_path, database_url=url)
    assert "已校验 4 条" in ok.stdout
    listed = run(["audit", "list", "--person", "p1"], tmp_path, database_url=url).stdout
    assert ID_NO not in listed and "220102********0614" in listed and "consent.grant" in listed
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET address = '1.2.3.4' WHERE seq = 2"))
    broken = run(["audit", "verify"], tmp_path, database_url=url, check=False)
    assert broken.returncode == 1 and "AUDIT_EVENT_ALTERED" in broken.stderr and "第 2 条" in broken.stderr

"""The identity guard (one person, one valid ID number, one health card per issuer) on every path
that joins records — ingest, relink, manual merge, undo — and the review queue kept consistent
with the persons after merges. Real SQLite and PostgreSQL through the real pipeline."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import select

from phip.empi import edits, identity_guard, reads
from phip.empi.errors import EmpiError
from phip.empi.relink import relink
from phip.empi.tables import EmpiEvent, EmpiReview
from phip.store import models as m
from tests.empi_support import _insert_people, count, id_number, ingest, person_of, registration, two_orgs  # noqa: F401 (fixtures)


def _violations(engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return identity_guard.violations(conn)


def _review(engine, **where):
    r = EmpiReview.__table__
    with engine.connect() as conn:
        return conn.execute(select(r).where(*[r.c[k] == v for k, v in where.items()])).mappings().all()


# --- the module on its own ---------------------------------------------------------------------------


def test_clash_per_kind_and_issuer():
    x, y = ("id_no", "", "220102198005170013"), ("id_no", "", "220102198005170021")
    card1, card2 = ("health_card", "", "HC1"), ("health_card", "", "HC2")
    assert identity_guard.clash({x}, {x, card1}) == []
    assert identity_guard.clash({x}, {y}) == ["id_no"]
    assert identity_guard.clash({x, card1}, {card2}) == ["health_card"]
    assert identity_guard.clash({("health_card", "A", "1")}, {("health_card", "B", "2")}) == []  # two issuers
    assert identity_guard.refusal(["health_card", "id_no"])[0] == "ID_NO_DIFFERENT"


# --- the defect: a provisional person's record carries a number held by somebody else ------------


def _twin_case(pipeline, engine, org):
    """Twin 王秀英 (X1) is known; a record 王秀英 with twin sister 李明华's number X2 is kept
    apart at ingest on a provisional person whose golden ID number is empty."""
    born = date(1986, 3, 14)
    x1, x2 = id_number(born, 22), id_number(born, 46)
    first = registration(org, patient_id="A1", name="王秀英", sex="2", born=born, id_no=x1, phone="13912345678")
    other = registration(org, patient_id="A2", name="李明华", sex="2", born=born, id_no=x2, phone="13912345678")
    ingest(pipeline, org, first, other)
    stray = registration(org, patient_id="A3", name="王秀英", sex="2", born=born, id_no=x2, phone="13912345678")
    assert ingest(pipeline, org, stray).warnings == 1  # EMPI_ID_CONFLICT: the name is not X2's holder's
    twin, holder, provisional = person_of(engine, first), person_of(engine, other), person_of(engine, stray)
    assert len({twin, holder, provisional}) == 3
    with engine.connect() as conn:
        assert conn.execute(select(m.Person.id_no).where(m.Person.id == provisional)).scalar_one() is None
        held = identity_guard.held(conn, [provisional])[provisional]
    assert ("id_no", "", x2) in held  # the record's number counts, though the golden record has none
    return twin, holder, provisional


def test_relink_does_not_merge_a_provisional_person_into_the_other_twin(pipeline, engine, orgs):
    org = orgs[0][0]
    twin, holder, provisional = _twin_case(pipeline, engine, org)
    summary = relink(engine)
    assert summary.blocked_by_id >= 1  # the model would join them (same name, birth date, phone)
    assert summary.persons_merged == 0
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(m.Person.id, m.Person.status)).all())
    assert statuses[twin] == statuses[provisional] == "active"
    assert _violations(engine) == {}


def test_manual_merge_refused_with_code_and_chinese_message(pipeline, engine, orgs):
    twin, _, provisional = _twin_case(pipeline, engine, orgs[0][0])
    with pytest.raises(EmpiError) as err:
        edits.merge(engine, twin, provisional, actor="op1")
    assert (err.value.code, err.value.status) == ("ID_NO_DIFFERENT", 409) and "身份证号码" in err.value.message
    assert count(engine, EmpiEvent) == 0 and _violations(engine) == {}


def test_undo_of_a_split_refused_when_the_split_off_person_gained_another_number(pipeline, engine, two_orgs):
    a, _ = two_orgs
    born = date(1970, 8, 8)
    x1, x3 = id_number(born, 31), id_number(born, 57)
    r1 = registration(a, patient_id="A1", name="刘德华", born=born, id_no=x1)
    r2 = registration(a, patient_id="A1", name="刘德华", born=born, health_card="HC0000000000000001")
    ingest(pipeline, a, r1)
    ingest(pipeline, a, r2)
    pid = person_of(engine, r1)
    assert person_of(engine, r2) == pid
    with engine.connect() as conn:
        rid = conn.execute(select(m.Record.id).where(m.Record.record_key == r2["registration_no"])).scalar_one()
    new_id, split_event = edits.split(engine, pid, [rid], actor="op1", reason="两个人")
    # the split-off person's health card brings a record with another valid number to it
    r3 = registration(a, patient_id="A9", name="刘德华", born=born, id_no=x3, health_card="HC0000000000000001")
    ingest(pipeline, a, r3)
    assert person_of(engine, r3) == new_id
    with pytest.raises(EmpiError) as err:
        edits.undo(engine, split_event, actor="op1")
    assert err.value.code == "ID_NO_DIFFERENT"
    assert person_of(engine, r2) == new_id and _violations(engine) == {}


def test_ingest_never_joins_a_second_number_through_the_patient_id(pipeline, engine, two_orgs):
    """A hospital patient id that named a person with X1 now arrives with X2: a new person for X2
    and an id_conflict review; the first person keeps holding X1 only."""
    a, _ = two_orgs
    born = date(1955, 5, 5)
    x1, x2 = id_number(born, 71), id_number(born, 93)
    r1 = registration(a, patient_id="A1", name="周建华", born=born, id_no=x1)
    r2 = registration(a, patient_id="A1", name="周建华", born=born, id_no=x2)
    ingest(pipeline, a, r1)
    ingest(pipeline, a, r2)
    assert person_of(engine, r1) != person_of(engine, r2)
    (item,) = _review(engine, kind="id_conflict")
    assert (item["person_id"], item["candidate_id"]) == (person_of(engine, r2), person_of(engine, r1))
    assert _violations(engine) == {}
    # the same within one batch
    r3 = registration(a, patient_id="A5", name="孙丽", sex="2", born=born, id_no=id_number(born, 102))
    r4 = registration(a, patient_id="A5", name="孙丽", sex="2", born=born, id_no=id_number(born, 124))
    ingest(pipeline, a, r3, r4)
    assert person_of(engine, r3) != person_of(engine, r4) and _violations(engine) == {}


def test_a_second_health_card_of_one_issuer_is_not_joined(pipeline, engine, two_orgs):
    a, _ = two_orgs
    r1 = registration(a, patient_id="A1", name="吴敏", born=date(1999, 9, 9), health_card="HC1111")
    r2 = registration(a, patient_id="A1", name="吴敏", born=date(1999, 9, 9), health_card="HC2222")
    ingest(pipeline, a, r1)
    ingest(pipeline, a, r2)
    assert person_of(engine, r1) != person_of(engine, r2) and _violations(engine) == {}
    with pytest.raises(EmpiError) as err:
        edits.merge(engine, person_of(engine, r1), person_of(engine, r2), actor="op1")
    assert err.value.code == "HEALTH_CARD_DIFFERENT"


# --- the review queue follows merges -------------------------------------------------------------------


def test_merge_rewrites_or_resolves_the_reviews_it_makes_moot(pipeline, engine, orgs):
    org = orgs[0][0]
    twin, holder, provisional = _twin_case(pipeline, engine, org)
    (conflict,) = _review(engine, kind="id_conflict")
    assert (conflict["person_id"], conflict["candidate_id"]) == (provisional, holder)
    # the provisional person is found to be the same as a third, number-less person: merged into it
    third = registration(orgs[1][0], patient_id="B1", name="赵丽", sex="2", born=date(1990, 1, 2))
    ingest(pipeline, orgs[1][0], third)
    keep = person_of(engine, third)
    edits.merge(engine, keep, provisional, actor="op1")
    (item,) = _review(engine, id=conflict["id"])
    assert (item["status"], item["person_id"], item["candidate_id"]) == ("pending", keep, holder)
    assert item["pair_key"] == f"id_conflict:{min(keep, holder)}:{max(keep, holder)}"
    # the operator links the review: holder and survivor merge, nothing else points at the retired
    edits.decide(engine, item["id"], "link", actor="op1")
    assert [r["status"] for r in _review(engine, kind="id_conflict")] == ["linked"]


def test_relink_resolves_reviews_of_the_pair_it_merges_and_proposes_survivors_only(engine, orgs):
    born = date(1990, 4, 12)
    addr = "吉林省长春市南关区人民大街1号"
    people = {
        "p1": {"name": "张伟", "sex": "1", "birth_date": born, "id_no": id_number(born, 12), "phone": "13812345678", "address": addr},
        "p2": {"name": "張偉", "sex": "1", "birth_date": born, "id_no": None, "phone": "13812345678", "address": addr},
        "p9": {"name": "张玮", "sex": "1", "birth_date": date(1990, 4, 13), "id_no": None, "phone": None, "address": None},
    }
    _insert_people(engine, people)
    from phip.empi.model import default_model

    model = default_model()
    from phip.empi.golden import person_row

    rows = {p: person_row(v)[0]["match"] for p, v in people.items()}
    prob = model.score(rows["p9"], rows["p2"])[1]
    assert model.review_threshold <= prob < model.link_threshold  # p9 is a review case against p1/p2
    now = __import__("datetime").datetime(2026, 11, 22, 12)
    with engine.begin() as conn:  # a stale review between the two that will merge, one naming p2
        conn.execute(EmpiReview.__table__.insert(), [
            {"kind": "possible_match", "status": "pending", "pair_key": "possible_match:p1:p2", "person_id": "p2",
             "candidate_id": "p1", "probability": 0.5, "weight": 0.0, "evidence": [], "created_at": now},
            {"kind": "id_conflict", "status": "pending", "pair_key": "id_conflict:p2:p9", "person_id": "p9",
             "candidate_id": "p2", "probability": 0.5, "weight": 0.0, "evidence": [], "created_at": now}])
    summary = relink(engine)
    assert summary.persons_merged == 1 and (summary.reviews_resolved, summary.reviews_rewritten) == (1, 1)
    reviews = {r["pair_key"]: r for r in _review(engine)}
    assert reviews["possible_match:p1:p2"]["status"] == "merged"
    assert reviews["id_conflict:p1:p9"]["status"] == "pending"
    pending = [r for r in reviews.values() if r["status"] == "pending"]
    assert "p2" not in {p for r in pending for p in (r["person_id"], r["candidate_id"])}  # merged away
    assert "possible_match:p1:p9" in reviews


# --- property: after any sequence of ingest / relink / merge / decide / undo ---------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BORN = date(1986, 3, 14)
#: Two pairs of twins (same surname, birth date, phone) and a stranger: names close enough that
#: the model wants to join them, numbers that must keep them apart.
_RESIDENTS = (
    ("王秀英", "2", _BORN, id_number(_BORN, 22), "13912345678"),
    ("王秀瑛", "2", _BORN, id_number(_BORN, 46), "13912345678"),
    ("李明华", "1", _BORN, id_number(_BORN, 51), "13800001111"),
    ("李明", "1", _BORN, id_number(_BORN, 73), "13800001111"),
    ("赵丽", "2", date(1990, 1, 2), id_number(date(1990, 1, 2), 84), None),
)
_record = st.fixed_dictionaries({
    "who": st.integers(0, len(_RESIDENTS) - 1),
    # own number, another resident's, none, or a truncated one (stored as sent, never a key)
    "id": st.sampled_from(["own", "none", "bad", "of0", "of1", "of1", "of2", "of3"]),
    "pid": st.sampled_from(["P1", "P2", "P3", "P4"]),
    "org": st.integers(0, 1),
    "card": st.sampled_from([None, None, "HC1", "HC2"]),
    "phone": st.booleans(),
})
_op = st.one_of(
    st.tuples(st.just("ingest"), st.lists(_record, min_size=1, max_size=4)),
    st.tuples(st.just("relink")),
    st.tuples(st.just("relink")),
    st.tuples(st.just("merge"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("decide"), st.integers(0, 9)),
    st.tuples(st.just("undo"), st.integers(0, 9)),
)


def _registration(orgs, spec):
    name, sex, born, own, phone = _RESIDENTS[spec["who"]]
    number = {"own": own, "none": None, "bad": own[:17]}.get(spec["id"]) or (
        _RESIDENTS[int(spec["id"][2:])][3] if spec["id"].startswith("of") else None)
    org = orgs[spec["org"]][0]
    return org, registration(org, patient_id=spec["pid"], name=name, sex=sex, born=born, id_no=number,
                             phone=phone if spec["phone"] else None, health_card=spec["card"])


def _apply(engine, pipeline, orgs, op) -> None:
    kind = op[0]
    try:
        if kind == "ingest":
            for spec in op[1]:
                org, rec = _registration(orgs, spec)
                pipeline.ingest(org, "outpatient_registration", [rec])
        elif kind == "relink":
            relink(engine)
        elif kind == "merge":
            with engine.connect() as conn:
                active = sorted(conn.execute(select(m.Person.id).where(m.Person.status == "active")).scalars())
            if len(active) > 1:
                edits.merge(engine, active[op[1] % len(active)], active[op[2] % len(active)], actor="prop")
        elif kind == "decide":
            pending = [r["id"] for r in reads.reviews(engine, limit=100)]
            if pending:
                edits.decide(engine, pending[op[1] % len(pending)], "link", actor="prop")
        elif kind == "undo":
            with engine.connect() as conn:
                events = sorted(conn.execute(select(EmpiEvent.id)).scalars())
            if events:
                edits.undo(engine, events[op[1] % len(events)], actor="prop")
    except EmpiError:
        pass  # a refusal (different numbers, already undone, …) is an allowed outcome


@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=1, max_size=6))
def test_no_person_ever_holds_two_valid_numbers(store_engine, orgs, ops):
    from phip.runtime import build_pipeline
    from tests.conftest import empty_store

    engine = empty_store(store_engine)
    pipeline = build_pipeline(engine)
    # every resident known once with its own number, as on a platform that has been running
    for who in range(len(_RESIDENTS)):
        org, rec = _registration(orgs, {"who": who, "id": "own", "pid": f"B{who}", "org": 0, "card": None, "phone": True})
        pipeline.ingest(org, "outpatient_registration", [rec])
    for op in ops:
        _apply(engine, pipeline, orgs, op)
        assert _violations(engine) == {}, op
    # every record still belongs to an active person (no record left on a merged one)
    with engine.connect() as conn:
        stray = conn.execute(select(m.Record.id).join(m.Person, m.Person.id == m.Record.person_id)
                             .where(m.Person.status != "active")).all()
    assert stray == []


# --- person roles: the address of patient_info reaches the golden record and the matcher -----------


def patient_info(org: str, org_name: str, *, patient_id: str, name: str, born: date, sex: str = "1",
                 id_type: str = "01", id_no: str = "X", **extra) -> dict:
    """One patient master record (患者基本信息)."""
    return {"org_code": org, "org_name": org_name, "patient_id": patient_id, "name": name, "sex_code": sex,
            "birth_date": born.isoformat(), "id_type_code": id_type, "id_no": id_no,
            "create_time": "2026-11-01 08:00:00", "update_time": "2026-11-20 08:00:00", **extra}


def test_patient_info_address_lands_in_the_golden_record_and_is_compared(pipeline, engine, orgs):
    from phip.empi.features import match_row
    from phip.empi.model import default_model

    (a, a_name), (b, b_name), (c, _) = orgs[:3]
    born = date(1990, 4, 12)
    first = patient_info(a, a_name, patient_id="A1", name="张伟", born=born, id_no=id_number(born, 61),
                         current_address="吉林省长春市南关区人民大街1号")
    receipt = pipeline.ingest(a, "patient_info", [first])
    assert receipt.rejected == 0, receipt.as_dict()
    with engine.connect() as conn:
        person = conn.execute(select(m.Person)).one()
    assert person.address == "吉林省长春市南关区人民大街1号" and person.match["address_key"] == "南关区人民大街1号"
    # a homophone given name, the birth date one digit off, no resident ID: a review case alone …
    model = default_model()
    alone = model.score(match_row("张玮", "1", date(1990, 4, 13), None, None, None), person.match)[1]
    assert model.review_threshold <= alone < model.link_threshold
    # … the same address (only the household register's, shortened) makes it a link
    second = patient_info(b, b_name, patient_id="B1", name="张玮", born=date(1990, 4, 13), id_type="99",
                          id_no="G12345678", household_address="南关区 人民大街1号")
    assert pipeline.ingest(b, "patient_info", [second]).rejected == 0
    with engine.connect() as conn:
        linked = conn.execute(select(m.Record.person_id).where(m.Record.org_code == b)).scalar_one()
    assert linked == person.id
    # without the address (a registration carries none) the same person is only proposed
    third = registration(c, patient_id="C1", name="张玮", born=date(1990, 4, 13))
    ingest(pipeline, c, third)
    assert person_of(engine, third) != person.id
    (item,) = reads.reviews(engine)
    address = next(e for e in item["evidence"] if e["field"] == "address")
    assert address["level"] == "缺失" and address["right"] == "南关区人民大街1号"


# --- cross-reference lookup (PIX) ---------------------------------------------------------------------


def test_xref_for_an_institutions_own_patient_and_refused_for_anothers(pipeline, engine, orgs):
    from fastapi.testclient import TestClient

    from phip.api.app import create_app
    from phip.orgs.keys import create_key

    (a, a_name), (b, _), (c, _) = orgs[:3]
    born = date(1990, 4, 12)
    x = id_number(born, 61)
    ingest(pipeline, a, registration(a, patient_id="A-77", name="张伟", born=born, id_no=x, health_card="HC0000000000009"))
    ingest(pipeline, b, registration(b, patient_id="B-12", name="张伟", born=born, id_no=x))
    ingest(pipeline, c, registration(c, patient_id="C-5", name="李娜", sex="2", born=date(1985, 1, 1)))
    _, key_a = create_key(engine, a)
    _, key_c = create_key(engine, c)
    client = TestClient(create_app(engine))
    as_a = {"Authorization": f"Bearer {key_a}"}

    own = client.get("/api/v1/empi/xref", params={"org": a, "patient_id": "A-77"}, headers=as_a)
    assert own.status_code == 200, own.text
    body = own.json()
    assert {(i["org"], i["patient_id"]) for i in body["local_ids"]} == {(a, "A-77"), (b, "B-12")}  # all domains
    assert next(i for i in body["local_ids"] if i["org"] == a)["org_name"] == a_name
    shown = {i["kind"]: i["value"] for i in body["identifiers"]}
    assert shown["id_no"] == x[:6] + "*" * 8 + x[-4:] and x not in own.text  # masked
    # its own patient id without naming the institution; B's patient id of a person A also has
    assert client.get("/api/v1/empi/xref", params={"patient_id": "A-77"}, headers=as_a).json()["person_id"] == body["person_id"]
    assert client.get("/api/v1/empi/xref", params={"org": b, "patient_id": "B-12"}, headers=as_a).json()["person_id"] == body["person_id"]
    # by ID number, in the body only
    by_id = client.post("/api/v1/empi/xref", json={"kind": "id_no", "value": x}, headers=as_a)
    assert by_id.status_code == 200 and by_id.json()["person_id"] == body["person_id"]
    # another institution's patient: refused whether or not it exists, no existence leak
    for params in ({"org": c, "patient_id": "C-5"}, {"org": c, "patient_id": "C-nobody"}):
        refused = client.get("/api/v1/empi/xref", params=params, headers=as_a)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "XREF_FORBIDDEN"
    assert client.post("/api/v1/empi/xref", json={"kind": "id_no", "value": x},
                       headers={"Authorization": f"Bearer {key_c}"}).json()["error"]["code"] == "XREF_FORBIDDEN"
    # its own unknown patient id: not found; no key: 401; a bad number: 400
    missing = client.get("/api/v1/empi/xref", params={"patient_id": "A-nobody"}, headers=as_a)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "PATIENT_NOT_FOUND"
    assert client.get("/api/v1/empi/xref", params={"patient_id": "A-77"}).json()["error"]["code"] == "AUTH_REQUIRED"
    bad = client.post("/api/v1/empi/xref", json={"kind": "id_no", "value": x[:-1] + "0" if x[-1] != "0" else x[:-1] + "1"}, headers=as_a)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_ID_NO"


def _cli(engine, *args):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PHIP_DATABASE_URL": engine.url.render_as_string(hide_password=False), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "phip.cli", "empi", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_id_conflict_review_shows_true_evidence_and_the_cli_no_none(pipeline, engine, orgs):
    """An id_conflict review compares the record's full row: the ID number and the phone are
    present and equal (masked), with their weights; `phip empi reviews` gives the total."""
    org = orgs[0][0]
    twin, holder, provisional = _twin_case(pipeline, engine, org)
    (item,) = reads.reviews(engine)
    evidence = {e["field"]: e for e in item["evidence"]}
    assert evidence["id_no"]["level"] == "完全一致" and evidence["id_no"]["weight"] > 0
    assert evidence["id_no"]["left"] == evidence["id_no"]["right"] and "*" in evidence["id_no"]["left"]
    assert evidence["name"]["level"] == "不一致" and evidence["name"]["weight"] < 0
    # the phone is present on both sides and equal (it showed as missing before)
    assert evidence["phone"]["left"] == evidence["phone"]["right"] == "139****5678"
    assert evidence["phone"]["level"] == "完全一致" and evidence["phone"]["weight"] > 0
    out = _cli(engine, "reviews")
    assert out.returncode == 0, out.stderr
    assert "None" not in out.stdout and "证件号码冲突" in out.stdout and "待审核审核项共 1 项" in out.stdout
    assert "139****5678" in out.stdout and "13912345678" not in out.stdout
    decided = _cli(engine, "decide", str(item["id"]), "reject", "--operator", "王工")
    assert decided.returncode == 0 and "None" not in decided.stdout and "已否决" in decided.stdout
    relinked = _cli(engine, "relink")
    assert relinked.returncode == 0, relinked.stderr
    assert "Blocking time" not in relinked.stdout + relinked.stderr and "批量重新关联" in relinked.stdout
    assert "Predict time" not in relinked.stdout + relinked.stderr
    xref = _cli(engine, "xref", "--org", org, "--patient-id", "A3")
    assert xref.returncode == 0 and provisional in xref.stdout and "A3" in xref.stdout
    nobody = _cli(engine, "xref", "--org", org, "--patient-id", "nobody")
    assert nobody.returncode == 2 and "PATIENT_NOT_FOUND" in nobody.stderr
    # the audit finds a person left holding two numbers (as the old relink left them)
    clean = _cli(engine, "verify", "--identities")
    assert clean.returncode == 0 and "没有居民名下载有两个不同" in clean.stdout
    with engine.begin() as conn:
        conn.execute(m.Record.__table__.update().where(m.Record.person_id == provisional).values(person_id=twin))
    broken = _cli(engine, "verify", "--identities")
    assert broken.returncode == 1 and twin in broken.stderr and "身份证号码" in broken.stderr


# --- 15-digit numbers: the century is revisited ------------------------------------------------------


def test_upgrade_id15_takes_the_century_from_the_birth_date():
    from phip.standard.checks import id_check_char, parse_id_number, upgrade_id15

    id15 = "220102050412061"
    assert upgrade_id15(id15)[6:10] == "1905"
    assert upgrade_id15(id15, date(2005, 4, 12))[6:10] == "2005"
    assert upgrade_id15(id15, "2005-04-12")[6:10] == "2005"
    assert upgrade_id15(id15, date(2005, 4, 13))[6:10] == "1905"  # another day: the number decides
    assert upgrade_id15(id15, date(1905, 4, 12))[6:10] == "1905"
    body = "220102" + "2005" + "0412061"
    assert parse_id_number(id15, birth_date=date(2005, 4, 12)) == (body + id_check_char(body), True)
    assert parse_id_number(id15)[0][6:10] == "1905"  # the cache keeps the two apart


def test_a_15_digit_number_joins_the_person_of_its_18_digit_form(pipeline, engine, orgs):
    """A 15-digit number of a child born 2005 (kept as sent by a hospital): the record's birth
    date chooses 20xx; without a birth date, the person already known by the 20xx form is found."""
    from phip.empi.resolver import EmpiResolver
    from phip.standard.catalog import load_standard

    a, b = orgs[0][0], orgs[1][0]
    born = date(2005, 4, 12)
    id18 = id_number(born, 61)
    id15 = id18[:6] + id18[8:17]
    known = registration(a, patient_id="A1", name="刘洋", born=born, id_no=id18)
    ingest(pipeline, a, known)
    pid = person_of(engine, known)
    ds = load_standard().dataset("outpatient_registration")
    records = [{"patient_id": "B1", "name": "刘洋", "sex_code": "1", "birth_date": born, "id_type_code": "01", "id_no": id15},
               {"patient_id": "B2", "name": "刘洋", "sex_code": "1", "id_type_code": "01", "id_no": id15}]
    with engine.begin() as conn:
        resolution = EmpiResolver().resolve(conn, b, ds, records, datetime(2026, 11, 22, 12))
    assert resolution.person_ids == [pid, pid]
    with engine.connect() as conn:
        assert identity_guard.violations(conn) == {}


# --- records whose ID number is not valid reach the matcher as evidence, never as a key -------------


def test_placeholder_or_truncated_id_numbers_are_no_identity_key(pipeline, engine, orgs):
    a, b = orgs[0][0], orgs[1][0]
    born = date(1979, 12, 3)
    x = id_number(born, 88)
    known = registration(a, patient_id="A1", name="黄志强", born=born, id_no=x, phone="13611112222")
    ingest(pipeline, a, known)
    # a placeholder is compared as missing (not "different": that weighs m = 1e-4), a truncated
    # number as a typo of the right one: name and birth date link them (as they link a record
    # without any number; a placeholder compared as "different" scored 0.936, below the threshold)
    placeholder = registration(b, patient_id="B1", name="黄志强", born=born, id_no="000000000000000000")
    truncated = registration(b, patient_id="B2", name="黄志强", born=born, id_no=x[:17], phone="13611112222")
    stranger = registration(b, patient_id="B3", name="马丽", sex="2", born=date(1991, 1, 1), id_no="000000000000000000")
    receipt = pipeline.ingest(b, "outpatient_registration", [placeholder, truncated, stranger])
    assert receipt.rejected == 0 and receipt.warnings >= 3  # kept, flagged
    assert person_of(engine, placeholder) == person_of(engine, truncated) == person_of(engine, known)
    assert person_of(engine, stranger) != person_of(engine, known)  # a shared placeholder joins nobody
    with engine.connect() as conn:
        kinds = conn.execute(select(m.PersonIdentifier.kind, m.PersonIdentifier.value)).all()
        assert identity_guard.violations(conn) == {}
    assert ("id_no", "000000000000000000") not in kinds and ("id_no", x[:17]) not in kinds


def _two_pairs() -> dict[str, dict]:
    """Two pairs the model merges: p1 + p2 (one ID number between them), p3 + p4 (none)."""
    born = date(1990, 4, 12)
    addr = "吉林省长春市南关区人民大街1号"
    return {
        "p1": {"name": "张伟", "sex": "1", "birth_date": born, "id_no": id_number(born, 12), "phone": "13812345678", "address": addr},
        "p2": {"name": "張偉", "sex": "1", "birth_date": born, "id_no": None, "phone": "13812345678", "address": addr},
        "p3": {"name": "李娜", "sex": "2", "birth_date": date(1985, 1, 1), "id_no": None, "phone": "13700000000", "address": addr},
        "p4": {"name": "李娜", "sex": "2", "birth_date": date(1985, 1, 1), "id_no": None, "phone": "13700000000", "address": addr},
    }


def test_relink_respects_a_reviewers_rejection_and_a_pending_id_conflict(engine, orgs):
    """Persons the model would merge stay apart when a reviewer rejected the pair, or when the
    ingest kept them apart over an ID-number conflict that no reviewer has decided yet."""
    _insert_people(engine, _two_pairs())
    assert relink(engine, dry_run=True).persons_merged == 2  # the model joins both pairs
    now = datetime(2026, 11, 22, 12)
    with engine.begin() as conn:
        conn.execute(EmpiReview.__table__.insert(), [
            {"kind": "possible_match", "status": "rejected", "pair_key": "possible_match:p1:p2", "person_id": "p2",
             "candidate_id": "p1", "evidence": [], "created_at": now},
            {"kind": "id_conflict", "status": "pending", "pair_key": "id_conflict:p3:p4", "person_id": "p4",
             "candidate_id": "p3", "evidence": [], "created_at": now}])
    summary = relink(engine)
    assert summary.persons_merged == 0 and summary.blocked_by_id == 2


def test_relink_leaves_out_persons_an_operator_merged_while_it_predicted(engine, orgs):
    """The relink reads and scores the persons without the EMPI lock (minutes on a province):
    an operator who merges one of a scored pair meanwhile is not overwritten. The pair is left
    to the next run, no record is moved to a person merged away, and the operator's merge
    stands; the other pair is merged as scored."""
    people = {**_two_pairs(),
              "p5": {"name": "王芳", "sex": "2", "birth_date": date(1970, 6, 6), "id_no": None, "phone": "13900001111", "address": None}}
    _insert_people(engine, people)
    with engine.begin() as conn:
        conn.execute(m.Record.__table__.insert(), [
            {"org_code": orgs[0][0], "dataset": "outpatient_registration", "record_key": f"K{i}", "version": 1,
             "content_hash": "h", "person_id": pid, "event_time": datetime(2026, 11, 22), "received_at": datetime(2026, 11, 22),
             "batch_id": "b", "payload": {}} for i, pid in enumerate(people)])
    assert relink(engine, dry_run=True).persons_merged == 2  # p1+p2 and p3+p4

    def operator_merges_p3(stage: str, done: int, total: int) -> None:
        if stage == "predict":  # the pairs are scored; the relink has not written yet
            edits.merge(engine, "p5", "p3", actor="op1", reason="人工核实为同一人")

    summary = relink(engine, progress=operator_merges_p3)
    assert summary.persons_merged == 1
    with engine.connect() as conn:
        status = dict(conn.execute(select(m.Person.id, m.Person.merged_into)).all())
        active = set(conn.execute(select(m.Person.id).where(m.Person.status == "active")).scalars())
        holders = set(conn.execute(select(m.Record.person_id)).scalars())
    assert status["p3"] == "p5" and status["p2"] == "p1" and status["p4"] is None
    assert active == {"p1", "p4", "p5"} and holders <= active


def test_merge_notifications_reach_the_hospitals_of_the_patient_only(pipeline, engine, orgs):
    """个人信息合并通知: a merge of two persons is announced to each institution holding one of
    them, with its own patient IDs now under the survivor; an institution with no part in them
    sees nothing but its cursor moves past; an undo is announced too."""
    from fastapi.testclient import TestClient

    from phip.api.app import create_app
    from phip.empi import edits
    from phip.orgs.keys import create_key

    (a, _), (b, _), (c, _) = orgs[:3]
    ingest(pipeline, a, registration(a, patient_id="A-1", name="王芳", sex="2", born=date(1980, 3, 3)))
    ingest(pipeline, b, registration(b, patient_id="B-9", name="李红", sex="2", born=date(1992, 7, 7)))
    ingest(pipeline, c, registration(c, patient_id="C-4", name="赵强", born=date(1970, 1, 1)))
    pa, pb = (reads.xref(engine, org=o, patient_id=p)["person_id"] for o, p in ((a, "A-1"), (b, "B-9")))
    assert pa != pb
    client = TestClient(create_app(engine))
    keys = {o: {"Authorization": f"Bearer {create_key(engine, o)[1]}"} for o in (a, b, c)}

    def poll(org: str, after: int = 0) -> dict:
        answer = client.get("/api/v1/empi/notifications", params={"after": after}, headers=keys[org])
        assert answer.status_code == 200, answer.text
        return answer.json()

    start = {o: poll(o)["next_after"] for o in (a, b, c)}
    merged = edits.merge(engine, pa, pb, "ops", "同一人")
    for org, own in ((a, "A-1"), (b, "B-9")):
        (notice,) = poll(org, start[org])["notifications"]
        assert (notice["id"], notice["action"], notice["person_id"], notice["other_id"]) == (merged, "merge", pa, pb)
        assert notice["now"] == [{"person_id": pa, "patient_ids": [own]}]
    quiet = poll(c, start[c])
    assert quiet["notifications"] == [] and quiet["next_after"] == merged  # moved past, shown nothing
    undone = edits.undo(engine, merged, "ops", "误合并")
    (notice,) = poll(a, merged)["notifications"]
    assert notice["id"] == undone and notice["action_label"] in reads.NOTICE_LABELS.values()
    assert client.get("/api/v1/empi/notifications").json()["error"]["code"] == "AUTH_REQUIRED"
    assert client.get("/api/v1/empi/notifications", params={"after": -1}, headers=keys[a]).status_code == 400
    too_far = client.get("/api/v1/empi/notifications", params={"after": 2**63}, headers=keys[a])  # was a 500 (schemathesis)
    assert too_far.status_code == 400 and too_far.json()["error"]["field"] == "after"

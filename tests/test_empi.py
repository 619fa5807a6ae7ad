"""EMPI on real SQLite and PostgreSQL through the real pipeline: exact and guarded ID links,
the review queue, merge/unmerge/split with the audit trail, polyphonic surnames, a record
with only an institution patient id, probabilistic links of corrupted duplicates; plus the
promise that the Python scorer gives the weights Splink gives."""

from __future__ import annotations

import random
from datetime import date

import duckdb
import pytest
from sqlalchemy import select

from phip.empi import edits, reads
from phip.empi.errors import EmpiError
from phip.empi.features import match_row
from phip.empi.model import COMPARISONS, default_model
from phip.empi.names import name_key, name_pinyin
from phip.empi.similarity import jaro_winkler, within_one_edit
from phip.empi.tables import EmpiEvent, EmpiReview
from phip.store import models as m
from tests.empi_support import DATASET, NOW, _insert_people, count, id_number, ingest, person_of, registration, two_orgs  # noqa: F401 (fixture)


# --- exact resolution -----------------------------------------------------------------------------


def test_id_number_links_across_institutions_and_15_digit_numbers(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1965, 3, 8)
    id18 = id_number(born, seq=351)
    id15 = id18[:6] + id18[8:17]
    r1 = registration(a, patient_id="A1", name="王建国", born=born, id_no=id18)
    r2 = registration(b, patient_id="B7", name="王建国", born=born, id_no=id15)  # old 15-digit number
    ingest(pipeline, a, r1)
    ingest(pipeline, b, r2)
    pid = person_of(engine, r1)
    assert pid is not None and person_of(engine, r2) == pid
    ids = {(i["kind"], i["scope"]) for i in reads.identifiers(engine, pid)["identifiers"]}
    assert ids == {("id_no", None), ("patient_id", a), ("patient_id", b)}
    assert count(engine, m.Person) == 1


def test_id_number_guard_queues_a_review_and_warns(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1972, 11, 2)
    id18 = id_number(born, seq=412)
    first = registration(a, patient_id="A1", name="张秀英", sex="2", born=born, id_no=id18)
    ingest(pipeline, a, first)
    holder = person_of(engine, first)
    # the same number written in traditional characters is the same person: no finding
    fine = registration(b, patient_id="B1", name="張秀英", sex="2", born=born, id_no=id18)
    assert ingest(pipeline, b, fine).warnings == 0 and person_of(engine, fine) == holder
    # a given name typed with another character (not a homophone), same surname, sex and
    # birthday: the number's holder, no review
    typo = registration(b, patient_id="B0", name="张秀传", sex="2", born=born, id_no=id18)
    assert ingest(pipeline, b, typo).warnings == 0 and person_of(engine, typo) == holder
    # the same surname with another birth date or another sex is someone else
    for name, sex, day in (("张国华", "2", date(1975, 3, 9)), ("张国强", "1", born)):
        stray = registration(b, patient_id=f"B-{name}-{sex}", name=name, sex=sex, born=day, id_no=id18)
        assert ingest(pipeline, b, stray).warnings == 1 and person_of(engine, stray) != holder
    with engine.begin() as conn:
        conn.execute(EmpiReview.__table__.delete())
    # the same number with somebody else's name and birth date: not linked, queued, warned
    wrong = registration(b, patient_id="B2", name="赵志强", sex="1", born=date(1990, 1, 1), id_no=id18)
    receipt = ingest(pipeline, b, wrong)
    assert receipt.warnings == 1
    other = person_of(engine, wrong)
    assert other is not None and other != holder
    with engine.connect() as conn:
        findings = conn.execute(select(m.BatchFinding.findings).where(m.BatchFinding.batch_id == receipt.batch_id)).scalar_one()
        item = conn.execute(select(EmpiReview.__table__)).one()
    conflict = next(f for f in findings if f["code"] == "EMPI_ID_CONFLICT")
    assert conflict["severity"] == "warning" and "姓名和出生日期" in conflict["message"] and id18 not in conflict["message"]
    assert (item.kind, item.status, item.person_id, item.candidate_id) == ("id_conflict", "pending", other, holder)
    # the hospital's patient id went with the provisional person, so its next record finds it again
    again = registration(b, patient_id="B2", name="赵志强", sex="1", born=date(1990, 1, 1), id_no=id18)
    assert ingest(pipeline, b, again).warnings == 1 and person_of(engine, again) == other
    assert count(engine, EmpiReview) == 1
    # the operator decides it is the same person after all: link merges the records into the holder
    result = edits.decide(engine, item.id, "link", actor="op1", note="核实为同一人")
    assert result["status"] == "linked"
    assert person_of(engine, wrong) == holder and person_of(engine, again) == holder


def test_record_with_only_an_institution_patient_id(pipeline, engine, two_orgs):
    a, b = two_orgs
    r0 = registration(a, patient_id="X-001", name="", born=None)
    r0.pop("name")  # required in this data set: a warning, and the patient id still names the person
    receipt = ingest(pipeline, a, r0)
    assert receipt.warnings == 1
    r1 = registration(a, patient_id="X-001", name="某", born=None)
    r2 = registration(a, patient_id="X-001", name="某", born=None)
    r3 = registration(b, patient_id="X-001", name="某", born=None)  # another hospital's X-001 is someone else
    ingest(pipeline, a, r1)
    ingest(pipeline, a, r2)
    ingest(pipeline, b, r3)
    p1, p2, p3 = person_of(engine, r1), person_of(engine, r2), person_of(engine, r3)
    assert p1 is not None and p1 == p2 == person_of(engine, r0) and p3 is not None and p3 != p1
    assert reads.identifiers(engine, p1)["identifiers"][0]["kind"] == "patient_id"


# --- probabilistic resolution ----------------------------------------------------------------------


def test_corrupted_duplicate_links_probabilistically(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1958, 7, 21)
    known = registration(a, patient_id="A1", name="欧阳晓华", born=born, id_no=id_number(born, 55), phone="13812345678")
    ingest(pipeline, a, known)
    # traditional characters, two phone digits swapped, no ID number, another hospital
    dup = registration(b, patient_id="B9", name="歐陽曉華", born=born, phone="13812345768")
    # a namesake born the same day with a different sex and phone must not be taken for her
    stranger = registration(b, patient_id="B10", name="欧阳晓华", sex="2", born=born, phone="13998765432")
    model = default_model()
    row = match_row("歐陽曉華", "1", born, None, "13812345768", None)
    assert model.score(row, match_row("欧阳晓华", "1", born, None, "13812345678", None))[1] >= model.link_threshold
    ingest(pipeline, b, dup, stranger)
    assert person_of(engine, dup) == person_of(engine, known)
    assert person_of(engine, stranger) != person_of(engine, known)


def test_review_queue_between_thresholds(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1990, 4, 12)
    known = registration(a, patient_id="A1", name="张伟", born=born, id_no=id_number(born, 61))
    ingest(pipeline, a, known)
    # a homophone given name and a birth date one digit off, nothing else: not sure either way
    maybe = registration(b, patient_id="B1", name="张玮", born=date(1990, 4, 13))
    model = default_model()
    _, prob = model.score(match_row("张玮", "1", date(1990, 4, 13), None, None, None),
                          match_row("张伟", "1", born, None, None, None))
    assert model.review_threshold <= prob < model.link_threshold
    ingest(pipeline, b, maybe)
    new, old = person_of(engine, maybe), person_of(engine, known)
    assert new != old
    queue = reads.reviews(engine)
    assert len(queue) == 1
    item = queue[0]
    assert (item["kind"], item["person_id"], item["candidate_id"]) == ("possible_match", new, old)
    evidence = {e["field"]: e for e in item["evidence"]}
    assert set(evidence) == {c.name for c in COMPARISONS}
    assert evidence["name"]["level"] == "拼音一致（同音字/繁体）" and evidence["name"]["weight"] > 0
    assert evidence["id_no"]["level"] == "缺失"
    assert item["candidate"]["id_no"].startswith("220") and "*" in item["candidate"]["id_no"]  # masked
    edits.decide(engine, item["id"], "reject", actor="op1", note="不是同一人")
    assert reads.reviews(engine) == [] and len(reads.reviews(engine, status="rejected")) == 1
    # the same pair is not proposed again
    ingest(pipeline, b, registration(b, patient_id="B1", name="张玮", born=date(1990, 4, 13)))
    assert count(engine, EmpiReview) == 1
    with pytest.raises(EmpiError) as err:
        edits.decide(engine, item["id"], "link", actor="op1")
    assert err.value.code == "REVIEW_DECIDED"


# --- merge, unmerge, split, audit ------------------------------------------------------------------


def _state(engine):
    with engine.connect() as conn:
        records = dict(conn.execute(select(m.Record.id, m.Record.person_id)).all())
        idents = set(conn.execute(select(m.PersonIdentifier.kind, m.PersonIdentifier.scope, m.PersonIdentifier.value,
                                         m.PersonIdentifier.person_id)).all())
        golden = {r.id: (r.status, r.name, r.birth_date, r.id_no, r.phone, r.match)
                  for r in conn.execute(select(m.Person)).all()}
    return records, idents, golden


def test_merge_then_unmerge_restores_records_and_identifiers(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1948, 2, 29)
    r1 = registration(a, patient_id="A1", name="单田芳", born=born, id_no=id_number(born, 11), phone="13900001111")
    r2 = registration(a, patient_id="A1", name="单田芳", born=born, id_no=id_number(born, 11))
    r3 = registration(b, patient_id="B5", name="單天方", born=date(1948, 3, 1), health_card="HC000111222333444")
    ingest(pipeline, a, r1, r2)
    ingest(pipeline, b, r3)
    keep, gone = person_of(engine, r1), person_of(engine, r3)
    assert keep != gone
    before = _state(engine)
    event_id = edits.merge(engine, keep, gone, actor="op1", reason="同一人（医保核实）")
    records, idents, golden = _state(engine)
    assert set(records.values()) == {keep}
    assert {p for *_, p in idents} == {keep} and len(idents) == len(before[1])
    assert golden[gone][0] == "merged" and golden[keep][0] == "active"
    assert reads.golden_record(engine, gone)["person_id"] == keep  # merged ids keep working for readers
    assert {i["kind"] for i in reads.identifiers(engine, gone)["identifiers"]} == {"id_no", "patient_id", "health_card"}
    with pytest.raises(EmpiError):
        edits.merge(engine, keep, gone, actor="op1")
    undo_id = edits.undo(engine, event_id, actor="op2", reason="误合并")
    assert _state(engine) == before
    with pytest.raises(EmpiError) as err:
        edits.undo(engine, event_id, actor="op2")
    assert err.value.code == "ALREADY_UNDONE"
    trail = reads.events(engine, keep)
    assert [(e["action"], e["actor"], e["reverts"]) for e in trail] == [("merge", "op1", None), ("unmerge", "op2", event_id)]
    assert trail[0]["reverted_by"] == undo_id and trail[0]["records_moved"] == 1 and trail[0]["identifiers_moved"] == 2


def test_merge_refuses_two_valid_id_numbers(pipeline, engine, two_orgs):
    a, _ = two_orgs
    born = date(2001, 6, 1)
    r1 = registration(a, patient_id="T1", name="陈一鸣", born=born, id_no=id_number(born, 21))
    r2 = registration(a, patient_id="T2", name="陈一航", born=born, id_no=id_number(born, 33))  # a twin
    ingest(pipeline, a, r1, r2)
    with pytest.raises(EmpiError) as err:
        edits.merge(engine, person_of(engine, r1), person_of(engine, r2), actor="op1")
    assert err.value.code == "ID_NO_DIFFERENT"
    assert count(engine, EmpiEvent) == 0


def test_split_and_undo(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1977, 9, 9)
    r1 = registration(a, patient_id="A1", name="曾国强", born=born, phone="13700002222")
    r2 = registration(b, patient_id="B1", name="曾国强", born=born, phone="13700002222")
    ingest(pipeline, a, r1)
    ingest(pipeline, b, r2)
    pid = person_of(engine, r1)
    assert person_of(engine, r2) == pid  # same name, birth date and phone: linked
    before = _state(engine)
    with engine.connect() as conn:
        rid = conn.execute(select(m.Record.id).where(m.Record.record_key == r2["registration_no"])).scalar_one()
    new_id, event_id = edits.split(engine, pid, [rid], actor="op1", reason="两个人")
    assert person_of(engine, r2) == new_id and person_of(engine, r1) == pid
    ids = reads.identifiers(engine, new_id)["identifiers"]
    assert [(i["kind"], i["scope"], i["value"]) for i in ids] == [("patient_id", b, "B1")]
    assert reads.golden_record(engine, new_id)["fields"]["name"]["source"]["org"] == b
    edits.undo(engine, event_id, actor="op1")
    records, idents, _ = _state(engine)
    assert records == before[0] and idents == before[1]


# --- names, model, similarity (no database) -----------------------------------------------------------


@pytest.mark.parametrize(("name", "reading"), [
    ("单田芳", "shàn tián fāng"), ("曾国藩", "zēng guó fān"), ("解缙", "xiè jìn"), ("仇英", "qiú yīng"),
    ("查良镛", "zhā liáng yōng"), ("区志伟", "ōu zhì wěi"), ("朴槿惠", "piáo jǐn huì"), ("盖聂", "gě niè"),
    ("尉迟恭", "yù chí gōng"), ("單田芳", "shàn tián fāng"), ("欧阳修", "ōu yáng xiū"), ("张三", "zhāng sān"),
])
def test_polyphonic_surnames(name, reading):
    assert name_pinyin(name) == reading


def test_surname_table_is_used_for_matching_keys():
    assert name_key("单田芳").surname_py == "shan" and name_key("尉迟恭").surname == "尉迟"
    assert name_key("張 偉").key == "张伟" and name_key("ＺＨＡＮＧ Wei").key == "zhangwei"


def test_compound_surnames_split_as_the_table_says():
    """split_name tests a name against the compound surnames by length (a set lookup each); the
    answer must be the first compound, longest first, that the name starts with."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from phip.empi.names import split_name, surname_readings

    compounds = sorted((s for s in surname_readings() if len(s) > 1), key=len, reverse=True)
    singles = [s for s in surname_readings() if len(s) == 1]

    def reference(key: str) -> tuple[str, str]:
        if len(key) > 2:
            for compound in compounds:
                if key.startswith(compound):
                    return compound, key[len(compound):]
        return key[0], key[1:]

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(compounds + singles), st.text(alphabet="明华伟芳娜阳迟马", max_size=3))
    def check(surname, given_name):
        key = surname + given_name
        assert split_name(key) == reference(key)

    check()
    assert split_name("欧阳娜娜") == ("欧阳", "娜娜") and split_name("欧阳") == ("欧", "阳")


def test_polyphonic_surname_through_the_pipeline(pipeline, engine, two_orgs):
    a, b = two_orgs
    born = date(1934, 12, 1)
    r1 = registration(a, patient_id="A1", name="单田芳", born=born, id_no=id_number(born, 71), phone="13611112222")
    r2 = registration(b, patient_id="B1", name="單田芳", born=born, phone="13611112222")
    ingest(pipeline, a, r1)
    ingest(pipeline, b, r2)
    assert person_of(engine, r2) == person_of(engine, r1)
    hits = reads.find(engine, name="单田芳", birth_date=born)
    assert hits[0]["person_id"] == person_of(engine, r1) and hits[0]["phone"] == "136****2222"


def test_python_scorer_agrees_with_splink():
    """The real-time matcher and Splink must give every pair the same weight."""
    from phip.empi.synth import Register
    from phip.empi.training import frame, predict

    rows = Register(5).rows(3000, duplicate_share=0.3, hard_share=0.2)
    table = frame((str(r.rec_id), match_row(r.name, r.sex, r.birth_date, r.id_no, r.phone, r.address)) for r in rows)
    model = default_model()
    by_id = {str(r.rec_id): match_row(r.name, r.sex, r.birth_date, r.id_no, r.phone, r.address) for r in rows}
    pairs = predict(table, model.settings, 0.0).to_pylist()
    assert len(pairs) > 500
    for p in pairs:
        weight, _ = model.score(by_id[p["person_id_l"]], by_id[p["person_id_r"]])
        assert weight == pytest.approx(p["match_weight"], abs=1e-6)


def test_refine_u_discounts_matches_among_random_pairs():
    """Random sampling counts duplicates as non-matches; where they dominate a level (same ID
    number) u ≈ λ·m and the level cancels the prior. refine_u weighs each random pair by its
    chance of being a non-match, so that u falls, while a level non-matches fill keeps its u."""
    import copy

    from phip.empi.synth import Register
    from phip.empi.training import frame, refine_u

    rows = Register(5).rows(3000, duplicate_share=0.3, hard_share=0.2)
    table = frame((str(r.rec_id), match_row(r.name, r.sex, r.birth_date, r.id_no, r.phone, r.address)) for r in rows)
    model = copy.deepcopy(default_model().settings)
    model["probability_two_random_records_match"] = prior = 2e-4  # about this register's share of duplicate pairs

    def level(settings, comparison, label):
        comp = next(c for c in settings["comparisons"] if c["output_column_name"] == comparison)
        return next(lv for lv in comp["comparison_levels"] if lv.get("label_for_charts") == label)

    same_id = level(model, "id_no", "完全一致")
    same_id["u_probability"] = contaminated = prior * same_id["m_probability"]
    other_name = level(model, "name", "不一致")["u_probability"]
    refined = refine_u(table, model, max_pairs=5e5)
    assert level(refined, "id_no", "完全一致")["u_probability"] < contaminated / 20
    assert level(refined, "name", "不一致")["u_probability"] == pytest.approx(other_name, rel=0.01)


def test_similarities_match_duckdb():
    rng = random.Random(3)
    alphabet = "abzh张三丰风0129"
    pairs = []
    for _ in range(2000):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        b = list(a)
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(b) + 1)
            if rng.random() < 0.5 and b and i < len(b):
                b[i] = rng.choice(alphabet)
            elif rng.random() < 0.5 and len(b) > 1 and i < len(b) - 1:
                b[i], b[i + 1] = b[i + 1], b[i]
            else:
                b.insert(i, rng.choice(alphabet))
        pairs.append((a, "".join(b)))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a VARCHAR, b VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", pairs)
    for a, b, jw, dl in con.execute("SELECT a, b, jaro_winkler_similarity(a, b), damerau_levenshtein(a, b) FROM t").fetchall():
        assert jaro_winkler(a, b) == pytest.approx(jw, abs=1e-12), (a, b)
        if a.isascii() and b.isascii():
            assert within_one_edit(a, b) == (dl <= 1), (a, b)


# --- batch relink, API, CLI ----------------------------------------------------------------------------


def test_relink_merges_duplicates_and_undo_restores(engine, orgs):
    """Persons that escaped real-time resolution (loaded as if resolved on identifiers only) are
    merged by the batch relink; a twin with another ID number is not; each merge can be undone."""
    from phip.empi.relink import relink

    born = date(1961, 10, 3)
    people = {
        "p1": {"name": "欧阳晓华", "sex": "2", "birth_date": born, "id_no": id_number(born, 12), "phone": "13812345678", "address": "吉林省长春市南关区人民大街1号"},
        "p2": {"name": "歐陽曉華", "sex": "2", "birth_date": born, "id_no": None, "phone": "13812345678", "address": "南关区 人民大街1号"},
        "p3": {"name": "欧阳晓花", "sex": "2", "birth_date": born, "id_no": id_number(born, 24), "phone": "13812345678", "address": "吉林省长春市南关区人民大街1号"},
        "p4": {"name": "李四", "sex": "1", "birth_date": date(1990, 1, 1), "id_no": None, "phone": "13900000000", "address": None},
    }
    _insert_people(engine, people)
    with engine.begin() as conn:
        conn.execute(m.Record.__table__.insert(), [
            {"org_code": orgs[0][0], "dataset": DATASET, "record_key": f"K{i}", "version": 1, "content_hash": "h",
             "person_id": pid, "event_time": NOW, "received_at": NOW, "batch_id": "b", "payload": {}}
            for i, pid in enumerate(people)])
    before = _state(engine)
    summary = relink(engine)
    assert (summary.persons, summary.persons_merged, summary.records_moved) == (4, 1, 1)
    assert summary.blocked_by_id >= 1  # p3 (twin, other ID number) joins nobody
    records, _, golden = _state(engine)
    assert golden["p2"][0] == "merged" and records == {**before[0], **{k: "p1" for k, v in before[0].items() if v == "p2"}}
    assert golden["p3"][0] == "active"
    with engine.connect() as conn:
        event = conn.execute(select(EmpiEvent.__table__).where(EmpiEvent.action == "relink")).one()
    edits.undo(engine, event.id, actor="op1")
    assert _state(engine)[0] == before[0]
    again = relink(engine, dry_run=True)
    assert again.persons_merged == 1


def test_relink_dying_mid_write_changes_nothing_and_a_rerun_merges_once(engine, orgs):
    """The database connection dies after the records moved but before the merges are audited:
    the one write-back transaction rolls back entirely, and a rerun merges each duplicate once
    (one audited event per retired person, no record left on a retired person)."""
    from sqlalchemy import event as sa_event

    from phip.empi.relink import relink

    born = date(1975, 2, 9)
    people = {f"q{i}": {"name": "张晓明", "sex": "1", "birth_date": born, "id_no": id_number(born, 31) if i == 0 else None,
                        "phone": "13712345678", "address": "吉林省长春市朝阳区红旗街8号"} for i in range(3)}
    _insert_people(engine, people)
    with engine.begin() as conn:
        conn.execute(m.Record.__table__.insert(), [
            {"org_code": orgs[0][0], "dataset": DATASET, "record_key": f"Q{i}", "version": 1, "content_hash": "h",
             "person_id": pid, "event_time": NOW, "received_at": NOW, "batch_id": "b", "payload": {}}
            for i, pid in enumerate(people)])
    before = _state(engine)

    def die(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE PERSONS SET STATUS"):
            raise OSError("connection lost (simulated)")

    sa_event.listen(engine, "before_cursor_execute", die)
    try:
        with pytest.raises(OSError):
            relink(engine)
    finally:
        sa_event.remove(engine, "before_cursor_execute", die)
    assert _state(engine) == before
    assert count(engine, EmpiEvent) == 0
    summary = relink(engine)
    assert summary.persons_merged == 2
    records, _, golden = _state(engine)
    assert set(records.values()) == {"q0"} and [golden[f"q{i}"][0] for i in range(3)] == ["active", "merged", "merged"]
    assert count(engine, EmpiEvent) == 2
    assert relink(engine).persons_merged == 0


def test_relink_folds_newer_values_into_the_survivor_and_rekeys_it(engine, orgs):
    """A survivor's golden record takes what the retired person knew and it did not (here the
    phone), its candidate-index keys follow, and undoing the relink restores it; a survivor that
    gains nothing keeps its row untouched (updated_at stays empty)."""
    from phip.empi.relink import relink
    from phip.empi.tables import EmpiBlock

    born, other = date(1975, 6, 1), date(1982, 2, 14)
    people = {
        "q1": {"name": "司马文静", "sex": "2", "birth_date": born, "id_no": id_number(born, 31), "phone": None, "address": "南关区人民大街9号"},
        "q2": {"name": "司马文静", "sex": "2", "birth_date": born, "id_no": None, "phone": "13712345678", "address": "南关区人民大街9号"},
        "q3": {"name": "诸葛明亮", "sex": "1", "birth_date": other, "id_no": id_number(other, 41), "phone": "13612345678", "address": "朝阳区红旗街3号"},
        "q4": {"name": "诸葛明亮", "sex": "1", "birth_date": other, "id_no": None, "phone": "13612345678", "address": None},
    }
    _insert_people(engine, people)
    summary = relink(engine)
    assert summary.persons_merged == 2
    _, _, golden = _state(engine)
    assert golden["q1"][4] == "13712345678" and golden["q1"][5]["phone"] == "13712345678"
    with engine.connect() as conn:
        keys = set(conn.execute(select(EmpiBlock.key).where(EmpiBlock.person_id == "q1")).scalars())
        assert "p:13712345678" in keys
        assert not conn.execute(select(EmpiBlock.key).where(EmpiBlock.person_id.in_(["q2", "q4"]))).first()
        untouched = conn.execute(select(m.Person.updated_at).where(m.Person.id == "q3")).scalar_one()
        event = conn.execute(select(EmpiEvent.__table__).where(EmpiEvent.action == "relink", EmpiEvent.other_id == "q2")).one()
    assert untouched is None
    edits.undo(engine, event.id, actor="op1")
    _, _, golden = _state(engine)
    assert golden["q1"][4] is None and golden["q2"][0] == "active"


def test_read_persons_postgresql_copy_matches_the_generic_read(engine, orgs):
    """PostgreSQL reads matching rows through COPY … CSV; quotes, commas, line breaks, empty
    strings and missing values come back exactly as the generic JSON read gives them."""
    from phip.empi.golden import person_row
    from phip.empi.training import _read, read_persons
    from phip.empi.store import insert_persons

    rows, blocks = [], {}
    for i, address in enumerate(['人民大街"1"号, 3单元', "朝阳区\n红旗街", None, "t"]):
        cols, keys = person_row({"name": ["张三", "李四", None, "f"][i], "sex": "1", "birth_date": date(1980, 1, i + 1),
                                 "id_no": id_number(date(1980, 1, i + 1), i) if i % 2 else None,
                                 "phone": None, "address": address})
        rows.append({"id": f"r{i}", "created_at": NOW, "status": "active", "merged_into": None, **cols, "sources": {}})
        blocks[f"r{i}"] = keys
    rows[0]["match"]["given_key"] = ""  # an empty string is not a missing value
    with engine.begin() as conn:
        insert_persons(conn, rows, blocks)
    con = duckdb.connect()
    fast = read_persons(engine, con).sort_by("person_id").to_pylist()
    raw = _read(engine)
    expected = {r["id"]: {"person_id": r["id"], **r["match"], "birth_year": r["match"]["dob"][:4]} for r in rows}
    assert fast == [expected[f"r{i}"] for i in range(4)]
    assert raw.num_rows == 4


def test_api_find_identifiers_golden_and_reviews(pipeline, engine, two_orgs):
    from fastapi.testclient import TestClient

    from phip.api.app import create_app

    a, b = two_orgs
    born = date(1990, 4, 12)
    known = registration(a, patient_id="A1", name="张伟", born=born, id_no=id_number(born, 61), phone="13512345678")
    ingest(pipeline, a, known)
    ingest(pipeline, b, registration(b, patient_id="B1", name="张玮", born=date(1990, 4, 13)))
    from phip.accounts import create_user
    from tests.web_support import PASSWORD, login

    client = TestClient(create_app(engine))
    pid = person_of(engine, known)
    # residents' identities: nothing without an operator's session
    anonymous = client.get("/api/v1/empi/persons", params={"name": "张伟", "birth_date": "1990-04-12"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "LOGIN_REQUIRED"
    assert client.post("/api/v1/empi/merge", json={"survivor": pid, "retired": pid}).status_code == 401
    create_user(engine, "ops", PASSWORD)
    login(client)
    client.headers["X-CSRF-Token"] = client.get("/api/v1/empi/session").json()["csrf_token"]
    hits = client.get("/api/v1/empi/persons", params={"name": "张伟", "birth_date": "1990-04-12"}).json()["persons"]
    id_no = id_number(born, 61)
    assert hits[0]["person_id"] == pid and hits[0]["id_no"] == f"{id_no[:6]}********{id_no[-4:]}"  # phip.privacy
    by_id = client.post("/api/v1/empi/persons/search", json={"id_no": id_number(born, 61)}).json()["persons"]
    assert [h["person_id"] for h in by_id] == [pid]
    bad = client.post("/api/v1/empi/persons/search", json={"id_no": "220102199004120610"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_ID_NO"
    # identifiers never in an address: refused there, before anything reads them
    for params in ({"id_no": id_number(born, 61)}, {"phone": "13804311234"}):
        in_url = client.get("/api/v1/empi/persons", params=params)
        assert in_url.status_code == 400 and in_url.json()["error"]["code"] == "IDENTIFIER_IN_URL"
    assert client.post("/api/v1/empi/persons/search", json={}).json()["error"]["code"] == "BAD_QUERY"
    assert client.get("/api/v1/empi/persons").json()["error"]["code"] == "BAD_QUERY"
    ids = client.get(f"/api/v1/empi/persons/{pid}/identifiers").json()["identifiers"]
    assert {i["kind"] for i in ids} == {"id_no", "patient_id"}
    gold = client.get(f"/api/v1/empi/persons/{pid}").json()
    assert gold["fields"]["name"] == {"value": "张*", "source": {"org": a, "dataset": DATASET, "at": gold["fields"]["name"]["source"]["at"]}}
    assert client.get("/api/v1/empi/persons/nobody").json()["error"]["code"] == "PERSON_NOT_FOUND"
    queue = client.get("/api/v1/empi/reviews").json()["reviews"]
    assert len(queue) == 1
    decided = client.post(f"/api/v1/empi/reviews/{queue[0]['id']}/decision", json={"decision": "link", "operator": "op1"})
    assert decided.json()["status"] == "linked"
    assert client.post(f"/api/v1/empi/reviews/{queue[0]['id']}/decision",
                       json={"decision": "maybe", "operator": "op1"}).json()["error"]["code"] == "BAD_REQUEST"
    undo = client.post(f"/api/v1/empi/events/{decided.json()['event_id']}/undo", json={"operator": "op2"})
    assert undo.status_code == 200
    assert [e["action"] for e in client.get(f"/api/v1/empi/persons/{pid}/events").json()["events"]] == ["link", "unmerge"]
    # the audit trail names the logged-in operator, not what the body claims
    assert {e["actor"] for e in client.get(f"/api/v1/empi/persons/{pid}/events").json()["events"]} == {"ops"}


def test_a_shortened_address_does_not_replace_the_fuller_one():
    """A later record that writes the address without its district keeps the golden address
    whole (combine too, whichever side is newer); another address still replaces it."""
    from phip.empi import golden

    full, short = "青海省西宁市城中区南大街117号20栋3单元", "南大街117号20栋3单元"
    old = golden.source_of("A", "patient_info", date(2026, 1, 1))
    new = golden.source_of("B", "patient_info", date(2026, 2, 1))
    values, _, changed = golden.survive({"address": full}, {"address": old}, {"address": short}, new)
    assert values["address"] == full and not changed
    values, _, changed = golden.survive({"address": short}, {"address": new}, {"address": full}, old)
    assert values["address"] == full and changed  # older, but fuller
    values, _, changed = golden.survive({"address": full}, {"address": old}, {"address": "城东区八一路9号"}, new)
    assert values["address"] == "城东区八一路9号" and changed
    merged, _ = golden.combine(({"address": short}, {"address": new}), ({"address": full}, {"address": old}))
    assert merged["address"] == full

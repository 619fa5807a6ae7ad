"""bulk_insert's typed paths (binary COPY on PostgreSQL, the driver's executemany on SQLite)
store exactly what the generic path stores."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine, select, text

from phip.store import models as m
from phip.store import sql
from phip.store.sql import bulk_insert, select_in


def _rows(tag: str) -> list[dict]:
    return [
        {"org_code": "ORG", "dataset": "outpatient_visit", "record_key": f"{tag}-{i}", "version": 1,
         "content_hash": f"{i:032x}", "person_id": None if i % 2 else f"p{i}",
         "event_time": None if i == 3 else datetime(2026, 11, 22, 8, 30, i, 250 * i),
         "received_at": datetime(2026, 11, 22, 12, 0, 0), "batch_id": tag,
         "payload": {"visit_no": f"{tag}\t{i}\\n", "name": "张三", "fee": 12.5, "when": "2026-11-22 08:30:00", "n": None}}
        for i in range(5)
    ]


def test_typed_insert_stores_what_the_generic_insert_stores(engine: Engine):
    records = m.Record.__table__
    with engine.begin() as conn:
        bulk_insert(conn, records, _rows("plain"))
        bulk_insert(conn, records, _rows("typed"), typed=True)
    cols = ["record_key", "version", "content_hash", "person_id", "event_time", "received_at", "payload"]
    with engine.connect() as conn:
        stored = {batch: [r for r in conn.execute(
            select(*[records.c[c] for c in cols]).where(records.c.batch_id == batch).order_by(records.c.id)).all()]
            for batch in ("plain", "typed")}
        # the stored text of the times too: SQLite compares times as text, so one format only
        as_text = {batch: conn.execute(text("SELECT CAST(event_time AS TEXT) FROM records WHERE batch_id = :b ORDER BY id"),
                                       {"b": batch}).scalars().all() for batch in ("plain", "typed")}
        # and range queries find the same rows
        since = datetime(2026, 11, 22, 8, 30, 2, 500)
        found = {batch: conn.execute(select(records.c.record_key).where(
            records.c.batch_id == batch, records.c.event_time >= since).order_by(records.c.record_key)).scalars().all()
            for batch in ("plain", "typed")}
    assert len(stored["typed"]) == 5
    for plain, typed in zip(stored["plain"], stored["typed"], strict=True):
        assert plain.record_key.replace("plain", "typed") == typed.record_key
        assert plain[1:-1] == typed[1:-1]
        assert typed.payload == {**plain.payload, "visit_no": plain.payload["visit_no"].replace("plain", "typed")}
    assert as_text["plain"] == as_text["typed"]
    assert [k.replace("plain", "typed") for k in found["plain"]] == found["typed"] == ["typed-2", "typed-4"]


@pytest.mark.parametrize("chunk", [None, 7])
def test_select_in_finds_exactly_the_rows_named(engine: Engine, monkeypatch, chunk):
    """The reused statement of select_in: text and integer keys, values split over several
    statements, values that match nothing, and a second call that must not see the first's."""
    if chunk:
        monkeypatch.setattr(sql, "IN_CHUNK", {engine.dialect.name: chunk, "": chunk})
    records = m.Record.__table__
    with engine.begin() as conn:
        bulk_insert(conn, records, [{**r, "record_key": f"k{i}"} for i, r in enumerate(_rows("sel") * 6)], typed=True)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(records.c.record_key, records.c.id)).all())
        wanted = [f"k{i}" for i in range(0, 30, 2)] + ["absent", "k99"]
        found = select_in(conn, (records.c.record_key, records.c.id), records.c.record_key, wanted)
        assert sorted(found) == sorted((k, ids[k]) for k in wanted if k in ids)
        by_id = select_in(conn, (records.c.id, records.c.record_key), records.c.id, [ids["k1"], ids["k29"], -1])
        assert sorted(by_id) == sorted([(ids["k1"], "k1"), (ids["k29"], "k29")])
        assert select_in(conn, (records.c.record_key, records.c.id), records.c.record_key, ["k3"]) == [("k3", ids["k3"])]
        assert select_in(conn, (records.c.record_key, records.c.id), records.c.record_key, []) == []



@pytest.mark.parametrize("typed", [True, False])
def test_json_text_is_stored_as_the_object_it_spells(engine: Engine, typed):
    """A JSON column given as UTF-8 JSON text (bytes, as the pipeline hands over a record it
    has serialised for its content hash) stores the same document as the object itself."""
    import orjson

    records = m.Record.__table__
    objects = _rows("obj")
    texts = [{**r, "record_key": r["record_key"].replace("obj", "txt"), "batch_id": "txt",
              "payload": orjson.dumps(r["payload"], option=orjson.OPT_SORT_KEYS)} for r in objects]
    with engine.begin() as conn:
        bulk_insert(conn, records, objects, typed=typed)
        bulk_insert(conn, records, texts, typed=typed)
    with engine.connect() as conn:
        stored = {batch: conn.execute(select(records.c.payload).where(records.c.batch_id == batch)
                                      .order_by(records.c.id)).scalars().all() for batch in ("obj", "txt")}
        if engine.dialect.name == "sqlite":  # text, not a BLOB: SQLite's JSON functions read it
            kinds = conn.execute(text("SELECT DISTINCT typeof(payload) FROM records WHERE batch_id = 'txt'")).scalars().all()
            assert kinds == ["text"]
        names = conn.execute(select(records.c.payload["name"].as_string()).where(records.c.batch_id == "txt")).scalars().all()
    assert stored["txt"] == stored["obj"] == [r["payload"] for r in objects]
    assert names == ["张三"] * 5


def test_json_text_is_parsed_back_for_servers_that_serialise_themselves():
    import orjson

    records = m.Record.__table__
    rows = [{"record_key": "a", "payload": orjson.dumps({"x": 1})}, {"record_key": "b", "payload": {"y": 2}}]
    assert sql._json_parsed(records, rows) == [{"record_key": "a", "payload": {"x": 1}}, {"record_key": "b", "payload": {"y": 2}}]
    plain = [{"record_key": "c", "payload": {"z": 3}}]
    assert sql._json_parsed(records, plain) == plain

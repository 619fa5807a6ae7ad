"""Push API against the real app on SQLite and PostgreSQL: every error answer, the
cross-institution write, replay and correction, receipts and feedback."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from phip.api import push
from phip.api.app import create_app
from phip.orgs.keys import create_key, revoke_key
from phip.store import models as m
from phip.store.db import make_engine
from tests.records_support import URL, records


@pytest.fixture()
def api(engine, orgs):
    client = TestClient(create_app(engine))
    org, other = orgs[0][0], orgs[1][0]
    _, key = create_key(engine, org)
    _, other_key = create_key(engine, other)
    return client, org, {"Authorization": f"Bearer {key}"}, {"X-API-Key": other_key}


def stored(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(m.Record)).scalar_one()


def other_org(orgs):
    return orgs[1][0]


def error(resp):
    return resp.json()["error"]["code"]


def test_push_replay_and_correct(api, engine, orgs):
    client, org, auth, _ = api
    batch = records(orgs)
    r = client.post(URL, json=batch, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"]["accepted"] == len(batch) and body["org_code"] == org
    again = client.post(URL, json=batch, headers=auth).json()
    assert again["counts"]["unchanged"] == len(batch) and again["counts"]["accepted"] == 0
    fixed = [{**batch[0], "dept_name": "呼吸内科"}]
    assert client.post(URL, json=fixed, headers=auth).json()["counts"]["updated"] == 1
    receipt = client.get(f"/api/v1/receipts/{body['batch_id']}", headers=auth).json()
    assert receipt["counts"] == body["counts"]


def test_ndjson_gzip_and_rejections_with_feedback(api, engine, orgs):
    client, org, auth, _ = api
    batch = records(orgs, n=6)
    batch[2] = {**batch[2], "visit_time": "2026-02-30 09:00:00"}  # no event time: cannot be stored
    batch[4] = {**batch[4], "sex_code": "7"}  # stored without the code, flagged
    payload = gzip.compress("\n".join(json.dumps(r, ensure_ascii=False) for r in batch).encode())
    r = client.post(URL, content=payload, headers={**auth, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    body = r.json()
    assert r.status_code == 200 and body["counts"]["rejected"] == 1 and body["counts"]["accepted"] == 5
    assert body["counts"]["warnings"] == 1
    rej = body["rejections"][0]
    assert rej["index"] == 2 and rej["record_key"] == batch[2]["visit_no"]
    assert rej["findings"][0] == {"severity": "error", "code": "BAD_DATETIME", "field": "visit_time",
                                  "message": rej["findings"][0]["message"]}
    fb = client.get("/api/v1/feedback", params={"since": "2020-01-01 00:00:00"}, headers=auth).json()
    assert [i["record_key"] for i in fb["items"]] == [batch[2]["visit_no"]]
    fb = client.get("/api/v1/feedback", params={"since": "2020-01-01 00:00:00", "warnings": "true"}, headers=auth).json()
    assert [(i["record_key"], i["rejected"]) for i in fb["items"]] == [(batch[2]["visit_no"], True), (batch[4]["visit_no"], False)]
    assert fb["items"][1]["findings"][0]["code"] == "NOT_IN_DOMAIN" and fb["items"][1]["findings"][0]["severity"] == "warning"
    assert client.get("/api/v1/feedback", params={"since": "昨天"}, headers=auth).status_code == 400


def test_institution_writes_only_its_own(api, engine, orgs):
    client, org, auth, other_auth = api
    batch = records(orgs)
    r = client.post(URL, json=batch, headers=other_auth)
    # one rule for every entry point: each record naming another institution is rejected on its own
    assert r.status_code == 200 and r.json()["counts"]["rejected"] == len(batch)
    findings = [rej["findings"][0] for rej in r.json()["rejections"]]
    assert {f["code"] for f in findings} == {"ORG_MISMATCH"} and "本机构" in findings[0]["message"]
    assert stored(engine) == 0
    mixed = [batch[0], {**batch[1], "org_code": other_org(orgs)}]
    r = client.post(URL, json=mixed, headers=auth).json()
    assert r["counts"]["accepted"] == 1 and r["counts"]["rejected"] == 1 and r["rejections"][0]["index"] == 1
    assert stored(engine) == 1
    ok = client.post(URL, json=batch, headers=auth).json()
    assert client.get(f"/api/v1/receipts/{ok['batch_id']}", headers=other_auth).status_code == 404


def test_authentication(api, engine, orgs):
    client, org, auth, _ = api
    batch = records(orgs, n=1)
    assert error(client.post(URL, json=batch)) == "AUTH_REQUIRED"
    assert client.post(URL, json=batch, headers={"Authorization": "Bearer phip_wrong"}).status_code == 401
    key = auth["Authorization"].split()[1]
    assert client.post(URL, json=batch, headers=auth).status_code == 200
    assert revoke_key(engine, key[:12]) == 1
    r = client.post(URL, json=batch, headers=auth)
    assert r.status_code == 401 and error(r) == "AUTH_INVALID"


@pytest.mark.parametrize(
    "content, headers, status, code",
    [
        (b"[{]", {"Content-Type": "application/json"}, 400, "BAD_JSON"),
        (b'{"a": 1}', {"Content-Type": "application/json"}, 400, "NOT_AN_ARRAY"),
        (b"[]", {"Content-Type": "application/json"}, 400, "EMPTY_BATCH"),
        ("[{\"name\": \"张三\"}]".encode("gbk"), {"Content-Type": "application/json"}, 400, "BAD_ENCODING"),
        (b'{"a":1}\n{oops\n', {"Content-Type": "application/x-ndjson"}, 400, "BAD_JSON"),
        (b"<xml/>", {"Content-Type": "application/xml"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"[]", {}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b"not gzip", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "BAD_GZIP"),
        (gzip.compress(b'[{"a": 1}]', mtime=0) + b"trailing garbage", {"Content-Type": "application/json", "Content-Encoding": "gzip"},
         400, "BAD_GZIP"),
        (gzip.compress(b'[{"a": 1}]', mtime=0)[:-6], {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400, "BAD_GZIP"),
    ],
)
def test_bad_requests_store_nothing(api, engine, content, headers, status, code):
    client, _, auth, _ = api
    r = client.post(URL, content=content, headers={**auth, **headers})
    assert (r.status_code, error(r)) == (status, code), r.text
    assert stored(engine) == 0


@pytest.mark.parametrize("kind", ["application/json", "application/x-ndjson"])
def test_a_leading_byte_order_mark_is_dropped(api, engine, orgs, kind):
    """A .NET client's Encoding.UTF8 writes a BOM before the body: the batch is read as sent;
    a byte that is no UTF-8 further on is still named at its place in the body as sent."""
    client, _, auth, _ = api
    recs = records(orgs, n=2)
    body = b"\n".join(orjson.dumps(r) for r in recs) if kind.endswith("ndjson") else orjson.dumps(recs)
    r = client.post(URL, content=codecs.BOM_UTF8 + body, headers={**auth, "Content-Type": kind})
    assert r.status_code == 200 and r.json()["counts"]["accepted"] == 2, r.text
    bad = client.post(URL, content=codecs.BOM_UTF8 + b'[{"a": "\xff"}]', headers={**auth, "Content-Type": "application/json"})
    assert error(bad) == "BAD_ENCODING" and "第12字节" in bad.json()["error"]["message"]


def test_limits_and_unknown_dataset(api, engine, orgs, monkeypatch):
    client, _, auth, _ = api
    monkeypatch.setattr(push, "MAX_RECORDS", 3)
    r = client.post(URL, json=records(orgs, n=5), headers=auth)
    assert (r.status_code, error(r)) == (413, "TOO_MANY_RECORDS")
    monkeypatch.setattr(push, "MAX_BODY_BYTES", 100)
    r = client.post(URL, json=records(orgs, n=2), headers=auth)
    assert (r.status_code, error(r)) == (413, "BODY_TOO_LARGE")
    bomb = gzip.compress(b"[" + b" " * 10_000 + b"]")
    r = client.post(URL, content=bomb, headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert (r.status_code, error(r)) == (413, "BODY_TOO_LARGE")
    r = client.post("/api/v1/datasets/nope/records", json=[{}], headers=auth)
    assert (r.status_code, error(r)) == (404, "UNKNOWN_DATASET")
    assert stored(engine) == 0


def test_database_down_answers_503_with_retry_after():
    dead = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 1})
    client = TestClient(create_app(dead), raise_server_exceptions=False)
    r = client.post(URL, json=[{}], headers={"Authorization": "Bearer phip_x"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert error(r) == "DATABASE_UNAVAILABLE"


def test_rate_limit_answers_429_per_institution(engine, orgs):
    from phip.api.limits import RateLimiter

    client = TestClient(create_app(engine, limiter=RateLimiter(per_minute=60, burst=2)))
    _, key = create_key(engine, orgs[0][0])
    _, other = create_key(engine, orgs[1][0])
    batch = records(orgs, n=1)
    codes = [client.post(URL, json=batch, headers={"X-API-Key": key}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.post(URL, json=batch, headers={"X-API-Key": key})
    assert error(r) == "RATE_LIMITED" and int(r.headers["Retry-After"]) >= 1
    # another institution has its own bucket
    assert client.post(URL, json=[{k: v for k, v in batch[0].items() if k not in ("org_code", "org_name")}],
                       headers={"X-API-Key": other}).status_code == 200


def test_metrics_count_requests_and_records(api, orgs, monkeypatch):
    client, _, auth, _ = api
    batch = records(orgs, n=4)
    batch[0] = {**batch[0], "sex_code": "7"}
    client.post(URL, json=batch, headers=auth)
    monkeypatch.setenv("PHIP_METRICS_TOKEN", "scrape-token-for-tests")
    text = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-for-tests"}).text
    assert 'phip_records_total{dataset="outpatient_visit",outcome="rejected"}' in text
    assert 'phip_http_requests_total{method="POST",route="/api/v1/datasets/{dataset}/records",status="200"}' in text
    assert "phip_http_request_seconds_bucket" in text


def test_database_dying_mid_request_answers_503_and_writes_nothing(api, engine, orgs):
    """The connection dies after the records are written but before the batch commits: the
    sender gets 503 + Retry-After, nothing of the batch is stored, and the resend succeeds."""
    import sqlite3

    from sqlalchemy import event, text

    client, org, auth, _ = api
    client = TestClient(client.app, raise_server_exceptions=False)
    batch = records(orgs, n=8)

    def die(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip().upper().startswith("INSERT INTO INGEST_DAILY"):
            if conn.dialect.name == "postgresql":
                pid = conn.connection.dbapi_connection.info.backend_pid
                with engine.connect() as killer:
                    killer.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            else:
                raise sqlite3.OperationalError("disk I/O error")

    event.listen(engine, "before_cursor_execute", die)
    try:
        r = client.post(URL, json=batch, headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", die)
    assert r.status_code == 503 and r.headers["Retry-After"] and error(r) == "DATABASE_UNAVAILABLE"
    engine.dispose()
    assert stored(engine) == 0
    again = client.post(URL, json=batch, headers=auth)
    assert again.status_code == 200 and again.json()["counts"]["accepted"] == 8


def test_every_endpoint_documents_examples_that_tell_the_truth(api, engine):
    """/docs shows an example answer (and request body) for every endpoint, and the examples
    are not fiction: the example visit is accepted as sent, the schema example is a part of
    the served schema, and every documented error code is one the API really answers with."""
    from phip.api import examples

    client, org, auth, _ = api
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        if not path.startswith("/api/"):
            continue  # pages and probes
        for method, op in ops.items():
            ok = op["responses"]["200"]["content"]
            assert any("example" in media for media in ok.values()), f"{method.upper()} {path}: no example"
            for status, answer in op["responses"].items():
                if status not in ("200", "422"):
                    example = next(iter(answer["content"].values()))["example"]
                    assert example["error"]["code"], f"{method.upper()} {path} {status}"
            if "requestBody" in op:
                assert all("example" in media or "examples" in media for media in op["requestBody"]["content"].values())

    sent = client.post(URL, json=[examples.EXAMPLE_VISIT], headers=auth).json()
    assert sent["counts"]["accepted"] == 1, sent
    served = client.get("/api/v1/standard/outpatient_visit/schema").json()
    assert examples.SCHEMA["required"] == served["required"] and examples.SCHEMA["title"] == served["title"]
    for name, prop in examples.SCHEMA["properties"].items():
        assert prop.items() <= served["properties"][name].items()
    listed = {d["code"]: d for d in client.get("/api/v1/standard").json()["datasets"]}
    assert examples.STANDARD_INDEX["datasets"][0] == listed["outpatient_visit"]
    source = "".join(p.read_text(encoding="utf-8") for p in (Path(push.__file__), Path(push.__file__).with_name("errors.py"),
                                                             Path(push.__file__).with_name("limits.py"), Path(push.__file__).with_name("keyauth.py")))
    for code, _, _ in examples.ERRORS.values():
        assert f'"{code}"' in source, code


def test_nul_characters_get_a_clear_400_never_a_retry(api, engine, orgs):
    """U+0000 cannot be compared or stored in PostgreSQL text. In a pushed record it rejects
    that record alone (NUL_CHARACTER on its field) and the feedback lists it; in an
    address or parameter it is a 400 before any route runs; a value the database refuses
    anyway is a 400 BAD_DATA, never the 503 that tells the sender to retry the same thing."""
    from tests.web_support import PASSWORD, login
    from phip.accounts import create_user

    client, org, auth, _ = api
    batch = records(orgs, n=3)
    batch[1] = {**batch[1], "dept_name": "儿科\x00"}
    r = client.post(URL, content=json.dumps(batch, ensure_ascii=False), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"]["accepted"] == 2 and body["counts"]["rejected"] == 1
    assert [(f["code"], f["field"]) for f in body["rejections"][0]["findings"]] == [("NUL_CHARACTER", "dept_name")]
    fb = client.get("/api/v1/feedback", params={"since": "2020-01-01 00:00:00"}, headers=auth).json()
    assert [i["record_key"] for i in fb["items"]] == [batch[1]["visit_no"]]
    assert "NUL_CHARACTER" in json.dumps(fb["items"][0], ensure_ascii=False)
    for path in (f"/api/v1/receipts/{body['batch_id']}%00", "/api/v1/feedback?since=2026-11-21%0000:00:00",
                 "/api/v1/standard/outpatient_visit%00/schema", "/api/v1/empi/persons?name=%E5%BC%A0%00"):
        answer = client.get(path, headers=auth)
        assert answer.status_code == 400 and error(answer) == "NUL_CHARACTER", (path, answer.text)
    create_user(engine, "ops", PASSWORD, display_name="值班员")
    login(client)
    token = client.get("/api/v1/empi/session").json()["csrf_token"]
    merge = client.post("/api/v1/empi/merge", json={"survivor": "P\x00", "retired": "Q"}, headers={"X-CSRF-Token": token})
    assert merge.status_code in (400, 404), merge.text  # SQLite finds no such person; PostgreSQL refuses the value
    if engine.dialect.name == "postgresql":
        assert error(merge) == "BAD_DATA" and "U+0000" in merge.json()["error"]["message"]
    assert stored(engine) == 2


def test_parameter_errors_are_worded_in_chinese(api):
    client, _, auth, _ = api
    r = client.get("/api/v1/feedback", params={"limit": 0}, headers=auth)
    assert r.status_code == 400 and r.json()["error"] == {"code": "BAD_REQUEST", "message": "请求参数错误：【limit】应不小于 1",
                                                         "field": "limit"}
    r = client.get("/api/v1/feedback", params={"limit": "many"}, headers=auth)
    assert r.json()["error"]["message"] == "请求参数错误：【limit】应为整数"


def test_every_gzip_member_is_read(api, engine, orgs):
    """gzip(part 1) + gzip(part 2), as ``cat a.gz b.gz`` makes: both parts are stored (zlib
    alone stops after the first member, which stored part 1 and answered 200)."""
    client, _, auth, _ = api
    batch = records(orgs, n=6)
    lines = [json.dumps(r, ensure_ascii=False) for r in batch]
    payload = gzip.compress("\n".join(lines[:3]).encode() + b"\n") + gzip.compress("\n".join(lines[3:]).encode())
    r = client.post(URL, content=payload, headers={**auth, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["counts"]["accepted"] == 6, r.text
    assert stored(engine) == 6


def test_deep_nesting_rejects_that_record_only(api, engine, orgs):
    """A valid record followed by a thousand nested arrays: the valid one is stored, the other
    rejected with its reason; the batch never fails on Python's recursion limit."""
    client, _, auth, _ = api
    batch = records(orgs, n=2)
    deep = "[" * 1000 + "]" * 1000
    key_deep = json.dumps({**batch[1], "visit_no": "X"})[:-1] + ', "extra": ' + deep + "}"
    body = "[" + json.dumps(batch[0], ensure_ascii=False) + "," + deep + "," + key_deep.replace('"visit_no": "X"', '"visit_no": ' + deep) + "]"
    r = client.post(URL, content=body.encode(), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    counts = r.json()["counts"]
    assert counts["accepted"] == 1 and counts["rejected"] == 2
    assert stored(engine) == 1
    with engine.connect() as conn:
        lines = conn.execute(select(m.BatchFinding.idx).where(m.BatchFinding.rejected.is_(True))).scalars().all()
        kept = conn.execute(select(m.RejectedRecord.payload, m.RejectedRecord.times_seen)).all()
    assert sorted(lines) == [1, 2]  # the receipt's lines, one per rejected record
    # what is kept of both is the same marker, so as content they are one rejection seen twice
    assert [(p, n) for p, n in kept] == [({"_too_deep": "嵌套超过32层，原文未保存"}, 2)]


def test_full_batch_slots_answer_503_with_retry_after(api, engine, orgs, monkeypatch):
    """A server process stores MAX_CONCURRENT_BATCHES batches at once; one more waits BUSY_WAIT
    seconds for a slot, then is told to come back (503 + Retry-After), nothing stored, instead
    of holding its body in memory and a connection of the pool."""
    client, _, auth, _ = api
    monkeypatch.setattr(push, "BUSY_WAIT", 0.2)
    sem = client.app.state.batch_slots
    taken = [sem.acquire(timeout=1) for _ in range(push.MAX_CONCURRENT_BATCHES)]
    try:
        r = client.post(URL, json=records(orgs, n=2), headers=auth)
        assert r.status_code == 503 and error(r) == "SERVER_BUSY" and int(r.headers["Retry-After"]) > 0
        assert stored(engine) == 0
    finally:
        for ok in taken:
            if ok:
                sem.release()
    assert client.post(URL, json=records(orgs, n=2), headers=auth).status_code == 200


def test_an_exhausted_connection_pool_answers_503_not_500(tmp_path, orgs):
    """Every connection of the process busy for the pool's whole timeout (forty concurrent
    pushes drained it in a key check): 503 SERVER_BUSY with Retry-After, not a 500."""
    from phip.orgs.service import seed_institutions
    from phip.store.db import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}", pool_size=1, max_overflow=0, pool_timeout=0.2)
    upgrade(engine)
    seed_institutions(engine)
    _, key = create_key(engine, orgs[0][0])
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    held = engine.connect()  # the one connection, busy
    try:
        r = client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503 and error(r) == "SERVER_BUSY" and r.headers["Retry-After"]
    finally:
        held.close()
    assert client.get("/api/v1/feedback", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    engine.dispose()


def test_unreadable_bodies_are_said_in_chinese(api, engine):
    """The JSON decoder's English reason (Input is a zero-length, empty document; depth limit
    exceeded; no low surrogate) was put inside the Chinese message; now the reason and the
    place are said in Chinese. An encoding the API does not read is 415, not BAD_JSON."""
    client, _, auth, _ = api
    json_body = {**auth, "Content-Type": "application/json"}
    for body, said in ((b"", "内容为空"), (b"[" * 2000 + b"]" * 2000, "嵌套层数过多"),
                       (b'["\\ud800"]', "不成对"), (b"[1e999]", "数值超出范围"), (b"[1,]", "第1行第3列：多余的逗号")):
        r = client.post(URL, content=body, headers=json_body)
        message = r.json()["error"]["message"]
        assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_JSON" and said in message, (body[:20], message)
        assert not any("a" <= ch.lower() <= "z" for ch in message.replace("JSON", "")), message
    r = client.post(URL, content=b'{"a":1}\n[1,]\n', headers={**auth, "Content-Type": "application/x-ndjson"})
    assert "第2行不是有效的JSON（第3列：多余的逗号）" in r.json()["error"]["message"]
    for encoding in ("deflate", "br", "gzip, gzip"):
        r = client.post(URL, content=b"[]", headers={**json_body, "Content-Encoding": encoding})
        assert r.status_code == 415 and r.json()["error"]["code"] == "UNSUPPORTED_ENCODING", (encoding, r.text)
    assert client.post(URL, content=b"[]", headers={**json_body, "Content-Encoding": "identity"}).status_code != 415
    assert stored(engine) == 0

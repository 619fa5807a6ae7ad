"""Never write to a source: the sqlglot guard refuses writing SQL before it is sent, and the
session itself is read-only on MariaDB, PostgreSQL and SQLite. The guard is fuzzed with the
corpus tests/data/guard_corpus.yaml (write and side-effect forms of four dialects, each refused;
legitimate extraction queries, each passed), and a real MariaDB with its general log on proves
that the refused forms never reach the server. Also: mapping-file errors, secrets from the
environment or a secrets file, masked URLs."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from phip.synth import his_synth
from phip.collect.guard import ReadOnlyViolation, check_query
from phip.collect.mapping import MappingError, load_mapping, resolve_url
from phip.collect.runner import Collector
from phip.runtime import build_pipeline
from phip.collect.source import mask_url, open_source
from tests.collect_support import EXAMPLE, SUFFIX, demo_mapping, execute, source_url, stored

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "guard_corpus.yaml").read_text(encoding="utf-8"))

REFUSED = [
    ("UPDATE MZ_GHXX SET BRXM = 'x'", "mysql", "RO_NOT_SELECT"),
    ("DELETE FROM BR_JBXX", "postgresql", "RO_NOT_SELECT"),
    ("SELECT * FROM BR_JBXX; DROP TABLE BR_JBXX", "mysql", "RO_MULTI"),
    ("SELECT 1; SELECT 2", "sqlite", "RO_MULTI"),
    ("CALL sync_patients()", "mysql", "RO_PROCEDURE"),
    ("EXEC dbo.sync_patients", "mssql", "RO_PROCEDURE"),
    ("SELECT * INTO BR_COPY FROM BR_JBXX", "postgresql", "RO_SELECT_INTO"),
    ("SELECT BRXM FROM BR_JBXX INTO OUTFILE '/tmp/p.csv'", "mysql", "RO_SELECT_INTO"),
    ("SELECT * FROM BR_JBXX FOR UPDATE", "mysql", "RO_LOCKING"),
    ("SELECT * FROM BR_JBXX LOCK IN SHARE MODE", "mysql", "RO_LOCKING"),
    ("WITH d AS (DELETE FROM br_jbxx RETURNING *) SELECT * FROM d", "postgresql", "RO_WRITE_IN_QUERY"),
    ("SELECT nextval('seq_brid')", "postgresql", "RO_FUNCTION"),
    ("SELECT SLEEP(100) FROM BR_JBXX", "mysql", "RO_FUNCTION"),
    ("PRAGMA query_only = 0", "sqlite", "RO_NOT_SELECT"),
    ("", "mysql", "RO_EMPTY"),
]


@pytest.mark.parametrize(("sql", "dialect", "code"), REFUSED)
def test_guard_refuses(sql, dialect, code):
    with pytest.raises(ReadOnlyViolation) as exc:
        check_query(sql, dialect)
    assert exc.value.code == code
    assert re.search(r"[\u4e00-\u9fff]", exc.value.message)  # a Chinese reason


@pytest.mark.parametrize("sql", [
    "SELECT * FROM BR_JBXX",
    "select BRID, BRXM from BR_JBXX where XGSJ >= '2026-01-01';",
    "WITH z AS (SELECT JZXH FROM MZ_ZDXX WHERE ZDXH = 1) SELECT v.* FROM MZ_JZJL v JOIN z ON z.JZXH = v.JZXH",
    "SELECT BRID FROM BR_JBXX UNION ALL SELECT BRID FROM MZ_GHXX",
    "SELECT ';' AS semi FROM BR_JBXX -- a comment; not a statement",
])
def test_guard_passes_plain_selects(sql):
    check_query(sql, "mysql")


@pytest.mark.parametrize("form", CORPUS["refused"], ids=lambda f: f"{f['dialect']}:{f['sql'][:40]}")
def test_corpus_form_refused(form):
    with pytest.raises(ReadOnlyViolation) as exc:
        check_query(form["sql"], form["dialect"], "数据集x的查询")
    assert exc.value.code == form["code"], exc.value.message
    assert exc.value.message.startswith("数据集x的查询") and re.search(r"[\u4e00-\u9fff]", exc.value.message)


@pytest.mark.parametrize("form", CORPUS["passed"], ids=lambda f: f"{f['dialect']}:{f['sql'][:40]}")
def test_corpus_legitimate_select_passes(form):
    check_query(form["sql"], form["dialect"])


def test_corpus_covers_four_dialects_and_executable_comments():
    refused = CORPUS["refused"]
    per_dialect = {d: sum(f["dialect"] == d for f in refused) for d in ("mysql", "postgresql", "mssql", "oracle")}
    assert len(refused) >= 60 and min(per_dialect.values()) >= 10, per_dialect
    codes = {f["code"] for f in refused}
    assert {"RO_EXEC_COMMENT", "RO_HINT", "RO_LOCKING", "RO_FUNCTION", "RO_SELECT_INTO", "RO_MULTI",
            "RO_WRITE_IN_QUERY", "RO_PROCEDURE", "RO_NOT_SELECT", "RO_AMBIGUOUS"} <= codes
    assert sum("/*!" in f["sql"] or "/*M!" in f["sql"] for f in refused) >= 6


@pytest.mark.parametrize(("sql", "found"), [
    ("SELECT p.* /*!, SLEEP(0.5) AS s */ FROM BR_JBXX p", "/*!, SLEEP(0.5) AS s */"),
    ("SELECT /*+ SET_VAR(sort_buffer_size = 16M) */ BRID FROM BR_JBXX", "SET_VAR"),
    ("SELECT * FROM BR_JBXX WITH (UPDLOCK)", "UPDLOCK"),
    ("SELECT DBMS_LOCK.SLEEP(5) FROM dual", "DBMS_LOCK"),
    ("SELECT pg_sleep(5)", "PG_SLEEP"),
    ("SELECT * FROM BR_JBXX FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM BR_JBXX LOCK IN SHARE MODE", "LOCK IN SHARE MODE"),
])
def test_message_names_the_construct_found(sql, found):
    dialect = "mssql" if "UPDLOCK" in sql else "oracle" if "DBMS" in sql else "mysql"
    with pytest.raises(ReadOnlyViolation) as exc:
        check_query(sql, dialect)
    assert found in exc.value.message


def test_executable_comment_in_mapping_file_refused_on_load():
    text_ = EXAMPLE.read_text(encoding="utf-8").replace(
        "    from: BR_JBXX\n", "    query: SELECT p.* /*!, SLEEP(0.5) AS s */ FROM BR_JBXX p\n", 1)
    text_ = text_.replace('"${HIS_DEMO_URL}"', '"mysql+pymysql://ro:pw@127.0.0.1:1/his"')
    with pytest.raises(MappingError) as exc:
        load_mapping(text_)
    assert exc.value.code == "RO_EXEC_COMMENT" and "patient_info" in exc.value.message


def test_writing_mapping_refused_before_any_connection(tmp_path):
    text_ = EXAMPLE.read_text(encoding="utf-8").replace("    from: BR_JBXX\n", "    query: UPDATE BR_JBXX SET BRXM = 'x'\n", 1)
    # The URL points nowhere: loading must fail on the guard, not on a connection.
    text_ = text_.replace('"${HIS_DEMO_URL}"', '"mysql+pymysql://ro:pw@127.0.0.1:1/his"')
    with pytest.raises(MappingError) as exc:
        load_mapping(text_)
    assert exc.value.code == "RO_NOT_SELECT" and "patient_info" in exc.value.message


@pytest.mark.parametrize("backend", ["mariadb", "postgresql", "sqlite"])
def test_source_session_is_read_only_and_run_refuses_a_smuggled_write(backend, engine, tmp_path):
    url = source_url(backend, "guard", tmp_path)
    his_synth.build(url, seed=2, days=1, visits=3, admissions=0)
    mapping = demo_mapping(url, tmp_path)
    table = "mz_ghxx" if backend == "postgresql" else "MZ_GHXX"
    source = open_source(mapping)
    try:
        with pytest.raises(Exception) as exc, source.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET BRXM = 'x'"))
        assert "read" in str(exc.value).lower() or "readonly" in str(exc.value).lower()
    finally:
        source.dispose()
    # A write slipped into a loaded mapping is refused again by the collector before sending.
    job = mapping.job("outpatient_registration")
    job.query, job.from_ = f"UPDATE {table} SET BRXM = 'x'", None
    (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_registration"])
    assert result.status == "failed" and result.code == "RO_NOT_SELECT"
    check = create_engine(url)
    with check.connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE BRXM = 'x'")).scalar() == 0
    check.dispose()
    assert stored(engine, "outpatient_registration") == {}


@pytest.mark.parametrize(("edit", "code"), [
    (("      name: BRXM\n", "      nickname: BRXM\n"), "UNKNOWN_FIELD"),
    (("      name: BRXM\n", ""), "REQUIRED_UNMAPPED"),
    (("codes: sex_cn}", "codes: no_such_table}"), "UNKNOWN_CODES"),
    (("    from: BR_JBXX\n", "    from: BR_JBXX\n    query: SELECT 1\n"), "MAPPING_INVALID"),
    (("dataset: patient_info", "dataset: no_such_dataset"), "UNKNOWN_DATASET"),
    (("source:\n", "source: [\n"), "MAPPING_YAML"),
])
def test_mapping_errors_are_precise(edit, code):
    text_ = EXAMPLE.read_text(encoding="utf-8").replace(*edit, 1)
    with pytest.raises(MappingError) as exc:
        load_mapping(text_)
    assert exc.value.code == code


@pytest.mark.parametrize(("edit", "said"), [
    (("source:\n", "source: [\n"), "方括号没有闭合"),
    (("source:\n", "source:\n\t"), "制表符"),
    ((EXAMPLE.read_text(encoding="utf-8"), "tag: !!python/object:os.system x\n"), "不允许的YAML标签"),
])
def test_a_mapping_that_is_no_yaml_is_said_in_chinese_with_its_place(edit, said):
    """PyYAML's English (expected ',' or ']', but got '<stream end>') was the whole message."""
    with pytest.raises(MappingError) as exc:
        load_mapping(EXAMPLE.read_text(encoding="utf-8").replace(*edit, 1))
    message = exc.value.message
    assert exc.value.code == "MAPPING_YAML" and said in message and "行第" in message, message
    assert not any("a" <= ch.lower() <= "z" for ch in message.replace("YAML", "").replace("Tab", "").replace("python", "")), message


def test_secrets_from_environment_then_file_never_shown(tmp_path, monkeypatch):
    mapping = load_mapping(EXAMPLE.read_text(encoding="utf-8").replace(
        '"${HIS_DEMO_URL}"', '"mysql+pymysql://phip_ro:${HIS_PW}@10.0.0.5:3306/his"'))
    monkeypatch.delenv("HIS_PW", raising=False)
    monkeypatch.setenv("PHIP_SECRETS_FILE", str(tmp_path / "secrets.env"))
    with pytest.raises(MappingError) as exc:
        resolve_url(mapping.source)
    assert exc.value.code == "SECRET_MISSING" and "HIS_PW" in exc.value.message
    (tmp_path / "secrets.env").write_text("# hospital passwords\nHIS_PW='from-file-7'\n", encoding="utf-8")
    assert resolve_url(mapping.source) == "mysql+pymysql://phip_ro:from-file-7@10.0.0.5:3306/his"
    monkeypatch.setenv("HIS_PW", "from-env-9")
    url = resolve_url(mapping.source)
    assert url.endswith("phip_ro:from-env-9@10.0.0.5:3306/his")
    assert mask_url(url) == "mysql+pymysql://phip_ro:***@10.0.0.5:3306/his"


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_refused_forms_never_reach_mariadb(engine, tmp_path):
    """Every MySQL form of the corpus, sent through the collector by a real read-only account:
    MariaDB's general log (to a table) must show no statement of that account, not even a
    connection, until a legitimate job runs as the control (which it must show)."""
    admin = source_url("mariadb", "glog", tmp_path)
    his_synth.build(admin, seed=3, days=1, visits=3, admissions=0)
    database = make_url(admin).database
    user, password = f"phip_glog{SUFFIX}"[:32], uuid.uuid4().hex[:12]
    server = create_engine(admin, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        before = conn.execute(text("SELECT @@global.general_log, @@global.log_output")).one()
    try:
        for host in ("%", "localhost"):
            execute(admin, f"CREATE OR REPLACE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
            execute(admin, f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'")
        with server.connect() as conn:
            conn.execute(text("SET GLOBAL log_output = 'TABLE'"))
            conn.execute(text("SET GLOBAL general_log = ON"))
            started = conn.execute(text("SELECT NOW(6)")).scalar()
        url = make_url(admin).set(username=user, password=password).render_as_string(hide_password=False)
        mapping = demo_mapping(url, tmp_path)
        job = mapping.job("outpatient_registration")
        original = job.query, job.from_
        forms = [f for f in CORPUS["refused"] if f["dialect"] == "mysql" and f.get("run")]
        assert len(forms) >= 50
        for form in forms:
            job.query, job.from_ = form["sql"], None
            (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_registration"])
            assert result.status == "failed" and result.code == form["code"], (form["sql"], result.error)
        with server.connect() as conn:
            control = conn.execute(text("SELECT NOW(6)")).scalar()
        job.query, job.from_ = original
        (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_registration"])
        assert result.status == "ok" and result.accepted > 0
        with server.connect() as conn:
            conn.execute(text("SET GLOBAL general_log = OFF"))
            logged = conn.execute(text(
                "SELECT event_time, command_type, CONVERT(argument USING utf8mb4) FROM mysql.general_log "
                "WHERE event_time >= :t AND LOCATE(:u, user_host) > 0"), {"t": started, "u": f"[{user}]"}).all()
    finally:
        with server.connect() as conn:
            conn.execute(text(f"SET GLOBAL general_log = {int(before[0])}"))
            conn.execute(text(f"SET GLOBAL log_output = '{before[1]}'"))
        for host in ("%", "localhost"):
            execute(admin, f"DROP USER IF EXISTS '{user}'@'{host}'")
        server.dispose()
    early = [row for row in logged if row[0] < control]
    assert early == [], early  # nothing, not even a connection, while the forms were refused
    assert any(row[1] == "Connect" for row in logged) and any("MZ_GHXX" in row[2] for row in logged)  # the log works
    sent = "\n".join(row[2] for row in logged)
    for marker in ("SLEEP", "FOR UPDATE", "/*!", "/*M!", "OUTFILE", "BENCHMARK", "GET_LOCK", "LOAD_FILE", "DELETE",
                   "UPDATE BR_JBXX", "DROP", "SET_VAR"):
        assert marker not in sent, marker


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_refused_forms_never_reach_postgresql(engine, tmp_path):
    """The PostgreSQL forms of the corpus through the collector: the HIS database's session
    counter (pg_stat_database.sessions, read from another database) does not move — not one
    connection was opened — until a legitimate control job runs (which moves it)."""
    import time

    url = source_url("postgresql", "pglog", tmp_path)
    his_synth.build(url, seed=3, days=1, visits=3, admissions=0)
    database = make_url(url).database
    stats = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")

    def sessions() -> int:
        with stats.connect() as conn:
            return conn.execute(text("SELECT sessions FROM pg_stat_database WHERE datname = :d"), {"d": database}).scalar()

    try:
        time.sleep(1.2)  # the builder's sessions reach the counter when they end
        before = sessions()
        mapping = demo_mapping(url, tmp_path)
        job = mapping.job("outpatient_registration")
        original = job.query, job.from_
        forms = [f for f in CORPUS["refused"] if f["dialect"] == "postgresql"]
        for form in forms:
            job.query, job.from_ = form["sql"], None
            (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_registration"])
            assert result.status == "failed" and result.code == form["code"], (form["sql"], result.error)
        time.sleep(1.2)
        assert sessions() == before, "a refused form opened a connection to the source"
        job.query, job.from_ = original
        (result,) = Collector(engine, build_pipeline(engine)).run(mapping, ["outpatient_registration"])
        assert result.status == "ok" and result.accepted > 0
        deadline = time.monotonic() + 10
        while sessions() == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sessions() > before  # the counter does see the collector's connections
    finally:
        stats.dispose()

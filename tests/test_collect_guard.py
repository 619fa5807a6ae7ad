"""Never write to a source: the sqlglot guard refuses writing SQL before it is sent, and the
session itself is read-only on MariaDB, PostgreSQL and SQLite. Also: mapping-file errors,
secrets from the environment or a secrets file, masked URLs."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, text

from phip.collect import his_synth
from phip.collect.guard import ReadOnlyViolation, check_query
from phip.collect.mapping import MappingError, load_mapping, resolve_url
from phip.collect.runner import Collector
from phip.collect.source import mask_url, open_source
from tests.collect_support import EXAMPLE, demo_mapping, source_url, stored

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
    (result,) = Collector(engine).run(mapping, ["outpatient_registration"])
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

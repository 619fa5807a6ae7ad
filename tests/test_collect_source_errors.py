"""Source errors classified (phip.collect.source_errors) on real MariaDB and PostgreSQL: an
account without SELECT on one table, a wrong password (PostgreSQL here trusts local
connections: an unknown role instead), a mapping with a syntax error, a missing table and a
missing cursor column. Each gives its code and a Chinese message with the fix, the number of
attempts (1: no retry, no backoff), the driver's English text in the log only, and the
source's other jobs behave as documented (run on, or skipped after a login failure)."""

from __future__ import annotations

import logging
import re
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from phip.collect import state
from phip.synth import his_synth
from phip.collect.runner import Collector
from phip.runtime import build_pipeline
from tests.collect_support import SUFFIX, demo_mapping, execute, source_url

JOBS = ["patient_info", "fee_detail", "exam_report"]
LOCKED = {"mariadb": "MZ_FYMX", "postgresql": "mz_fymx"}  # the table the account may not read (fee_detail)
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _account(backend: str, admin: str) -> tuple[str, str]:
    """A read-only account with SELECT on every table but LOCKED's; (user, password)."""
    user, password = f"phip_ro{SUFFIX}"[:32], uuid.uuid4().hex[:12]
    database = make_url(admin).database
    check = create_engine(admin)
    tables = inspect(check).get_table_names()
    check.dispose()
    if backend == "mariadb":
        for host in ("%", "localhost"):
            execute(admin, f"CREATE OR REPLACE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
            for table in tables:
                if table != LOCKED[backend]:
                    execute(admin, f"GRANT SELECT ON `{database}`.`{table}` TO '{user}'@'{host}'")
    else:
        _drop_account(backend, admin, user)
        execute(admin, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        execute(admin, f"GRANT CONNECT ON DATABASE {database} TO {user}")
        execute(admin, f"GRANT USAGE ON SCHEMA public TO {user}")
        for table in tables:
            if table != LOCKED[backend]:
                execute(admin, f"GRANT SELECT ON {table} TO {user}")
    return user, password


def _drop_account(backend: str, admin: str, user: str) -> None:
    if backend == "mariadb":
        for host in ("%", "localhost"):
            execute(admin, f"DROP USER IF EXISTS '{user}'@'{host}'")
        return
    server = create_engine(admin, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}).first():
            conn.execute(text(f"DROP OWNED BY {user}"))
            conn.execute(text(f"DROP ROLE {user}"))
    server.dispose()


def _as(admin: str, user: str, password: str) -> str:
    return make_url(admin).set(username=user, password=password).render_as_string(hide_password=False)


def _attempts(engine, job: str) -> int:
    (run,) = [r for r in state.runs_of(engine, "his_demo") if r.job == job]
    return run.attempts


@pytest.fixture(params=["mariadb", "postgresql"])
def his(request, tmp_path):
    """(backend, admin URL, read-only user, password) of a fresh HIS database."""
    backend = request.param
    admin = source_url(backend, "errs", tmp_path)
    his_synth.build(admin, seed=6, days=1, visits=4, admissions=0)
    user, password = _account(backend, admin)
    yield backend, admin, user, password
    _drop_account(backend, admin, user)


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_access_denied_on_one_table_fails_that_job_once(his, engine, tmp_path, caplog):
    backend, admin, user, password = his
    mapping = demo_mapping(_as(admin, user, password), tmp_path, retries=3, backoff="5s")
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, logger="phip.collect"):
        results = {r.job: r for r in Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping, JOBS)}
    denied = results["fee_detail"]
    assert denied.status == "failed" and denied.code == "SOURCE_ACCESS_DENIED", denied.error
    assert f"来源账号{user}无权限" in denied.error and LOCKED[backend] in denied.error and "SELECT" in denied.error
    assert "GRANT SELECT ON" in denied.error  # the fix
    message = denied.error.split("] ", 1)[1]
    assert "denied" not in message.lower() and CHINESE.search(message)  # the driver's English: log only
    assert "denied" in caplog.text.lower() and password not in caplog.text
    assert waits == [] and _attempts(engine, "fee_detail") == 1
    # The account's other tables are readable: those jobs run on.
    assert results["patient_info"].status == "ok" and results["patient_info"].accepted > 0
    assert results["exam_report"].status == "ok"


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_login_failure_is_not_retried_and_skips_the_other_jobs(his, engine, tmp_path):
    backend, admin, user, password = his
    # MariaDB: a wrong password. PostgreSQL here trusts local connections (any password
    # passes): an account that does not exist is the same login failure.
    bad_user = user if backend == "mariadb" else f"{user}_nobody"
    mapping = demo_mapping(_as(admin, bad_user, "wrong-Pw-9"), tmp_path, retries=3, backoff="5s")
    waits: list[float] = []
    results = Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping, JOBS)
    first, rest = results[0], results[1:]
    assert first.status == "failed" and first.code == "SOURCE_AUTH_FAILED", first.error
    assert "登录失败" in first.error and bad_user in first.error and "wrong-Pw-9" not in first.error
    assert "access denied" not in first.error.lower() and "does not exist" not in first.error
    assert waits == [] and _attempts(engine, first.job) == 1
    assert [(r.status, r.code) for r in rest] == [("skipped", "SOURCE_AUTH_FAILED")] * 2


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_mapping_errors_name_the_job_and_what_is_wrong(his, engine, tmp_path, caplog):
    backend, admin, user, password = his
    fee = LOCKED[backend]
    mapping = demo_mapping(admin, tmp_path, retries=3, backoff="5s")
    # A syntax error the guard's parser accepts but the server does not: an empty IN list, on line 3.
    mapping.job("fee_detail").query, mapping.job("fee_detail").from_ = f"SELECT *\nFROM {fee}\nWHERE MXID IN ()", None
    # A table that does not exist.
    mapping.job("exam_report").from_ = "JC_NO_SUCH"
    waits: list[float] = []
    with caplog.at_level(logging.WARNING, logger="phip.collect"):
        results = {r.job: r for r in Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping, JOBS)}
    syntax = results["fee_detail"]
    assert syntax.status == "failed" and syntax.code == "MAPPING_SQL_ERROR", syntax.error
    assert "数据集fee_detail的映射查询有SQL错误" in syntax.error and "第3行" in syntax.error and "syntax" not in syntax.error
    assert "syntax" in caplog.text.lower()
    missing = results["exam_report"]
    assert missing.status == "failed" and missing.code == "MAPPING_UNKNOWN_TABLE", missing.error
    assert "JC_NO_SUCH" in missing.error.upper() and "源库中没有表" in missing.error and "exist" not in missing.error
    assert waits == [] and _attempts(engine, "fee_detail") == 1 and _attempts(engine, "exam_report") == 1
    assert results["patient_info"].status == "ok"  # another job's mistake stops nobody else


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize("backend", ["mariadb"])
def test_missing_cursor_column_named(backend, engine, tmp_path):
    admin = source_url(backend, "errcol", tmp_path)
    his_synth.build(admin, seed=7, days=1, visits=2, admissions=0, tables={"MZ_FYMX"})
    mapping = demo_mapping(admin, tmp_path)
    job = mapping.job("fee_detail")
    job.cursor = job.cursor.model_copy(update={"column": "NO_SUCH_COL"})
    (result,) = Collector(engine, build_pipeline(engine), sleep=lambda s: None).run(mapping, ["fee_detail"])
    assert result.code == "MAPPING_UNKNOWN_COLUMN" and "NO_SUCH_COL" in result.error and "cursor.column" in result.error


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_unknown_database_skips_the_source(engine, tmp_path):
    url = source_url("mariadb", "errdb", tmp_path).replace("phip_his_errdb", "phip_his_never_created")
    mapping = demo_mapping(url, tmp_path, retries=3)
    waits: list[float] = []
    results = Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping, JOBS)
    assert results[0].code == "SOURCE_UNKNOWN_DATABASE" and "phip_his_never_created" in results[0].error
    assert waits == [] and [r.status for r in results[1:]] == ["skipped", "skipped"]


def test_classification_survives_the_reader_process():
    """The reader process raises SourceError; it comes back pickled with its decision."""
    import pickle

    from phip.collect.source import SourceError

    error = SourceError("来源账号…无权限", code="SOURCE_ACCESS_DENIED", retry=False, source_wide=False, driver="(1142, …)")
    back = pickle.loads(pickle.dumps(error))
    assert (back.message, back.code, back.retry, back.source_wide, back.driver) == (
        "来源账号…无权限", "SOURCE_ACCESS_DENIED", False, False, "(1142, …)")


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_account_without_access_to_the_database_skips_the_source(engine, tmp_path):
    admin = source_url("mariadb", "errnodb", tmp_path)
    his_synth.build(admin, seed=8, days=1, visits=1, admissions=0, tables={"BR_JBXX"})
    user, password = f"phip_none{SUFFIX}"[:32], uuid.uuid4().hex[:12]
    for host in ("%", "localhost"):
        execute(admin, f"CREATE OR REPLACE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
    try:
        mapping = demo_mapping(_as(admin, user, password), tmp_path, retries=3)
        waits: list[float] = []
        results = Collector(engine, build_pipeline(engine), sleep=waits.append).run(mapping, JOBS)
    finally:
        for host in ("%", "localhost"):
            execute(admin, f"DROP USER IF EXISTS '{user}'@'{host}'")
    first = results[0]
    assert first.code == "SOURCE_ACCESS_DENIED" and f"来源账号{user}无权限读取数据库" in first.error, first.error
    assert "GRANT SELECT ON" in first.error and waits == []
    assert [(r.status, r.code) for r in results[1:]] == [("skipped", "SOURCE_ACCESS_DENIED")] * 2

"""One error base (issue 20): every PHIP error carries a code and a Chinese message, survives
the trip through a worker process, and is translated by one table in the API and one in the
CLI."""

from __future__ import annotations

import pickle

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from phip.api import errors as api_errors
from phip.cli import exit_code, exit_codes, main
from phip.collect.guard import ReadOnlyViolation
from phip.collect.mapping import MappingError
from phip.collect.source import SourceError
from phip.collect.state import LeaseLost, SourceBusy
from phip.empi.errors import EmpiError
from phip.errors import PhipError
from phip.ingest.errors import IngestError, UnknownDataset, UnknownInstitution
from phip.ingest.readers import FileFormatError
from phip.quality.rules import RuleError
from phip.quality.schedule import ScheduleError
from phip.reports.period import PeriodError, parse_period
from phip.reports.sheet import SheetError
from phip.standard.catalog import StandardError
from phip.standard.checks import IdNumberError
from phip.accounts import AuthError

EXAMPLES = [
    (UnknownInstitution("医疗机构“X”未在省平台登记"), "UNKNOWN_ORG", None),
    (UnknownDataset("数据集“Y”不存在"), "UNKNOWN_DATASET", None),
    (FileFormatError("BAD_CSV", "第3行不是有效的CSV"), "BAD_CSV", None),
    (MappingError("MAPPING_YAML", "映射文件不是有效的YAML"), "MAPPING_YAML", None),
    (ReadOnlyViolation("QUERY_NOT_SELECT", "只允许SELECT"), "QUERY_NOT_SELECT", None),
    (SourceError("连接被拒绝", "SOURCE_DOWN", retry=False, source_wide=True, driver="refused"), "SOURCE_DOWN", None),
    (LeaseLost("数据源的采集租约已失效"), "LEASE_LOST", None),
    (EmpiError("PERSON_NOT_FOUND", "居民“ab”不存在", 404, "person_id"), "PERSON_NOT_FOUND", "person_id"),
    (PeriodError("无法识别的统计期“x”"), "BAD_PERIOD", None),
    (SheetError("BAD_XLSX", "无法读取Excel文件"), "BAD_XLSX", None),
    (ScheduleError("PHIP_QUALITY_AT 应为 HH:MM"), "BAD_QUALITY_AT", None),
    (IdNumberError("ID_CHECKSUM", "身份证号码校验位错误"), "ID_CHECKSUM", None),
    (AuthError("LOGIN_FAILED", "用户名或密码错误"), "LOGIN_FAILED", None),
    (StandardError("value domain X has duplicate codes"), "BAD_STANDARD", None),
    (RuleError("duplicate rule id R1"), "BAD_RULES", None),
    (api_errors.ApiError(429, "RATE_LIMITED", "请求过于频繁", headers={"Retry-After": "3"}), "RATE_LIMITED", None),
]


@pytest.mark.parametrize(("exc", "code", "field"), EXAMPLES, ids=[type(e[0]).__name__ for e in EXAMPLES])
def test_every_error_is_a_phip_error_that_pickles_whole(exc, code, field):
    """Errors raised in the validation or reader process come back with every attribute."""
    assert isinstance(exc, PhipError)
    assert exc.as_dict() == {"code": code, "message": exc.message, "field": field}
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert back.__dict__ == exc.__dict__ and str(back) == str(exc) and back.as_dict() == exc.as_dict()


def test_classes_keep_their_old_bases_and_texts():
    """Callers that catch ValueError, or log str(), see what they saw before."""
    for cls in (FileFormatError, MappingError, ReadOnlyViolation, PeriodError, SheetError, ScheduleError,
                IdNumberError, AuthError, StandardError, RuleError):
        assert issubclass(cls, ValueError), cls
    for cls in (IngestError, SourceError, SourceBusy, EmpiError):
        assert not issubclass(cls, ValueError), cls
    assert str(MappingError("A", "b")) == "[A] b" and str(ReadOnlyViolation("A", "b")) == "[A] b"
    assert str(UnknownInstitution("未登记")) == "未登记"
    assert not issubclass(MappingError, ReadOnlyViolation) and not issubclass(ReadOnlyViolation, MappingError)


def test_api_table_answers_each_listed_class_and_leaves_others_a_500():
    app = FastAPI()
    api_errors.install(app)
    raised = {
        "org": UnknownInstitution("医疗机构“X”未在省平台登记"),
        "empi": EmpiError("PERSON_MERGED", "居民已被合并", 409, "person_id"),
        "api": api_errors.ApiError(429, "RATE_LIMITED", "请求过于频繁", headers={"Retry-After": "3"}),
        "bug": StandardError("inconsistent"),
    }

    @app.get("/{what}")
    def route(what: str) -> None:
        raise raised[what]

    client = TestClient(app, raise_server_exceptions=False)
    org = client.get("/org")
    assert org.status_code == 404
    assert org.json() == {"error": {"code": "UNKNOWN_ORG", "message": "医疗机构“X”未在省平台登记", "field": None}}
    empi = client.get("/empi")
    assert empi.status_code == 409 and empi.json()["error"]["field"] == "person_id"
    api = client.get("/api")
    assert api.status_code == 429 and api.headers["Retry-After"] == "3"
    assert client.get("/bug").status_code == 500
    with pytest.raises(LookupError):
        api_errors.http_status(StandardError("x"))


def test_cli_table_gives_exit_two_to_user_errors_and_none_to_bugs():
    assert exit_code(LeaseLost("x")) == 2  # through SourceBusy
    assert exit_code(ReadOnlyViolation("A", "b")) == 2 and exit_code(UnknownDataset("x")) == 2
    assert exit_code(StandardError("x")) is None and exit_code(RuleError("x")) is None
    from phip.synth.simulate import PushFailed

    assert exit_code(PushFailed("x")) == 2  # phip simulate push
    assert all(issubclass(cls, PhipError) for cls in exit_codes())


def test_cli_says_an_escaped_error_once_with_its_code(tmp_path, monkeypatch, capsys):
    """A PeriodError escapes `phip reports upload`; main says it as the command did before."""
    monkeypatch.setenv("PHIP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PHIP_DATABASE_URL", raising=False)
    with pytest.raises(PeriodError) as expected:
        parse_period("2021-13")
    with pytest.raises(SystemExit) as exit_:
        main(["reports", "upload", "--period", "2021-13"])
    stderr = "".join(capsys.readouterr().err.split("\n"))
    assert exit_.value.code == 2
    assert stderr.count("错误 [BAD_PERIOD]") == 1 and expected.value.message in stderr, stderr


@pytest.mark.parametrize(("args", "said"), [
    (["standard", "show", "nosuch"], "错误 [UNKNOWN_DATASET] 数据集“nosuch”不存在；用 phip standard list 查看全部数据集"),
    (["quality", "run", "--dataset", "nosuch"], "错误 [UNKNOWN_DATASET] 数据集“nosuch”不存在"),
    # the window's end overflowed the calendar: a traceback before
    (["quality", "run", "--from", "9999-12-30", "--to", "9999-12-31"], "错误 [BAD_DATE] 日期“9999-12-30”的年份超出范围（1900–2999）"),
    (["supervision", "run", "--from", "0001-01-01"], "错误 [BAD_DATE] 日期“0001-01-01”的年份超出范围（1900–2999）"),
])
def test_a_refused_command_value_is_said_once_by_main(tmp_path, monkeypatch, capsys, args, said):
    """fail() in the commands raises CommandError; main prints it as the commands used to."""
    monkeypatch.setenv("PHIP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PHIP_DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(args)
    stderr = "".join(capsys.readouterr().err.split("\n"))
    assert exit_.value.code == 2 and stderr.count("错误 [") == 1 and said in stderr, stderr

"""Source errors classified (源库错误分类): what went wrong at a hospital database, and whether
trying again can help.

A permission error used to be called SOURCE_DOWN and retried four times, with the driver's
English text as the only explanation. Here every driver error of a source becomes a
:class:`~phip.collect.source.SourceError` with a stable code, a Chinese message that says what
to fix, whether it is retried and whether it stops the source's other jobs:

============================  =====  ===========  =============================================
code                          retry  other jobs   when
============================  =====  ===========  =============================================
SOURCE_AUTH_FAILED            no     skipped      wrong user or password, host not allowed
SOURCE_ACCESS_DENIED          no     run / skip   no SELECT on a table or column (run), no
                                                  access to the database at all (skipped)
SOURCE_UNKNOWN_DATABASE       no     skipped      the URL names a database that does not exist
MAPPING_UNKNOWN_TABLE         no     run          a table of the mapping does not exist
MAPPING_UNKNOWN_COLUMN        no     run          a column (or the cursor column) does not exist
MAPPING_SQL_ERROR             no     run          the mapping's SQL is wrong (syntax, function,
                                                  type), with the line and position when given
SOURCE_READ_ONLY              no     run          the read-only session refused a write
SOURCE_DOWN                   yes    skipped      network, server down or restarting, dropped
                                                  connection, lock conflict, too many connections
============================  =====  ===========  =============================================

The keys are the drivers' own error numbers: PyMySQL's MySQL/MariaDB errno, psycopg's
SQLSTATE (and, for failures while connecting, where libpq gives no SQLSTATE, its FATAL text),
sqlite3's result-code name. The driver's text goes to the log only (password scrubbed, as
before): it may quote values of the hospital's rows.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import URL

from .source import SourceError, describe_error, mask_url

# -- the drivers' codes --------------------------------------------------------------------

_MYSQL = {
    1045: "SOURCE_AUTH_FAILED", 1698: "SOURCE_AUTH_FAILED", 1251: "SOURCE_AUTH_FAILED", 1130: "SOURCE_AUTH_FAILED",
    1044: "SOURCE_ACCESS_DENIED", 1142: "SOURCE_ACCESS_DENIED", 1143: "SOURCE_ACCESS_DENIED",
    1227: "SOURCE_ACCESS_DENIED", 1370: "SOURCE_ACCESS_DENIED",
    1049: "SOURCE_UNKNOWN_DATABASE",
    1146: "MAPPING_UNKNOWN_TABLE", 1109: "MAPPING_UNKNOWN_TABLE",
    1054: "MAPPING_UNKNOWN_COLUMN",
    1064: "MAPPING_SQL_ERROR", 1149: "MAPPING_SQL_ERROR", 1305: "MAPPING_SQL_ERROR", 1052: "MAPPING_SQL_ERROR",
    1060: "MAPPING_SQL_ERROR", 1066: "MAPPING_SQL_ERROR", 1055: "MAPPING_SQL_ERROR", 1111: "MAPPING_SQL_ERROR",
    1248: "MAPPING_SQL_ERROR", 1241: "MAPPING_SQL_ERROR", 1242: "MAPPING_SQL_ERROR", 1222: "MAPPING_SQL_ERROR",
    1582: "MAPPING_SQL_ERROR", 1583: "MAPPING_SQL_ERROR", 1584: "MAPPING_SQL_ERROR", 1630: "MAPPING_SQL_ERROR",
    1792: "SOURCE_READ_ONLY", 1290: "SOURCE_READ_ONLY",
    # retried: 2003 can't connect, 2005 unknown host, 2006 gone away, 2013 lost connection,
    # 2055, 1040 too many connections, 1053 shutdown, 1205 lock wait, 1213 deadlock,
    # 1317 interrupted, 1927 killed, 3024 max_execution_time, 4031 idle timeout
}
_PG = {  # SQLSTATE → code; classes by their first two characters below
    "28P01": "SOURCE_AUTH_FAILED", "28000": "SOURCE_AUTH_FAILED",
    "42501": "SOURCE_ACCESS_DENIED",
    "3D000": "SOURCE_UNKNOWN_DATABASE",
    "42P01": "MAPPING_UNKNOWN_TABLE", "3F000": "MAPPING_UNKNOWN_TABLE",
    "42703": "MAPPING_UNKNOWN_COLUMN",
    "25006": "SOURCE_READ_ONLY",
}
_PG_CLASSES = {"42": "MAPPING_SQL_ERROR", "22": "MAPPING_SQL_ERROR", "21": "MAPPING_SQL_ERROR"}
# libpq's FATAL text while connecting (no SQLSTATE reaches psycopg then).
_PG_CONNECT = [
    (re.compile(r'password authentication failed for user "([^"]+)"'), "SOURCE_AUTH_FAILED"),
    (re.compile(r'role "([^"]+)" does not exist'), "SOURCE_AUTH_FAILED"),
    (re.compile(r"no pg_hba\.conf entry"), "SOURCE_AUTH_FAILED"),
    (re.compile(r'database "([^"]+)" does not exist'), "SOURCE_UNKNOWN_DATABASE"),
    (re.compile(r'permission denied for database "([^"]+)"'), "SOURCE_ACCESS_DENIED"),
]
_SQLITE = {"SQLITE_AUTH": "SOURCE_ACCESS_DENIED", "SQLITE_PERM": "SOURCE_ACCESS_DENIED",
           "SQLITE_CANTOPEN": "SOURCE_UNKNOWN_DATABASE", "SQLITE_NOTADB": "SOURCE_UNKNOWN_DATABASE",
           "SQLITE_READONLY": "SOURCE_READ_ONLY"}
_SQLITE_TEXT = [(re.compile(r"no such table: (\S+)"), "MAPPING_UNKNOWN_TABLE"),
                (re.compile(r"no such column: (\S+)"), "MAPPING_UNKNOWN_COLUMN"),
                (re.compile(r"syntax error|no such function|misuse|ambiguous column|wrong number"), "MAPPING_SQL_ERROR")]

#: Codes that stop the source's other jobs: they would meet the same wall.
SOURCE_WIDE = frozenset({"SOURCE_AUTH_FAILED", "SOURCE_UNKNOWN_DATABASE", "SOURCE_DOWN"})

# Names the drivers quote: identifiers of the hospital's schema, never row values.
_MY_TABLE = re.compile(r"for table [`']?([^`'\s]+)[`']?(?:\.[`']([^`']+)[`'])?")
_MY_COLUMN = re.compile(r"for column '([^']+)' in table '([^']+)'")
_MY_DENIED_PRIV = re.compile(r"^(\w+) command denied")
_MY_QUOTED = re.compile(r"'([^']+)'")
_MY_NEAR = re.compile(r"near '(.*)' at line (\d+)", re.S)
_PG_QUOTED = re.compile(r'"([^"]+)"')
_PG_DENIED = re.compile(r"permission denied for (\w+) (\S+)")
_PG_BARE = re.compile(r"^\w+ (\S+) does not exist")  # column src.x does not exist
_PG_NEAR = re.compile(r'at or near "([^"]*)"')
_PG_LINE = re.compile(r"^LINE (\d+):", re.M)


def classify(exc: BaseException, *, backend: str, source: str, url: URL | None, stage: str,
             job: str | None = None, sent: str | None = None, own: str | None = None) -> SourceError | None:
    """The :class:`SourceError` for a driver failure, or None when ``exc`` is no driver error.

    ``stage`` is ``connect``, ``query`` (executing) or ``read`` (fetching); ``sent`` the SQL as
    sent and ``own`` the mapping's own query inside it (to turn a position into a line of it).
    """
    if not _is_driver_error(exc):
        return None
    orig = getattr(exc, "orig", None) or exc
    user = (url.username if url is not None else None) or "（未指定）"
    code, detail = _code(orig, backend, stage)
    if (detail.get("name") or "").lower().startswith("src."):  # the collector's own alias for the mapping's query
        detail["name"] = detail["name"][4:]
    where = f"数据源{source}"
    job_where = f"数据集{job}" if job else where
    if code == "SOURCE_AUTH_FAILED":
        message = (f"{where}登录失败：账号{user}的用户名或密码错误，或该账号不允许从平台服务器登录。"
                   "请核对连接串中的账号与密码（密码放在环境变量或 secrets 文件中），并请医院DBA确认账号允许的登录主机")
    elif code == "SOURCE_ACCESS_DENIED":
        what = f"读取{detail['object']}" if detail.get("object") else "访问该数据库"
        privilege = detail.get("privilege") or "SELECT"
        grant = (f"GRANT SELECT ON {detail['grant_on']} TO {user}" if detail.get("grant_on")
                 else f"GRANT {privilege} ON … TO {user}")
        message = (f"{where if stage == 'connect' else job_where}：来源账号{user}无权限{what}（缺少{privilege}权限）。"
                   f"请医院DBA只授予只读权限，例如 {grant}；不要授予写权限")
    elif code == "SOURCE_UNKNOWN_DATABASE":
        name = f"“{detail['name']}”" if detail.get("name") else ""
        message = f"{where}：连接串中的数据库{name}不存在。请核对连接串中的数据库名（或SQLite文件路径）"
    elif code == "MAPPING_UNKNOWN_TABLE":
        name = f"“{detail['name']}”" if detail.get("name") else ""
        message = (f"{job_where}：源库中没有表{name}。请核对映射文件中 from/query 的表名"
                   "（PostgreSQL 未加引号的名称会转为小写；可用 phip collect probe 列出源库的表）")
    elif code == "MAPPING_UNKNOWN_COLUMN":
        name = f"“{detail['name']}”" if detail.get("name") else ""
        message = (f"{job_where}：源库中没有列{name}。请核对映射查询的列名，以及增量游标 cursor.column "
                   "是否在查询结果中（可用 phip collect probe 列出源库的列）")
    elif code == "MAPPING_SQL_ERROR":
        position = _position(orig, backend, detail, sent, own)
        message = (f"{job_where}的映射查询有SQL错误{position}。请在源库的客户端中执行该查询核对语法、函数与类型，"
                   "修改映射文件后重试；数据库的原始报错见采集日志")
    elif code == "SOURCE_READ_ONLY":
        message = f"{job_where}的查询试图写入源库，被只读会话拒绝。请检查映射查询，只允许单条只读SELECT"
    else:
        reason = detail.get("reason") or "网络不通、数据库服务未启动或连接中断"
        message = (f"无法连接{where}（{_masked(url)}）：{reason}。请确认数据库服务已启动、平台服务器到源库的网络和端口已开通；"
                   "平台按退避间隔自动重试，原始报错见采集日志")
        if stage != "connect":
            message = f"{where}（{_masked(url)}）读取中断：{reason}。平台按退避间隔自动重试，从已提交的位置继续；原始报错见采集日志"
    return SourceError(message, code=code, retry=code == "SOURCE_DOWN",
                       source_wide=code in SOURCE_WIDE or (stage == "connect" and code == "SOURCE_ACCESS_DENIED"),
                       driver=describe_error(exc, url))  # the driver's own words: for the log only


def _masked(url: URL | None) -> str:
    return mask_url(url) if url is not None else "未知"


def _is_driver_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError | OSError | ConnectionError) or type(exc).__module__.split(".")[0] in (
        "pymysql", "psycopg", "sqlite3", "MySQLdb", "oracledb", "pyodbc", "pymssql")


def _code(orig: BaseException, backend: str, stage: str) -> tuple[str, dict[str, Any]]:
    """(code, names the driver gave: object, privilege, name, reason …)."""
    args = getattr(orig, "args", ())
    text = str(args[1]) if len(args) > 1 and isinstance(args[0], int) else str(orig)
    errno = args[0] if args and isinstance(args[0], int) else None
    sqlstate = getattr(orig, "sqlstate", None)
    detail: dict[str, Any] = {}
    if errno is not None and backend in ("mysql", "mariadb"):
        code = _MYSQL.get(errno, "SOURCE_DOWN")
        if code == "SOURCE_ACCESS_DENIED":
            priv = _MY_DENIED_PRIV.search(text)
            detail["privilege"] = priv.group(1).upper() if priv else None
            column = _MY_COLUMN.search(text)
            table = _MY_TABLE.search(text)
            if column:
                detail["object"] = f"表{column.group(2)}的列{column.group(1)}"
                detail["grant_on"] = column.group(2)
            elif table:
                name = ".".join(p for p in table.groups() if p)
                detail["object"] = f"表{name}"
                detail["grant_on"] = name
            elif errno == 1044 and (quoted := _MY_QUOTED.findall(text)):
                detail["object"] = f"数据库{quoted[-1]}"
                detail["grant_on"] = f"{quoted[-1]}.*"
        elif code in ("MAPPING_UNKNOWN_TABLE", "MAPPING_UNKNOWN_COLUMN", "SOURCE_UNKNOWN_DATABASE"):
            quoted = _MY_QUOTED.findall(text)
            detail["name"] = quoted[0] if quoted else None
        elif code == "MAPPING_SQL_ERROR" and (near := _MY_NEAR.search(text)):
            detail["near"], detail["line"] = near.group(1), int(near.group(2))
        elif code == "SOURCE_DOWN":
            detail["reason"] = _mysql_reason(errno)
        return code, detail
    if backend == "postgresql":
        if sqlstate:
            code = _PG.get(sqlstate) or _PG_CLASSES.get(sqlstate[:2], "SOURCE_DOWN")
            diag = getattr(orig, "diag", None)
            primary = (getattr(diag, "message_primary", None) or text.splitlines()[0]) if diag else text
            if code == "SOURCE_ACCESS_DENIED" and (denied := _PG_DENIED.search(primary)):
                kind, name = denied.group(1), denied.group(2).strip('"')
                kinds = {"table": "表", "relation": "表", "view": "视图", "schema": "模式", "function": "函数",
                         "sequence": "序列", "database": "数据库", "column": "列"}
                detail["object"] = f"{kinds.get(kind, kind)}{name}"
                detail["privilege"] = {"schema": "USAGE", "function": "EXECUTE", "database": "CONNECT"}.get(kind, "SELECT")
                if detail["privilege"] == "SELECT":
                    detail["grant_on"] = name
            elif code in ("MAPPING_UNKNOWN_TABLE", "MAPPING_UNKNOWN_COLUMN", "SOURCE_UNKNOWN_DATABASE"):
                named = _PG_QUOTED.search(primary) or _PG_BARE.search(primary)
                detail["name"] = named.group(1) if named else None
            elif code == "MAPPING_SQL_ERROR":
                near = _PG_NEAR.search(primary)
                detail["near"] = near.group(1) if near else None
                line = _PG_LINE.search(text)
                detail["line"] = int(line.group(1)) if line else None
                detail["sqlstate"] = sqlstate
            elif code == "SOURCE_DOWN":
                detail["reason"] = _pg_reason(sqlstate)
            return code, detail
        for pattern, code in _PG_CONNECT:
            if (match := pattern.search(text)) is not None:
                if code == "SOURCE_UNKNOWN_DATABASE":
                    detail["name"] = match.group(1)
                if code == "SOURCE_ACCESS_DENIED":
                    detail.update(object=f"数据库{match.group(1)}", privilege="CONNECT")
                return code, detail
        detail["reason"] = "无法建立连接" if stage == "connect" else "连接中断"
        return "SOURCE_DOWN", detail
    if backend == "sqlite":
        name = getattr(orig, "sqlite_errorname", None) or ""
        code = _SQLITE.get(name)
        if code is None and name in ("SQLITE_ERROR", ""):
            for pattern, candidate in _SQLITE_TEXT:
                if (match := pattern.search(text)) is not None:
                    code = candidate
                    if pattern.groups:
                        detail["name"] = match.group(1)
                    break
        if code is None:
            detail["reason"] = "数据库文件被锁定或不可读" if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) else None
            return "SOURCE_DOWN", detail
        return code, detail
    return "SOURCE_DOWN", detail


def _mysql_reason(errno: int) -> str:
    return {2003: "无法建立连接（服务未启动或端口不通）", 2005: "无法解析主机名", 2006: "连接已断开", 2013: "连接中断",
            2055: "连接中断", 1040: "源库连接数已满", 1053: "源库正在关闭", 1205: "等待锁超时", 1213: "与其他事务死锁",
            1317: "查询被中断", 1927: "连接被源库终止", 3024: "查询超过源库的最长执行时间",
            4031: "连接因空闲被源库断开"}.get(errno, "网络不通、数据库服务未启动或连接中断")


def _pg_reason(sqlstate: str) -> str:
    if sqlstate.startswith("08"):
        return "连接失败或中断"
    return {"57P01": "源库正在关闭或连接被管理员终止", "57P02": "源库崩溃后正在关闭", "57P03": "源库正在启动，暂不接受连接",
            "53300": "源库连接数已满", "40001": "与其他事务冲突", "40P01": "与其他事务死锁",
            "57014": "查询被取消或超时"}.get(sqlstate, "源库暂时不可用")


def _position(orig: BaseException, backend: str, detail: dict[str, Any], sent: str | None, own: str | None) -> str:
    """（第N行第M列，“…”附近）within the mapping's own query, as far as the driver says."""
    parts: list[str] = []
    if detail.get("line") is not None and sent and own and sent.find(own) >= 0:
        # Both servers count lines of what was sent; the collector's wrapper (and psycopg's
        # DECLARE … CURSOR FOR) put nothing but one line's prefix before the mapping's query.
        parts.append(f"第{detail['line'] - sent[:sent.find(own)].count(chr(10))}行")
    near = detail.get("near")
    if near:
        near = " ".join(near.split())
        parts.append(f"“{near[:40]}{'…' if len(near) > 40 else ''}”附近")
    elif detail.get("sqlstate"):
        parts.append(f"SQLSTATE {detail['sqlstate']}")
    return f"（{'，'.join(parts)}）" if parts else ""

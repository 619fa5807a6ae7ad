"""Read-only guard (只读保护): the platform must never write to a hospital database.

Every query of a mapping is parsed with sqlglot in the source's dialect before anything is
sent. Only one SELECT (with or without WITH, UNION allowed) passes; data-changing statements,
several statements in one string, procedure calls, ``SELECT … INTO`` (creates a table or
writes a file), locking clauses (``FOR UPDATE`` blocks the hospital's own transactions),
data-changing statements hidden in a CTE and functions with side effects are refused with a
stable code and a Chinese message. A query sqlglot cannot parse is refused too: what cannot be
checked does not run. The session is also opened read-only (:mod:`phip.collect.source`), so
the guard and the database each stop a write on their own.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warnings are ours to report

#: SQLAlchemy backend name → sqlglot dialect.
DIALECTS = {
    "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres", "sqlite": "sqlite",
    "mssql": "tsql", "oracle": "oracle",
}

#: Functions that change state, sleep the server, read its files or reach other servers.
FORBIDDEN_FUNCTIONS = frozenset({
    "NEXTVAL", "SETVAL", "SET_CONFIG", "PG_SLEEP", "PG_TERMINATE_BACKEND", "PG_CANCEL_BACKEND",
    "PG_READ_FILE", "PG_READ_BINARY_FILE", "PG_LS_DIR", "LO_IMPORT", "LO_EXPORT", "DBLINK", "DBLINK_EXEC",
    "SLEEP", "BENCHMARK", "GET_LOCK", "RELEASE_LOCK", "LOAD_FILE", "SYS_EXEC", "SYS_EVAL",
    "XP_CMDSHELL", "OPENROWSET", "OPENQUERY", "OPENDATASOURCE", "LOAD_EXTENSION", "WRITEFILE", "READFILE",
})
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable, exp.Copy)


class ReadOnlyViolation(ValueError):
    """A mapping query that must not be sent to a hospital database."""

    def __init__(self, code: str, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:  # raised in the reader process, re-raised here
        return type(self), (self.code, self.message)


def check_query(sql: str, dialect: str | None = None, where: str = "映射查询") -> exp.Expression:
    """Return the parsed statement when ``sql`` is one read-only query; raise otherwise.

    ``dialect`` is a SQLAlchemy backend name (mysql, postgresql, …) or a sqlglot dialect.
    ``where`` names the query in the message (e.g. "数据集 patient_info 的查询").
    """
    read = DIALECTS.get(dialect or "", dialect) or None
    if not sql or not sql.strip():
        raise ReadOnlyViolation("RO_EMPTY", f"{where}为空")
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as exc:
        if _has_into(sql, read):
            raise ReadOnlyViolation("RO_SELECT_INTO", f"{where}含有SELECT … INTO（会建表或写文件），不允许执行") from None
        first = str(exc).splitlines()[0][:200]
        raise ReadOnlyViolation("RO_PARSE", f"{where}无法解析，为安全起见不予执行：{first}") from None
    if len(statements) != 1:
        raise ReadOnlyViolation("RO_MULTI", f"{where}包含{len(statements)}条语句，只允许一条SELECT语句")
    stmt = statements[0]
    if isinstance(stmt, exp.Command | exp.Execute) or type(stmt).__name__ in ("Call", "ExecuteSql"):
        name = stmt.this if isinstance(stmt, exp.Command) else "EXEC"
        raise ReadOnlyViolation("RO_PROCEDURE", f"{where}是存储过程调用或命令（{str(name).upper()}），不允许执行")
    body = stmt.this if isinstance(stmt, exp.Subquery) else stmt
    if not isinstance(body, exp.Query) or isinstance(stmt, exp.Values):
        kind = stmt.key.upper()
        raise ReadOnlyViolation("RO_NOT_SELECT", f"{where}是{kind}语句，只允许SELECT查询（不得增删改数据或结构）")
    for node in stmt.walk():
        if isinstance(node, _WRITES):
            raise ReadOnlyViolation("RO_WRITE_IN_QUERY", f"{where}中含有写操作（{node.key.upper()}），不允许执行")
        if isinstance(node, exp.Into):
            raise ReadOnlyViolation("RO_SELECT_INTO", f"{where}含有SELECT … INTO（会建表或写文件），不允许执行")
        if isinstance(node, exp.Lock):
            raise ReadOnlyViolation("RO_LOCKING", f"{where}含有加锁子句（FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE），会阻塞医院业务，不允许执行")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name in FORBIDDEN_FUNCTIONS:
                raise ReadOnlyViolation("RO_FUNCTION", f"{where}调用了有副作用的函数{name}()，不允许执行")
    return stmt


def _has_into(sql: str, read: str | None) -> bool:
    """MySQL's ``INTO OUTFILE`` after FROM defeats the parser; spot the keyword in the tokens."""
    try:
        tokens = sqlglot.Dialect.get_or_raise(read).tokenize(sql)
    except Exception:  # noqa: BLE001 - untokenisable text is refused as unparsable anyway
        return False
    return any(t.token_type.name == "INTO" or t.text.upper() == "INTO" for t in tokens)

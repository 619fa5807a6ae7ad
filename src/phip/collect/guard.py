"""Read-only guard (只读保护): the platform must never write to a hospital database.

Every query of a mapping is checked in the source's dialect before anything is sent, in
three passes, each refusing with a stable code and a Chinese message naming what it found:

1. **Lexical** (sqlglot's tokenizer for the dialect): the text between tokens must be
   whitespace and ordinary comments. A comment the server executes is refused — MySQL
   ``/*! … */`` and ``/*!50000 … */``, MariaDB ``/*M! … */`` — in every dialect, because
   sqlglot (like any parser) reads it as a comment while MySQL runs it. Optimizer hints
   (``/*+ … */``, Oracle ``--+``) pass only when they hold plan hints of the list kept in
   ``data/guard_rules.yaml`` (no ``SET_VAR``, no pg_hint_plan ``Set``, no quotes or ``;``).
   A string literal with a backslash before a quote is refused: whether ``\\'`` ends the
   string depends on server settings (MySQL ``NO_BACKSLASH_ESCAPES``, PostgreSQL
   ``standard_conforming_strings``), so the guard and the server could read two different
   queries.
2. **Syntactic** (sqlglot's parser): only one SELECT (with or without WITH, UNION allowed).
   Data-changing statements, several statements in one string, procedure calls,
   ``SELECT … INTO`` (creates a table, sets a variable or writes a file), locking clauses
   and lock-taking table hints (``FOR UPDATE`` blocks the hospital's own transactions),
   data-changing statements hidden in a CTE, sequence advances and functions with side
   effects (the lists in ``data/guard_rules.yaml``) are refused. A query sqlglot cannot
   parse is refused too: what cannot be checked does not run.
3. **A keyword net** over the tokens: a write keyword (INSERT, UPDATE, DELETE, MERGE, DROP,
   CREATE, ALTER, GRANT, INTO …) anywhere the parser may have swallowed it is refused.

The session is also opened read-only (:mod:`phip.collect.source`), so the guard and the
database each stop a write on their own; the guard is the one that stops SLEEP, locks and
file reads, which a read-only transaction allows.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from phip.errors import PhipError

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" warnings are ours to report

#: SQLAlchemy backend name → sqlglot dialect.
DIALECTS = {
    "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres", "sqlite": "sqlite",
    "mssql": "tsql", "oracle": "oracle",
}
RULES_FILE = Path(__file__).parent / "data" / "guard_rules.yaml"

_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable,
           exp.Copy)
#: Token types that only a write, a session change or a procedure can carry (pass 3).
_NET = {
    TokenType.INSERT: "RO_WRITE_IN_QUERY", TokenType.UPDATE: "RO_WRITE_IN_QUERY",
    TokenType.DELETE: "RO_WRITE_IN_QUERY", TokenType.MERGE: "RO_WRITE_IN_QUERY",
    TokenType.DROP: "RO_WRITE_IN_QUERY", TokenType.CREATE: "RO_WRITE_IN_QUERY",
    TokenType.ALTER: "RO_WRITE_IN_QUERY", TokenType.GRANT: "RO_WRITE_IN_QUERY",
    TokenType.REVOKE: "RO_WRITE_IN_QUERY", TokenType.INTO: "RO_SELECT_INTO",
    TokenType.COMMIT: "RO_NOT_SELECT", TokenType.ROLLBACK: "RO_NOT_SELECT",
    TokenType.EXECUTE: "RO_PROCEDURE", TokenType.PROCEDURE: "RO_PROCEDURE", TokenType.COMMAND: "RO_PROCEDURE",
}
_STRINGS = {TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.BYTE_STRING, TokenType.RAW_STRING,
            TokenType.HEREDOC_STRING, TokenType.UNICODE_STRING, TokenType.HEX_STRING, TokenType.BIT_STRING}
_EXEC_COMMENT = re.compile(r"/\*[Mm]?!")
_HINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HINT_ARG_CHARS = re.compile(r"[A-Za-z0-9_.,@#$\s`\"\u4e00-\u9fff()+\-*]*")
_SNIPPET = 60
_STATEMENT_KEYS = {"insert", "update", "delete", "merge", "create", "drop", "alter", "truncatetable", "copy", "set",
                   "use", "transaction", "commit", "rollback", "pragma", "kill", "values", "describe",
                   "multitableinserts", "analyze", "grant", "revoke"}
_KINDS = {"SET": "SET（修改会话或服务器设置）", "USE": "USE（切换数据库）", "TRANSACTION": "事务控制",
          "COMMIT": "事务控制", "ROLLBACK": "事务控制", "PRAGMA": "PRAGMA（修改数据库设置）"}


class MappingProblem(PhipError, ValueError):
    """A mapping file or query that cannot be used (the base of :class:`ReadOnlyViolation` and
    ``mapping.MappingError``); str() reads ``[code] message``, as pydantic and logs show it."""

    def __init__(self, code: str, message: str):
        super().__init__(code, message, text=f"[{code}] {message}")


class ReadOnlyViolation(MappingProblem):
    """A mapping query that must not be sent to a hospital database."""


@cache
def rules() -> dict[str, Any]:
    """The guard's lists (``data/guard_rules.yaml``), upper-cased, every dialect's together."""
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return {
        "functions": frozenset(n.upper() for names in data["forbidden_functions"].values() for n in names),
        "prefixes": tuple(p.upper() for p in data["forbidden_function_prefixes"]),
        "packages": frozenset(p.upper() for p in data["forbidden_packages"]),
        "columns": frozenset(c.upper() for c in data["forbidden_columns"]),
        "hints": frozenset(h.upper() for h in data["allowed_hints"]),
        "table_hints": frozenset(h.upper() for h in data["allowed_table_hints"]),
    }


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


def check_query(sql: str, dialect: str | None = None, where: str = "映射查询") -> exp.Expression:
    """Return the parsed statement when ``sql`` is one read-only query; raise otherwise.

    ``dialect`` is a SQLAlchemy backend name (mysql, postgresql, …) or a sqlglot dialect.
    ``where`` names the query in the message (e.g. "数据集 patient_info 的查询").
    """
    read = DIALECTS.get(dialect or "", dialect) or None
    if not sql or not sql.strip():
        raise ReadOnlyViolation("RO_EMPTY", f"{where}为空")
    tokens = _lexical(sql, read, where)
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as exc:
        _net(tokens, where)  # a write keyword explains the failure better than "cannot parse"
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
        kind = {"truncatetable": "TRUNCATE", "multitableinserts": "INSERT"}.get(stmt.key, stmt.key).upper()
        if stmt.key not in _STATEMENT_KEYS:  # e.g. SHUTDOWN read as a column name: say the word used
            kind = tokens[0].text.upper()
        raise ReadOnlyViolation("RO_NOT_SELECT", f"{where}是{_KINDS.get(kind, kind)}语句，只允许SELECT查询（不得增删改数据、结构或设置）")
    _syntactic(stmt, where)
    _net(tokens, where)
    return stmt


# -- pass 1: what lies between the tokens -------------------------------------------------------


def _lexical(sql: str, read: str | None, where: str) -> list[Token]:
    dialect = sqlglot.Dialect.get_or_raise(read)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ReadOnlyViolation("RO_PARSE", f"{where}无法解析，为安全起见不予执行：{first}") from None
    tokenizer = dialect.tokenizer_class
    nested = bool(getattr(tokenizer, "NESTED_COMMENTS", False))
    hash_comments = "#" in tokenizer.COMMENTS
    quotes = {q if isinstance(q, str) else q[1] for q in tokenizer.QUOTES} | {"'", '"'}
    # A statement opened by a command keyword (CALL, EXECUTE, REPLACE, RENAME, SHOW …): the
    # tokenizer hands the rest of it over unread, as one string.
    commands = tokenizer.COMMANDS | {TokenType.COMMAND}
    command = next((t for i, t in enumerate(tokens) if t.token_type in commands
                    and (i == 0 or tokens[i - 1].token_type == TokenType.SEMICOLON)), None)
    if command is not None:
        raise ReadOnlyViolation("RO_PROCEDURE", f"{where}是存储过程调用或命令（{command.text.upper()}），不允许执行")
    start = 0
    for token in [*tokens, None]:
        end = token.start if token is not None else len(sql)
        for comment in _comments(sql[start:end], nested, hash_comments, where):
            _check_comment(comment, where)
        if token is None:
            break
        raw = sql[token.start:token.end + 1]
        if token.token_type == TokenType.HINT:
            _check_comment(raw, where)
        elif token.token_type in _STRINGS and "\\" in raw and any(f"\\{q}" in raw for q in quotes):
            raise ReadOnlyViolation("RO_AMBIGUOUS", f"{where}的字符串常量{_snippet(raw)}含有反斜杠加引号：是否转义取决于服务器设置，"
                                                    "平台检查的与服务器执行的可能不是同一条语句。请改用两个单引号（''）表示引号")
        start = token.end + 1
    return tokens


def _comments(gap: str, nested: bool, hash_comments: bool, where: str) -> list[str]:
    """The comments of the text between two tokens; anything else there is refused."""
    found: list[str] = []
    i, n = 0, len(gap)
    while i < n:
        if gap[i].isspace():
            i += 1
        elif gap.startswith("--", i) or (hash_comments and gap[i] == "#"):
            j = gap.find("\n", i)
            j = n if j < 0 else j
            found.append(gap[i:j])
            i = j
        elif gap.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if nested and gap.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif gap.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            found.append(gap[i:j])
            i = j
        else:  # text the tokenizer skipped: the guard cannot tell what the server would do with it
            raise ReadOnlyViolation("RO_AMBIGUOUS", f"{where}含有无法识别的内容“{_snippet(gap[i:])}”，为安全起见不予执行")
    return found


def _check_comment(comment: str, where: str) -> None:
    if _EXEC_COMMENT.search(comment):
        raise ReadOnlyViolation("RO_EXEC_COMMENT", f"{where}含有可执行注释“{_snippet(comment)}”：MySQL/MariaDB 会执行"
                                                   " /*! … */、/*M! … */ 中的内容，不允许使用；请删除该注释")
    if comment.startswith("/*+"):
        body = comment[3:-2] if comment.endswith("*/") else comment[3:]
    elif comment.startswith("--+"):
        body = comment[3:]
    else:
        return
    bad = _bad_hint(body)
    if bad is not None:
        raise ReadOnlyViolation("RO_HINT", f"{where}的优化器提示“{_snippet(comment)}”含有不允许的内容（{_snippet(bad)}）："
                                           "只允许选择执行计划的提示（如 INDEX、MAX_EXECUTION_TIME），不允许修改设置或夹带语句")


def _bad_hint(body: str) -> str | None:
    """None when ``body`` is a list of allowed hints ``NAME`` / ``NAME(args)``; else what is wrong."""
    allowed = rules()["hints"]
    i, n = 0, len(body)
    while i < n:
        if body[i].isspace() or body[i] == ",":
            i += 1
            continue
        match = _HINT_NAME.match(body, i)
        if match is None:
            return body[i:]
        name = match.group().upper()
        if name not in allowed:
            return match.group()
        i = match.end()
        while i < n and body[i].isspace():
            i += 1
        if i < n and body[i] == "(":
            depth, j = 0, i
            while j < n:
                depth += {"(": 1, ")": -1}.get(body[j], 0)
                j += 1
                if depth == 0:
                    break
            args = body[i:j]
            if depth or not _HINT_ARG_CHARS.fullmatch(args):
                return args
            i = j
    return None


# -- pass 2: the statement ---------------------------------------------------------------------


def _syntactic(stmt: exp.Expression, where: str) -> None:
    lists = rules()
    for node in stmt.walk():
        if isinstance(node, exp.Command):
            raise ReadOnlyViolation("RO_PROCEDURE", f"{where}含有无法检查的命令（{str(node.this).upper()}），不允许执行")
        if isinstance(node, _WRITES):
            raise ReadOnlyViolation("RO_WRITE_IN_QUERY", f"{where}中含有写操作（{node.key.upper()}），不允许执行")
        if isinstance(node, exp.Into):
            raise ReadOnlyViolation("RO_SELECT_INTO", f"{where}含有SELECT … INTO（会建表、写变量或写文件），不允许执行")
        if isinstance(node, exp.Lock):
            clause = "FOR UPDATE" if node.args.get("update") else "FOR SHARE / LOCK IN SHARE MODE"
            raise ReadOnlyViolation("RO_LOCKING", f"{where}含有加锁子句（{clause}），会阻塞医院业务，不允许执行")
        if isinstance(node, exp.WithTableHint):
            for hint in node.expressions:
                name = (hint.name if isinstance(hint, exp.Anonymous | exp.Var | exp.Column) else hint.sql()).upper()
                if name not in lists["table_hints"]:
                    raise ReadOnlyViolation("RO_LOCKING", f"{where}含有加锁的表提示 WITH ({name})，会阻塞医院业务，不允许执行；"
                                                          "只允许 NOLOCK、READPAST、INDEX(…) 等不加锁的提示")
        if isinstance(node, exp.NextValueFor):
            raise ReadOnlyViolation("RO_FUNCTION", f"{where}推进了序列（{_snippet(node.sql())}），不允许执行")
        if isinstance(node, exp.Column) and node.name.upper() in lists["columns"]:
            raise ReadOnlyViolation("RO_FUNCTION", f"{where}推进了序列（{_snippet(node.sql())}），不允许执行")
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            package = next((i.name.upper() for i in node.this.find_all(exp.Identifier)
                            if i.name.upper() in lists["packages"]), None)
            if package is not None:
                raise ReadOnlyViolation("RO_FUNCTION", f"{where}调用了有副作用的程序包 {package}（{_snippet(node.sql())}），不允许执行")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name in lists["functions"] or name.startswith(lists["prefixes"]):
                raise ReadOnlyViolation("RO_FUNCTION", f"{where}调用了有副作用的函数{name}()，不允许执行")


# -- pass 3: the keyword net -------------------------------------------------------------------


def _net(tokens: list[Token], where: str) -> None:
    for token in tokens:
        code = _NET.get(token.token_type)
        if code is not None:
            raise ReadOnlyViolation(code, f"{where}含有关键字 {token.text.upper()}（第{token.line}行），"
                                          "只允许单条只读SELECT查询，不允许执行")

"""Command-line usage errors (a missing option, a file that is not there, a value out of
range) said in Chinese with a stable code, like every other error PHIP reports.

Typer raises these before any PHIP code runs and prints them in English. Its vendored Click
no longer goes through gettext, so no message catalog can translate them; :func:`explain`
reads the exception's own fields (parameter, option, possibilities) instead, and keeps
Typer's English detail only for a case it does not know, so nothing is ever hidden.

The exception classes are found through ``typer.BadParameter``'s ancestry rather than
imported: Typer 0.12–0.16 raise Click's own classes, later versions a private copy.
"""

from __future__ import annotations

import re
from typing import Any

import typer

from phip.input_messages import pydantic_error_zh

#: The base class of every usage error Typer raises (Click's ``UsageError``).
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

_KIND = {"option": "选项", "argument": "参数", "parameter": "参数"}

# Typer's English detail of a bad value → Chinese (the value stays as typed). Recent Typer
# words paths itself; numbers and choices it checks with pydantic (phip.input_messages).
_DETAILS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?:file|path|directory) '(.*)' does not exist\.?$", re.S | re.I), "文件“{0}”不存在"),
    (re.compile(r"^(?:file|path) '(.*)' is a directory\.?$", re.S | re.I), "“{0}”是目录，应为文件"),
    (re.compile(r"^(?:directory|path) '(.*)' is a file\.?$", re.S | re.I), "“{0}”是文件，应为目录"),
    (re.compile(r"^(?:file|path|directory) '(.*)' is not readable\.?$", re.S | re.I), "“{0}”没有读取权限"),
    (re.compile(r"^(?:file|path|directory) '(.*)' is not writable\.?$", re.S | re.I), "“{0}”没有写入权限"),
    (re.compile(r"^'?(.*?)'? is not in the range (.*?)\.?$", re.S), "{0} 超出允许范围 {1}"),
    (re.compile(r"^'(.*)' is not a valid integer( range)?\.?$", re.S), "“{0}”不是整数"),
    (re.compile(r"^'(.*)' is not a valid float( range)?\.?$", re.S), "“{0}”不是数值"),
    (re.compile(r"^'(.*)' is not one of (.*?)\.?$", re.S), "“{0}”不是可选值之一：{1}"),
]
_USAGE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Option '(.*)' requires (?:an argument|\d+ arguments)\.?$"), "选项 {0} 后面需要给出值"),
    (re.compile(r"^Option '(.*)' does not take a value\.?$"), "选项 {0} 不带值"),
    (re.compile(r"^Got unexpected extra argument(?:s|\(s\))? \((.*)\)$"), "多余的参数：{0}"),
    (re.compile(r"^No such command '(.*)'\.?$"), "没有命令“{0}”"),
    (re.compile(r"^Missing command\.?$"), "缺少子命令"),
]


def _pydantic_detail(exc: BaseException) -> str | None:
    """The Chinese detail of a value pydantic refused (Typer keeps its error as the cause)."""
    errors = getattr(exc.__cause__, "errors", None)
    if not callable(errors):
        return None
    try:
        first = errors()[0]
    except (IndexError, TypeError):
        return None
    detail = pydantic_error_zh(first)
    if detail is None:
        return None
    value = first.get("input")
    return f"“{value}”{detail}" if isinstance(value, str | int | float) and value != "" else detail


def _translate(text: str, table: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, chinese in table:
        if m := pattern.match(text):
            return chinese.format(*m.groups())
    return text


def _hint(exc: Any) -> str:
    """The parameter as the user types it: ``--org`` or ``FILE``."""
    param = getattr(exc, "param", None)
    if getattr(exc, "param_hint", None):
        hints = exc.param_hint
        return " / ".join(hints) if isinstance(hints, list | tuple) else str(hints)
    if param is None:
        return ""
    if getattr(param, "param_type_name", "") == "argument":
        return (param.metavar or param.name or "").upper()
    opts = [o for o in param.opts if o.startswith("--")] or list(param.opts)
    return " / ".join(opts)


def explain(exc: Exception) -> tuple[str, str]:
    """(stable code, Chinese message) for one usage error."""
    names = {c.__name__ for c in type(exc).__mro__}
    if "MissingParameter" in names:
        param = getattr(exc, "param", None)
        kind = _KIND.get(getattr(exc, "param_type", None) or getattr(param, "param_type_name", ""), "参数")
        return "CLI_MISSING", f"缺少必填{kind} {_hint(exc)}".rstrip()
    if "NoSuchOption" in names:
        message = f"没有选项 {exc.option_name}"  # type: ignore[attr-defined]
        if possibilities := getattr(exc, "possibilities", None):
            message += f"（是否想用：{', '.join(sorted(possibilities))}）"
        return "CLI_NO_SUCH_OPTION", message
    if "BadParameter" in names:
        detail = _pydantic_detail(exc) or _translate(getattr(exc, "message", str(exc)), _DETAILS)
        hint = _hint(exc)
        return "CLI_BAD_VALUE", f"{hint} 的值无效：{detail}" if hint else f"值无效：{detail}"
    return "CLI_USAGE", _translate(getattr(exc, "message", str(exc)), _USAGE)


def help_hint(exc: Exception) -> str:
    """How to read the command's help, when Typer knows which command it was."""
    ctx = getattr(exc, "ctx", None)
    return f"用 {ctx.command_path} --help 查看用法" if ctx is not None else "用 phip --help 查看用法"

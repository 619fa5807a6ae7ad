"""Chinese wording of the input errors that pydantic reports in English.

FastAPI checks request parameters with pydantic, and recent Typer checks command-line
numbers and choices with it too; both hand back pydantic's error records, whose ``type``
and ``ctx`` (the bound, the expected values) are stable where the English ``msg`` is not.
One table serves the API's 400 answers and the CLI's usage errors.
"""

from __future__ import annotations

import re
from typing import Any

_BY_TYPE: dict[str, str] = {
    "missing": "为必填项",
    "greater_than_equal": "应不小于 {ge}",
    "greater_than": "应大于 {gt}",
    "less_than_equal": "应不大于 {le}",
    "less_than": "应小于 {lt}",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数值",
    "float_type": "应为数值",
    "bool_parsing": "应为是/否（true/false）",
    "bool_type": "应为是/否（true/false）",
    "string_type": "应为文本",
    "string_too_short": "长度应不少于 {min_length}",
    "string_too_long": "长度应不超过 {max_length}",
    "string_pattern_mismatch": "格式不正确（应符合 {pattern}）",
    "enum": "应为以下之一：{expected}",
    "literal_error": "应为以下之一：{expected}",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_type": "应为日期（YYYY-MM-DD）",
    "datetime_parsing": "应为日期时间（YYYY-MM-DD HH:MM:SS）",
    "datetime_from_date_parsing": "应为日期时间（YYYY-MM-DD HH:MM:SS）",
    "datetime_type": "应为日期时间（YYYY-MM-DD HH:MM:SS）",
    "json_invalid": "不是有效的JSON",
    "model_attributes_type": "应为JSON对象",
    "dict_type": "应为JSON对象",
    "list_type": "应为数组",
}


def pydantic_error_zh(error: dict[str, Any]) -> str | None:
    """What one pydantic error record says, in Chinese (``应不小于 1``), or None for a
    type this table does not know (the caller keeps pydantic's English then)."""
    template = _BY_TYPE.get(str(error.get("type")))
    if template is None:
        return None
    ctx = dict(error.get("ctx") or {})
    if isinstance(ctx.get("expected"), str):  # "'xlsx', 'csv' or 'pdf'" → "xlsx、csv、pdf"
        ctx["expected"] = "、".join(x.strip(" '\"") for x in re.split(r",\s*|\s+or\s+", ctx["expected"]) if x.strip())
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return None


def first_reason(table: tuple[tuple[str, str], ...] | list[tuple[str, str]], text: str) -> str:
    """The Chinese of the first (English key, Chinese) pair whose key ``text`` contains: a
    parser's reason (orjson, ijson, csv, libxml2, PyYAML) said to the reader; 格式错误 if none."""
    return next((zh for key, zh in table if key in text), "格式错误")


#: orjson's reasons (stable texts of its decoder) in Chinese; one not listed is said as 格式错误
_JSON_REASONS: list[tuple[str, str]] = [
    ("str is not valid UTF-8", "不是UTF-8编码"),  # before "surrogate": orjson names both for bad bytes
    ("zero-length, empty document", "内容为空"),
    ("unexpected end of data", "内容不完整（提前结束）"),
    ("EOF while parsing", "内容不完整（提前结束）"),
    ("depth limit exceeded", "嵌套层数过多"),
    ("recursion limit", "嵌套层数过多"),
    ("infinity", "数值超出范围"),
    ("surrogate", "字符串含不成对的代理字符"),
    ("trailing comma", "多余的逗号"),
    ("control character", "字符串含未转义的控制字符"),
    ("expected ':'", "键之后缺少冒号"),
    ("invalid literal", "无效的字面量（应为 true、false 或 null）"),
    ("unexpected character", "出现意外的字符"),
    # ijson (yajl) wording, for files read as a stream
    ("numeric (floating point) overflow", "数值超出范围"),
    ("integer overflow", "数值超出范围"),
    ("premature EOF", "内容不完整（提前结束）"),
    ("trailing garbage", "数组结束后还有多余的内容"),
    ("separated by a colon", "键之后缺少冒号"),
    ("invalid bytes in UTF8", "不是UTF-8编码"),
    ("unallowed token", "此处不应出现该符号（如多余的逗号）"),
    ("invalid char in json text", "出现意外的字符（JSON不支持 NaN、Infinity 等）"),
]


def json_reason(exc: Exception) -> str:
    """What is wrong with a JSON text orjson refused, in Chinese (多余的逗号)."""
    return first_reason(_JSON_REASONS, str(getattr(exc, "msg", exc)))


def json_problem(exc: Exception) -> str:
    """Where and what: 第1行第3列：多余的逗号."""
    line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    return f"第{line}行第{column}列：{json_reason(exc)}" if line and column else json_reason(exc)

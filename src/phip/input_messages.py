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

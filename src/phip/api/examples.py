"""OpenAPI examples (接口示例): what a hospital engineer sees in /docs for every endpoint.

Kept beside each other so the examples agree: the receipt of the example upload is the one
`GET /receipts/{id}` returns, and its rejection is the one `GET /feedback` lists. Error
examples use the real codes and messages of :mod:`phip.api.push` and :mod:`phip.api.errors`.
"""

from __future__ import annotations

from typing import Any

from .errors import error_body

EXAMPLE_VISIT: dict[str, Any] = {
    "visit_no": "MZ202611210001", "patient_id": "P000123", "name": "张三", "sex_code": "1", "birth_date": "1980-05-06",
    "id_type_code": "01", "id_no": "220102198005060017", "visit_type_code": "1", "dept_code": "0301",
    "dept_name": "心血管内科", "visit_time": "2026-11-21 09:30:00", "diagnosis_code": "I10.x00", "diagnosis_name": "原发性高血压",
}

_FINDING = {"code": "DATE_IN_FUTURE", "severity": "error", "field": "visit_time",
            "message": "【就诊日期时间】“2026-12-01 09:30:00”晚于当前时间"}

RECEIPT: dict[str, Any] = {
    "batch_id": "3f2a9c1e5b7d4e0f8a6b2c4d1e3f5a7b", "org_code": "12220104412001376B", "dataset": "outpatient_visit",
    "source": "api", "received_at": "2026-11-22 10:15:02.418000",
    "counts": {"total": 2, "accepted": 1, "updated": 0, "unchanged": 0, "rejected": 1, "warnings": 0},
    "rejections": [{"index": 1, "record_key": "MZ202611210002", "findings": [_FINDING]}],
}

FEEDBACK: dict[str, Any] = {
    "org_code": RECEIPT["org_code"],
    "items": [{"received_at": RECEIPT["received_at"], "first_seen": "2026-11-20 02:30:05", "times_seen": 2,
               "batch_id": RECEIPT["batch_id"], "dataset": "outpatient_visit",
               "index": 1, "record_key": "MZ202611210002", "rejected": True, "findings": [_FINDING]}],
}

STANDARD_INDEX: dict[str, Any] = {
    "version": "2026.1",
    "datasets": [{"number": 3, "code": "outpatient_visit", "name": "门诊/急诊就诊记录", "name_en": "Outpatient/emergency visit",
                  "category": "outpatient", "fields": 31, "natural_key": ["visit_no"]}],
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "03 门诊/急诊就诊记录", "type": "object",
    "properties": {"visit_no": {"title": "门(急)诊就诊流水号", "type": "string", "maxLength": 32,
                                "x-data-element": "DE01.00.010.00"},
                   "sex_code": {"title": "性别代码", "type": "string", "maxLength": 1, "enum": ["0", "1", "2", "9"]}},
    "required": ["org_code", "org_name", "visit_no", "patient_id", "name", "sex_code", "visit_type_code", "dept_code",
                 "dept_name", "visit_time", "diagnosis_code", "diagnosis_name"],
}

ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("BAD_JSON", "请求体不是有效的JSON：unexpected character: line 1 column 2 (char 1)", None),
    401: ("AUTH_INVALID", "接口密钥无效或已被吊销", None),
    404: ("UNKNOWN_DATASET", "数据集“outpatient”不存在，请查阅 /api/v1/standard", None),
    413: ("TOO_MANY_RECORDS", "每批最多5000条记录，本批6000条，请分批上传", None),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的内容类型“text/plain”，请使用 application/json 或 application/x-ndjson", None),
    429: ("RATE_LIMITED", "请求过于频繁，请3秒后重试", None),
    503: ("DATABASE_UNAVAILABLE", "平台数据库暂时不可用，本批未保存，请稍后重试", None),
}

_DESCRIPTIONS = {
    400: "请求无法解析", 401: "未认证或密钥已吊销", 403: "无权访问", 404: "不存在", 409: "有歧义，请指明", 413: "请求过大",
    415: "内容类型不支持", 429: "请求过于频繁，请按 Retry-After 重试", 503: "数据库暂不可用，请按 Retry-After 重试",
}


def responses(ok: dict[str, Any], *statuses: int, media: str = "application/json",
              overrides: dict[int, tuple[str, str, str | None]] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: the success example and an error example per status."""
    documented: dict[int | str, dict[str, Any]] = {200: {"content": {media: {"example": ok}}}}
    for status in statuses:
        code, message, field = (overrides or {}).get(status) or ERRORS[status]
        documented[status] = {"description": _DESCRIPTIONS[status],
                              "content": {"application/json": {"example": error_body(code, message, field)}}}
    return documented

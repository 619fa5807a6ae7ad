"""The CapabilityStatement (``GET /fhir/R4/metadata``), derived from the mapping so that what
it declares is what the server answers."""

from __future__ import annotations

from typing import Any

from .mapping import load_mapping
from .validation import checked

FHIR_VERSION = "4.0.1"
RELEASED = "2026-11-22"
SECURITY = ("每个请求须携带医疗机构接口密钥（Authorization: Bearer <密钥>）和调阅医生账户（X-Clinician-Id）；"
            "病历内容须有患者授权（授权同意、授权码）或紧急调阅，每次调阅均记入审计日志。")

_COMMON = [
    {"name": "patient", "type": "reference", "documentation": "患者（必填）：Patient/<主索引ID>"},
    {"name": "date", "type": "date", "documentation": "记录的业务时间（数据集的 event_time），前缀 eq/ge/gt/le/lt/sa/eb"},
    {"name": "_count", "type": "number", "documentation": "每页条数，0–100，默认20"},
]


def capability_statement(base: str) -> dict[str, Any]:
    mapping = load_mapping()
    resources: list[dict[str, Any]] = [{
        "type": "Patient", "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "_id", "type": "token", "documentation": "患者主索引ID"}],
        "documentation": "主索引（EMPI）金标准记录；标识、姓名、电话、地址按调阅者角色脱敏",
    }]
    for rtype, rmap in mapping.resources.items():
        params = list(_COMMON)
        if any(s.category for s in rmap.sources):
            params.append({"name": "category", "type": "token"})
        if rmap.code_element:
            params.append({"name": "code", "type": "token", "documentation": f"匹配 {rmap.code_element} 的编码（system|code 或 code）"})
        resources.append({"type": rtype, "interaction": [{"code": "read"}, {"code": "search-type"}],
                          "searchParam": params, "documentation": "来源数据集：" + "、".join(rmap.datasets)})
    resources.append({"type": "DocumentReference", "interaction": [{"code": "read"}, {"code": "search-type"}],
                      "searchParam": list(_COMMON),
                      "documentation": "共享文档（WS/T 500 / WS/T 483 CDA）：附件地址返回CDA；与 /api/v1/documents/search 同一授权"})
    return checked({
        "resourceType": "CapabilityStatement", "status": "active", "date": RELEASED, "kind": "instance",
        "software": {"name": "PHIP 全民健康信息平台"},
        "implementation": {"description": "PHIP FHIR R4 只读接口", "url": base},
        "fhirVersion": FHIR_VERSION, "format": ["application/fhir+json"],
        "rest": [{"mode": "server", "security": {"description": SECURITY}, "resource": resources}],
    })

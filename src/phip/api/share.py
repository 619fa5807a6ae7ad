"""Sharing JSON API (``/api/v1/share``, 共享调阅接口) for a hospital system to embed: the same
service as the clinician's pages (phip.share). Authenticated by the institution's API key plus
the clinician's account (header ``X-Clinician-Id``), which must be a clinician of that same
institution; every route then checks the patient's authorization (403 ``NO_AUTHORIZATION``)."""

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from phip import share
from phip.accounts import SessionInfo, user_info

from .errors import ApiError
from .examples import responses
from .keyauth import institution_key
from .limits import RateLimiter

_PID = "0190a1b2c3d4e5f60718293a4b5c6d7e"
_NO_AUTH = (403, "NO_AUTHORIZATION", "未获得患者授权，不能查看病历内容：请患者授权同意、提供授权码，或在紧急情况下使用紧急调阅")
EXAMPLES = {
    "find": {"patients": [{"person_id": _PID, "name": "张*", "sex": "1", "sex_label": "男", "birth_date": "1990-04-12",
                           "id_no": "220102********0614", "authorized": False,
                           "counts": [{"year": 2026, "records": 14}, {"year": 2025, "records": 3}]}]},
    "timeline": {"person_id": _PID, "documents": [
        {"id": "1024", "dataset": "lab_report", "title": "检验报告", "date": "2026-11-20 10:12:00",
         "org_code": "12220104412001376B", "org_name": "长春中医药大学附院", "department": "内科",
         "diagnosis": "上呼吸道感染", "summary": "血常规"}]},
    "document": {"id": "1024", "dataset": "lab_report", "dataset_name": "检验记录", "title": "检验报告",
                 "org_code": "12220104412001376B", "org_name": "长春中医药大学附院", "date": "2026-11-20 10:12:00",
                 "authorization": 7, "fields": [{"name": "report_no", "label": "检验报告单号", "value": "L20261120001"}],
                 "items": {"columns": [{"name": "item_name", "label": "检验项目名称"},
                                       {"name": "result_value", "label": "检验结果（定性结果或定量结果文本）"}],
                           "rows": [["白细胞计数", "6.2"]]}},
    "grant": {"authorization": 7},
    "reasons": {"reasons": {"unconscious": "患者意识不清，无法表达授权", "critical": "急危重症抢救"},
                "categories": {"lab": "检验", "exam": "检查"}},
}


class PatientQuery(BaseModel):
    """Identifiers travel in the body, never in the address (which access logs keep)."""

    id_no: str | None = Field(None, max_length=18, description="身份证号")
    health_card: str | None = Field(None, max_length=18, description="居民健康卡号")
    name: str | None = Field(None, max_length=50, description="姓名（与出生日期、性别同用）")
    birth_date: date | None = None
    sex: str | None = Field(None, max_length=1, description="性别代码 1 男 2 女")


class CodeBody(BaseModel):
    code: str = Field(..., min_length=1, max_length=12, description="患者提供的6位授权码")


class BreakGlassBody(BaseModel):
    reason_code: str = Field(..., max_length=20, description="紧急调阅原因代码（GET /api/v1/share/reasons）")
    reason_text: str = Field(..., max_length=500, description="具体情况说明")


def clinician_dependency(engine: Engine, limiter: RateLimiter) -> Callable[..., SessionInfo]:
    """The clinician behind a hospital system's request: its institution key plus ``X-Clinician-Id``
    naming an enabled clinician of that institution (the sharing, FHIR and documents APIs use it)."""
    institution = institution_key(engine, limiter)

    def clinician(org: Annotated[str, Depends(institution)],
                  x_clinician_id: Annotated[str | None, Header(description="调阅医生的平台账户名")] = None) -> SessionInfo:
        if not x_clinician_id:
            raise ApiError(403, "CLINICIAN_REQUIRED", "请在请求头 X-Clinician-Id 中提供调阅医生的平台账户")
        who = user_info(engine, x_clinician_id.strip())
        if who is None or who.role != "clinician" or who.org_code != org:
            raise ApiError(403, "CLINICIAN_FORBIDDEN", "X-Clinician-Id 不是本机构已启用的医生账户")
        return who

    return clinician


def build_router(engine: Engine, limiter: RateLimiter | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/share", tags=["共享调阅 sharing"])
    Clinician = Annotated[SessionInfo, Depends(clinician_dependency(engine, limiter or RateLimiter()))]
    PersonId = Annotated[str, Path(max_length=32, description="主索引居民ID（查找患者返回的 person_id）")]

    def address(request: Request) -> str | None:
        return request.client.host if request.client else None

    @router.post("/patients/search", summary="查找患者（身份证号 / 居民健康卡号 / 姓名+出生日期+性别）",
                 responses=responses(EXAMPLES["find"], 400, 401, 429))
    def find(request: Request, who: Clinician, query: Annotated[PatientQuery, Body(openapi_examples={
            "按身份证号": {"value": {"id_no": "220102199004120614"}},
            "按姓名、出生日期、性别": {"value": {"name": "张伟", "birth_date": "1990-04-12", "sex": "1"}}})]) -> dict[str, Any]:
        return {"patients": share.find(engine, who, id_no=query.id_no, health_card=query.health_card, name=query.name,
                                       birth_date=query.birth_date, sex=query.sex, address=address(request))}

    @router.post("/patients/{person_id}/code", summary="使用患者提供的一次性授权码",
                 responses=responses(EXAMPLES["grant"], 401, 403, 429,
                                     overrides={403: ("BAD_CODE", "授权码错误或已失效（授权码10分钟内有效，只能使用一次）", "code")}))
    def redeem(request: Request, who: Clinician, person_id: PersonId,
               body: Annotated[CodeBody, Body(openapi_examples={"授权码": {"value": {"code": "482913"}}})]) -> dict[str, Any]:
        return {"authorization": share.redeem_code(engine, who, person_id, body.code, address=address(request))}

    @router.post("/patients/{person_id}/break-glass", summary="紧急调阅（记录并提交审计员复核）",
                 responses=responses(EXAMPLES["grant"], 400, 401))
    def break_glass(request: Request, who: Clinician, person_id: PersonId, body: Annotated[BreakGlassBody, Body(
            openapi_examples={"紧急调阅": {"value": {"reason_code": "unconscious", "reason_text": "患者意识不清由120送入急诊"}}})]) -> dict[str, Any]:
        return {"authorization": share.break_glass(engine, who, person_id, body.reason_code, body.reason_text,
                                                   address=address(request))}

    @router.get("/patients/{person_id}/timeline", summary="跨机构就诊时间轴（需患者授权）",
                responses=responses(EXAMPLES["timeline"], 401, 403, 404, overrides={403: _NO_AUTH}))
    def timeline(request: Request, who: Clinician, person_id: PersonId) -> dict[str, Any]:
        return share.timeline(engine, who, person_id, address=address(request))

    @router.get("/patients/{person_id}/documents/{document_id}", summary="病历文档（需患者授权，授权范围内）",
                responses=responses(EXAMPLES["document"], 401, 403, 404, overrides={403: _NO_AUTH}))
    def document(request: Request, who: Clinician, person_id: PersonId,
                 document_id: Annotated[str, Path(max_length=20)]) -> dict[str, Any]:
        return share.document(engine, who, person_id, document_id, address=address(request))

    @router.get("/reasons", summary="紧急调阅原因与数据类别", responses=responses(EXAMPLES["reasons"], 401))
    def reasons(who: Clinician) -> dict[str, Any]:
        catalog = share.load_catalog()
        return {"reasons": catalog.reasons, "categories": catalog.category_labels()}

    return router

"""FHIR R4 read API (``/fhir/R4``, issue 25) for hospital systems: the same authentication as
the sharing API (institution key + ``X-Clinician-Id``) and the same policy (phip.share via
phip.fhir). Answers are ``application/fhir+json``; refusals are OperationOutcomes."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from phip import fhir
from phip.accounts import SessionInfo

from .limits import RateLimiter
from .share import clinician_dependency

PREFIX = "/fhir/R4"
MEDIA_TYPE = "application/fhir+json"


class FhirResponse(JSONResponse):
    media_type = MEDIA_TYPE


def outcome_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """Every error under /fhir as an OperationOutcome (registered in phip.api.errors)."""
    return FhirResponse(fhir.operation_outcome(status, code, message, field), status_code=status)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _query(name: str, description: str, schema: dict[str, Any] | None = None, *, repeats: bool = False) -> dict[str, Any]:
    base = schema or {"type": "string", "maxLength": 200}
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "array", "items": base} if repeats else base, **({"explode": True} if repeats else {})}


#: the search parameters phip.fhir.params answers, described for clients and for the property
#: test (they are read from the raw query string, repeats kept, so FastAPI cannot declare them)
SEARCH_PARAMETERS = [
    _query("patient", "患者：Patient/<患者主索引ID>（Patient 以外的资源必填）"),
    _query("subject", "同 patient"),
    _query("_id", "Patient 检索：患者主索引ID"),
    _query("date", "日期，可带前缀 eq、ge、gt、le、lt、sa、eb，可重复（date=ge2026-01-01&date=lt2026-02-01）", repeats=True),
    _query("category", "类别 token：code 或 system|code，逗号分隔为“或”", repeats=True),
    _query("code", "编码 token：code 或 system|code，逗号分隔为“或”", repeats=True),
    _query("_count", "每页条数（0–100，默认 20）", {"type": "integer", "minimum": 0, "maximum": 100}),
    _query("_cursor", "翻页游标（取自 Bundle 的 next 链接）"),
    _query("_format", "返回格式：仅支持 json（application/fhir+json），其他格式返回 406"),
]

_OUTCOME = {"description": "OperationOutcome（401 缺少或无效的接口密钥，403 无患者授权 NO_AUTHORIZATION，404 不存在）",
            "content": {MEDIA_TYPE: {}}}


def build_router(engine: Engine, limiter: RateLimiter | None = None) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["FHIR R4"], default_response_class=FhirResponse)
    Clinician = Annotated[SessionInfo, Depends(clinician_dependency(engine, limiter or RateLimiter()))]
    TypeName = Annotated[str, Path(max_length=40, pattern="^[A-Za-z]+$", description="资源类型，如 Observation")]

    @router.get("/metadata", summary="CapabilityStatement（无需认证，不含个人数据）")
    def metadata(request: Request) -> Any:
        fhir.check_format(list(request.query_params.multi_items()))
        return FhirResponse(fhir.capability_statement(_base(request)))

    @router.get("/{resource_type}", summary="检索（须指定 patient；返回 searchset Bundle）",
                responses={400: _OUTCOME, 401: _OUTCOME, 403: _OUTCOME, 404: _OUTCOME},
                openapi_extra={"parameters": SEARCH_PARAMETERS})
    def search(request: Request, who: Clinician, resource_type: TypeName) -> Any:
        items = list(request.query_params.multi_items())
        return FhirResponse(fhir.search(engine, who, resource_type, items, _base(request), address=_address(request)))

    @router.get("/{resource_type}/{resource_id}", summary="按ID读取资源",
                responses={401: _OUTCOME, 403: _OUTCOME, 404: _OUTCOME})
    def read(request: Request, who: Clinician, resource_type: TypeName,
             resource_id: Annotated[str, Path(max_length=64, pattern="^[A-Za-z0-9.-]+$")]) -> Any:
        fhir.check_format(list(request.query_params.multi_items()))
        return FhirResponse(fhir.read(engine, who, resource_type, resource_id, address=_address(request),
                                      base=_base(request)))

    return router

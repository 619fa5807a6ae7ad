"""Shared documents API (``/api/v1/documents``, 共享文档): a hospital sends a WS/T 500 / WS/T 483
CDA document with its institution key, as it sends JSON batches; a clinician's system reads a
patient's document as CDA through the sharing authorization (institution key + X-Clinician-Id,
the patient's consent or break-the-glass), every read audited.

A document that fails its template is refused as a whole (422 ``DOCUMENT_INVALID`` family:
the first problem's code, and every problem with its path) and nothing is stored; one that
passes goes through the one pipeline and is answered with the same receipt as JSON."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from phip import documents
from phip.accounts import SessionInfo
from phip.documents.safexml import MAX_BYTES
from phip.ingest.pipeline import Pipeline
from phip.orgs.keys import KeyClient

from .errors import ApiError, error_body
from .examples import responses
from .keyauth import key_client
from .limits import RateLimiter
from .push import read_body
from .share import clinician_dependency

XML_TYPES = {"application/xml", "text/xml", "application/hl7-v3+xml", "application/hl7-cda+xml"}
_QUERY = {"person_id": "7b1e4c2a9d3f4e5a8b6c0d1e2f3a4b5c", "total": 1, "documents": [{
    "type": "C0004", "name": "西药处方", "key": "CF2026112200017", "org_code": "12220104412001376B",
    "org_name": "长春中医药大学附院", "date": "2026-11-22 09:41:00",
    "retrieve": "/api/v1/documents/C0004?person_id=7b1e4c2a9d3f4e5a8b6c0d1e2f3a4b5c&key=CF2026112200017"
                "&org_code=12220104412001376B"}]}
_RECEIPT = {"document": {"type": "C0002", "name": "门(急)诊病历", "id": "C0002.12220104412001376B.MZ00000001", "records": 1},
            "receipt": {"batch_id": "3f2a9c1e", "dataset": "outpatient_visit", "accepted": 1, "rejected": 0}}

MAX_BATCH = 500  # documents per batch request
MAX_BATCH_BYTES = 64 * 1024 * 1024
_BATCH = {"documents": 2, "accepted": 1, "refused": [{
    "index": 1, "filename": "C0004-CF2026112200018.xml", "code": "SECTION_MISSING",
    "message": "缺少必备章节：用药章节", "field": None,
    "problems": [{"code": "SECTION_MISSING", "message": "缺少必备章节：用药章节",
                  "path": "/ClinicalDocument/component/structuredBody"}]}],
    "receipts": [_RECEIPT["receipt"]]}


#: the shape of a request body (a real one is rendered by ``phip documents export``)
CDA_EXAMPLE = ('<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
               '<realmCode code="CN"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>'
               '<templateId root="2.16.156.10011.2.1.1.22"/>…</ClinicalDocument>')


def build_router(engine: Engine, pipeline: Pipeline, limiter: RateLimiter | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/documents", tags=["共享文档 CDA"])
    limiter = limiter or RateLimiter()
    Client = Annotated[KeyClient, Depends(key_client(engine, limiter))]
    Clinician = Annotated[SessionInfo, Depends(clinician_dependency(engine, limiter))]

    @router.post("", summary="上传共享文档（CDA，WS/T 500 / WS/T 483）",
                 openapi_extra={"requestBody": {"required": True, "content": {"application/xml": {
                     "schema": {"type": "string"}, "example": CDA_EXAMPLE}}}},
                 description=f"请求体为一份CDA R2共享文档（UTF-8，可gzip压缩，不超过{MAX_BYTES // 1024 // 1024} MB），"
                 "按 templateId 对应的模板校验后映射为数据集记录，经统一入库流程保存；返回与JSON上传相同的回执。"
                 "文档未通过校验时整份拒收（422），列出每处问题的代码、说明和路径。",
                 responses=responses(_RECEIPT, 400, 401, 413, 415, 429))
    async def receive(request: Request, client: Client) -> Any:
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media not in XML_TYPES:
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"不支持的内容类型“{media or '未提供'}”，请使用 application/xml")
        body = await read_body(request, MAX_BYTES)
        try:
            mapped, receipt = await run_in_threadpool(documents.receive, pipeline, client.org_code, body)
        except documents.DocumentRefused as exc:
            answer = error_body(exc.code, exc.message, exc.field)
            answer["problems"] = [p.as_dict() for p in exc.problems]
            return JSONResponse(answer, status_code=422)
        return {"document": {"type": mapped.template.code, "name": mapped.template.name, "id": mapped.document_id,
                             "records": len(mapped.records)}, "receipt": receipt.as_dict()}

    @router.post("/batch", summary="批量上传共享文档（multipart/form-data，每个文件一份CDA）",
                 openapi_extra={"requestBody": {"content": {"multipart/form-data": {
                     "example": {"documents": ["C0004-CF2026112200017.xml", "C0004-CF2026112200018.xml"]}}}}},
                 description=f"表单字段 documents 重复出现，每个文件一份CDA（每份不超过{MAX_BYTES // 1024 // 1024} MB，"
                 f"每次最多{MAX_BATCH}份）。逐份按模板校验：未通过的文档整份拒收并列出问题，其余文档的记录按数据集"
                 "合批经统一入库流程保存（与逐份上传的结果相同，速度快得多）；返回每个数据集批次的回执。",
                 responses=responses(_BATCH, 400, 401, 413, 429, overrides={
                     413: ("TOO_MANY_DOCUMENTS", f"每次最多{MAX_BATCH}份文档，本次600份，请分批上传", "documents")}))
    async def receive_batch(request: Request, client: Client,
                            files: Annotated[list[UploadFile], File(alias="documents", description="CDA 文档文件")]) -> Any:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
            raise ApiError(413, "BODY_TOO_LARGE", f"请求体超过{MAX_BATCH_BYTES // 1024 // 1024} MB上限，请分批上传")
        if len(files) > MAX_BATCH:
            raise ApiError(413, "TOO_MANY_DOCUMENTS", f"每次最多{MAX_BATCH}份文档，本次{len(files)}份，请分批上传", "documents")
        bodies = []
        for f in files:
            body = await f.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise ApiError(413, "DOCUMENT_TOO_LARGE", f"文档“{f.filename}”超过{MAX_BYTES // 1024 // 1024} MB上限", "documents")
            bodies.append(body)
        got = await run_in_threadpool(documents.receive_many, pipeline, client.org_code, bodies, "CDA batch")
        refused = [{"index": i, "filename": files[i].filename, **error_body(exc.code, exc.message, exc.field)["error"],
                    "problems": [p.as_dict() for p in exc.problems]} for i, exc in got.refused]
        return {"documents": got.documents, "accepted": got.documents - len(got.refused), "refused": refused,
                "receipts": [r.as_dict() for r in got.receipts]}

    @router.get("/search", summary="查询患者的共享文档目录（需患者授权）",
                description="文档查询（对应 IHE XDS ITI-18）：列出授权范围内该患者可调阅的共享文档，按日期倒序，"
                "每条给出文档类型、编号、机构、日期和调阅地址；可按文档类型和日期筛选。需机构接口密钥与 X-Clinician-Id。",
                responses=responses(_QUERY, 401, 403, 404, overrides={
                    403: ("NO_AUTHORIZATION", "未获得患者授权，不能查看病历内容：请患者授权同意、提供授权码，或在紧急情况下使用紧急调阅", None),
                    404: ("UNKNOWN_DOCUMENT_TYPE", "共享文档类型“C9999”不存在", "type")}))
    def search(request: Request, who: Clinician,
               person_id: Annotated[str, Query(max_length=32, description="主索引居民ID")],
               doc_type: Annotated[str | None, Query(alias="type", max_length=40, description="文档类型代码（如 C0004）")] = None,
               day_from: Annotated[date | None, Query(alias="from", description="起始日期（含）")] = None,
               day_to: Annotated[date | None, Query(alias="to", description="截止日期（含）")] = None) -> dict[str, Any]:
        found = documents.documents_of(engine, who, person_id, doc_type, day_from, day_to,
                                       address=request.client.host if request.client else None)
        return {"person_id": person_id, "total": len(found), "documents": found}

    @router.get("/{doc_type}", summary="调阅患者的共享文档（CDA，需患者授权）", response_class=Response,
                description="按文档类型（如 C0002、C0004）、主索引居民ID和文档编号（就诊流水号、处方编号、报告单号等，"
                "即模板的关键字段）返回CDA XML。需机构接口密钥与 X-Clinician-Id，并经患者授权（同 /api/v1/share），每次调阅记入审计。",
                responses=responses(CDA_EXAMPLE, 401, 403, 404, 409, media="application/xml", overrides={
                    403: ("NO_AUTHORIZATION", "未获得患者授权，不能查看病历内容：请患者授权同意、提供授权码，或在紧急情况下使用紧急调阅", None),
                    404: ("UNKNOWN_DOCUMENT_TYPE", "共享文档类型“C9999”不存在", "type"),
                    409: ("AMBIGUOUS_DOCUMENT", "多家机构有此编号的文档，请用 org_code 指明机构", "org_code")}))
    def export(request: Request, who: Clinician,
               doc_type: Annotated[str, Path(max_length=40, description="文档类型代码（C0002）或数据集代码")],
               person_id: Annotated[str, Query(max_length=32, description="主索引居民ID")],
               key: Annotated[str, Query(max_length=64, description="文档编号：模板的关键字段的值")],
               org_code: Annotated[str | None, Query(max_length=32, description="文档所属机构（编号重复时必填）")] = None) -> Response:
        xml = documents.export(engine, who, doc_type, person_id, key, org_code,
                               address=request.client.host if request.client else None)
        return Response(xml, media_type="application/xml")

    @router.get("", summary="平台支持的共享文档类型", responses=responses({"types": []}, 401))
    def types(client: Client) -> dict[str, Any]:
        out = []
        for t in documents.load_templates().by_code.values():
            out.append({"type": t.code, "name": t.name, "standard": t.standard, "template_id": t.template_id,
                        "dataset": t.dataset.code, "key": t.key_field, "verified": t.verified})
        return {"types": out}

    return router

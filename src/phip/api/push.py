"""Push API (接口对接): hospitals send records of a data set; the answer is the receipt.

Everything a request can get wrong is answered before the pipeline runs, with a stable
code and a Chinese message, and nothing is stored: wrong content type (415), body too large
or too many records (413), undecodable or malformed body (400), unknown data set (404). What
passes goes through the one pipeline, where each record is accepted or rejected on its own
(a record naming another institution too: ``ORG_MISMATCH``).

A city platform's key (省市一体化, docs/federation.md) sends records of its region's
institutions, each keeping its own ``org_code``; others are refused (``ORG_OUTSIDE_REGION``).
"""

import asyncio
import codecs
import threading
import time
import zlib
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from phip import audit
from phip.config import get_settings
from phip.input_messages import json_problem, json_reason
from phip.federation import metrics as outbox_metrics
from phip.federation.province import ingest_for_region
from phip.ingest.pipeline import Pipeline
from phip.orgs.keys import KeyClient
from phip.ingest.receipt import stored_receipt
from phip.quality.rejections import feedback_items
from phip.quality.service import feedback as quality_feedback
from phip.standard.validate import parse_datetime

from . import audit_actor
from .errors import RETRY_AFTER_SECONDS, ApiError
from .keyauth import institution_of, key_client
from .examples import EXAMPLE_VISIT, FEEDBACK, RECEIPT, responses
from .limits import RECORDS, REGISTRY, RateLimiter
from .memory import trim

MAX_BODY_BYTES = 20 * 1024 * 1024
MAX_RECORDS = 5000
#: Batches one server process reads, parses and stores at once; the others wait up to
#: BUSY_WAIT seconds for a slot, then get 503 with Retry-After. This bounds the bodies held in
#: memory and keeps connections free for key checks; four keep both cores and the pool busy.
MAX_CONCURRENT_BATCHES = 4
BUSY_WAIT = 20.0
SLOT_POLL = 0.05
JSON_TYPES = {"application/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonlines", "application/x-jsonlines"}


def build_router(engine: Engine, pipeline: Pipeline, limiter: RateLimiter | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["接口对接 push API"])
    limiter = limiter or RateLimiter()

    client = key_client(engine, limiter)  # one wrong-key budget for every route of the router
    Org = Annotated[str, Depends(institution_of(client))]
    Client = Annotated[KeyClient, Depends(client)]
    if get_settings().upstream_url:  # a city platform: its outbox in /metrics
        outbox_metrics.install(REGISTRY, engine)
    slots = threading.BoundedSemaphore(MAX_CONCURRENT_BATCHES)
    router.batch_slots = slots  # type: ignore[attr-defined]  # the app keeps it in its state (tests fill it)

    @router.post(
        "/datasets/{dataset}/records",
        summary="上传数据集记录",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}, "maxItems": MAX_RECORDS},
                                 "example": [EXAMPLE_VISIT]},
            "application/x-ndjson": {"schema": {"type": "string"}, "example": orjson.dumps(EXAMPLE_VISIT).decode()},
        }}},
        description=f"请求体为JSON数组或NDJSON（每行一条），可gzip压缩；每批最多{MAX_RECORDS}条、{MAX_BODY_BYTES // 1024 // 1024} MB。"
        "返回回执：新增、更新、未变化、拒收条数及每条拒收记录的原因。",
        responses=responses(RECEIPT, 400, 401, 404, 413, 415, 429, 503),
    )
    async def push_records(dataset: str, request: Request, client: Client) -> dict[str, Any]:
        try:
            ds = pipeline.standard.dataset(dataset)
        except KeyError:
            raise ApiError(404, "UNKNOWN_DATASET", f"数据集“{dataset}”不存在，请查阅 /api/v1/standard") from None
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media not in JSON_TYPES | NDJSON_TYPES:
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"不支持的内容类型“{media or '未提供'}”，请使用 application/json 或 application/x-ndjson")
        if not await _take(slots):
            raise ApiError(503, "SERVER_BUSY", "平台正在处理的批次已满，本批未保存，请稍后重试",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:
            return await _store_batch(request, client, ds, media)
        finally:
            slots.release()
            await run_in_threadpool(trim)  # the batch's freed pages go back to the system (phip.api.memory)

    async def _take(slots: threading.BoundedSemaphore) -> bool:
        """A batch slot within BUSY_WAIT seconds, waited for on the event loop: a waiting
        request holds no thread of the pool, which the batches being stored need."""
        deadline = time.monotonic() + BUSY_WAIT
        while not slots.acquire(blocking=False):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(SLOT_POLL)
        return True

    async def _store_batch(request: Request, client: KeyClient, ds: Any, media: str) -> dict[str, Any]:
        body = await read_body(request)
        extras: dict[str, Any] = {}
        records = _parse(body, media in NDJSON_TYPES, extras)
        # Off the event loop: while this batch waits on the database, the worker reads and
        # checks the next request instead of stalling every connection it holds.
        if client.region_code:  # a city platform's key: each record for its own institution
            receipt = await run_in_threadpool(ingest_for_region, pipeline, client.org_code, client.region_code,
                                              ds.code, records, _city_versions(extras, len(records)))
        else:
            receipt = await run_in_threadpool(pipeline.ingest, client.org_code, ds.code, records, source="api")
        RECORDS.labels(ds.code, "accepted").inc(receipt.accepted)
        RECORDS.labels(ds.code, "updated").inc(receipt.updated)
        RECORDS.labels(ds.code, "unchanged").inc(receipt.unchanged)
        RECORDS.labels(ds.code, "rejected").inc(receipt.rejected)
        return receipt.as_dict()

    @router.get("/receipts/{batch_id}", summary="查询回执", description="按回执编号再次取回某批次的回执（含拒收明细）。",
                responses=responses(RECEIPT, 401, 404, 429, 503, overrides={
                    404: ("UNKNOWN_RECEIPT", "回执“3f2a9c1e”不存在", None)}))
    def get_receipt(batch_id: str, org: Org) -> dict[str, Any]:
        receipt = stored_receipt(engine, org, batch_id)
        if receipt is None:
            raise ApiError(404, "UNKNOWN_RECEIPT", f"回执“{batch_id}”不存在")
        return receipt

    @router.get("/feedback", summary="获取本机构被拒收记录及原因（数据集60 医疗机构上传数据质控）",
                description="返回本机构尚未纠正的被拒收记录及原因（每条源记录一次，含首次、最近拒收时间和次数），"
                "供机构修正后重传；修正后的记录被接收后即不再列出。市级平台上也列出省平台拒收的记录（原因以“省平台拒收：”开头，"
                "platform 为 province），省平台接收其修正或重发后不再列出。since 按最近一次拒收时间筛选；"
                "warnings=true 时同时返回已接收但有警告的记录。",
                responses=responses(FEEDBACK, 400, 401, 429, 503, overrides={
                    400: ("BAD_SINCE", "since 参数“昨天”不是有效的日期时间", "since")}))
    def feedback(
        org: Org,
        request: Request,
        since: Annotated[str | None, Query(description="起始时间，如 2026-11-21 00:00:00")] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
        quality: Annotated[bool, Query(description="同时返回质控分析发现的问题（数据质控，按发现时间）")] = False,
        warnings: Annotated[bool, Query(description="同时返回已接收但有警告的记录（如身份证号码校验失败、值域外代码未保存）")] = False,
    ) -> dict[str, Any]:
        start: datetime | None = None
        if since:
            try:
                start = parse_datetime(since)
            except ValueError:
                raise ApiError(400, "BAD_SINCE", f"since 参数“{since}”不是有效的日期时间", field="since") from None
        items = feedback_items(engine, org, start, limit, warnings)
        answer: dict[str, Any] = {"org_code": org, "items": items}
        if quality:  # findings of the quality analysis runs, additive to the rejections
            answer["quality"] = quality_feedback(engine, org, start, limit)
        shown = audit.persons_of_records(engine, ((org, i["dataset"], i["record_key"]) for i in items if not i["rejected"]))
        audit.log_reads(engine, audit_actor.institution(request, org), "push.feedback.read", shown,
                        detail={"items": len(items), "warnings": warnings, "quality": quality})
        return answer

    return router


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request's body, at most ``limit`` bytes (default ``MAX_BODY_BYTES``, read at call
    time) before and after gzip (413 beyond): the push API's records and the documents API's
    CDA read their bodies the same way."""
    limit = MAX_BODY_BYTES if limit is None else limit
    too_large = ApiError(413, "BODY_TOO_LARGE", f"请求体超过{_mb(limit)}上限，请分批上传")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        body = gunzip(body, limit)
    elif encoding not in ("", "identity"):  # deflate, br, "gzip, gzip": not read, so not guessed at
        raise ApiError(415, "UNSUPPORTED_ENCODING", f"不支持的内容编码“{encoding[:40]}”：请用 gzip 压缩或不压缩")
    return body


def _mb(limit: int) -> str:
    return f"{limit // 1024 // 1024} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def gunzip(body: bytes, limit: int | None = None) -> bytes:
    """Every member of a gzip body (RFC 1952 allows several, as ``cat a.gz b.gz`` makes, and
    zlib stops after the first), within ``limit`` bytes inflated; anything after the last
    member that is not another member is refused, never ignored: it would be records silently lost."""
    limit = MAX_BODY_BYTES if limit is None else limit
    too_large = ApiError(413, "BODY_TOO_LARGE", f"解压后的请求体超过{_mb(limit)}上限，请分批上传")
    out: list[bytes] = []
    size, rest = 0, body
    try:
        while True:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            part = inflater.decompress(rest, limit + 1 - size)
            size += len(part)
            if size > limit or inflater.unconsumed_tail:
                raise too_large
            if not inflater.eof:
                raise ApiError(400, "BAD_GZIP", "gzip压缩数据不完整（被截断），请重新压缩后上传")
            out.append(part)
            rest = inflater.unused_data
            if not rest:
                return b"".join(out)
            if rest[:2] != b"\x1f\x8b":
                raise ApiError(400, "BAD_GZIP", f"gzip压缩数据之后还有{len(rest)}字节无法识别的内容，请只上传压缩后的文件")
    except zlib.error:
        raise ApiError(400, "BAD_GZIP", "请求体声明为gzip压缩，但无法解压") from None


def _city_versions(extras: dict[str, Any], count: int) -> list[tuple[str, int]] | None:
    """The city's (record key, version) of each record of a forwarded batch (``keys`` and
    ``versions`` beside ``records``), by which the province skips versions it already has."""
    keys, versions = extras.get("keys"), extras.get("versions")
    if keys is None and versions is None:
        return None
    if (not isinstance(keys, list) or not isinstance(versions, list) or len(keys) != count or len(versions) != count
            or not all(isinstance(k, str) for k in keys) or not all(type(v) is int for v in versions)):
        raise ApiError(400, "BAD_VERSIONS", "keys 与 versions 应为与 records 等长的记录标识和版本号数组", field="versions")
    return list(zip(keys, versions, strict=True))


def _parse(body: bytes, ndjson: bool, extras: dict[str, Any] | None = None) -> list[Any]:
    # a leading byte order mark is dropped: .NET's Encoding.UTF8 and Windows tools write one
    skip = len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0
    try:
        text = body[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "BAD_ENCODING", f"请求体不是UTF-8编码（第{skip + exc.start + 1}字节）") from None
    if ndjson:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, "BAD_JSON", f"第{number}行不是有效的JSON（第{exc.colno}列：{json_reason(exc)}）；本批未保存") from None
            if len(records) > MAX_RECORDS:
                raise ApiError(413, "TOO_MANY_RECORDS", f"每批最多{MAX_RECORDS}条记录，请分批上传")
    else:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "BAD_JSON", f"请求体不是有效的JSON（{json_problem(exc)}）") from None
        if isinstance(data, dict) and isinstance(data.get("records"), list):
            if extras is not None:  # a city platform's batch: keys and versions (see _city_versions)
                extras.update((k, data[k]) for k in ("keys", "versions") if k in data)
            data = data["records"]
        if not isinstance(data, list):
            raise ApiError(400, "NOT_AN_ARRAY", "请求体应为记录数组（或包含 records 数组的对象）")
        records = data
        if len(records) > MAX_RECORDS:
            raise ApiError(413, "TOO_MANY_RECORDS", f"每批最多{MAX_RECORDS}条记录，本批{len(records)}条，请分批上传")
    if not records:
        raise ApiError(400, "EMPTY_BATCH", "请求中没有记录")
    return records

"""EMPI HTTP API (``/api/v1/empi``): PDQ-like find, PIX-like identifiers, golden record, review
queue actions, merge / split / undo. Thin: every endpoint calls phip.empi.reads or phip.empi.edits.

Every endpoint needs a logged-in operator (the dashboard's session cookie, 运维看板登录): these
are residents' identities. The session's user, not a field of the body, is what the audit
trail records. Every POST also carries the session's CSRF token in ``X-CSRF-Token`` (from
``GET /api/v1/empi/session``), see phip.api.csrf. Identifiers and names are masked in every
answer by the rules of phip.privacy (no role reads them whole).
"""


import math
from datetime import date

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from phip.api import csrf
from phip import audit
from phip.api import audit_actor
from phip.api.errors import ApiError
from phip.api.examples import responses
from phip import accounts as auth
from phip.privacy import mask_kind
from phip.store.sql import MAX_ROW_ID

COOKIE = "phip_session"  # the dashboard's session cookie (phip.web.dashboard)
_LOGIN = (401, "请先以操作员身份登录运维看板（/login）", None)
_PERSON = {"person_id": "9f1c2b7e4d3a4c58b0e6a1d2c3b4a596", "name": "张*", "sex": "1", "birth_date": "1990-04-12",
           "id_no": "220102********0614", "phone": "135****5678", "address": "吉林省长春市南关区人民大街1号"}
_SOURCE = {"org": "12220104412001376B", "dataset": "patient_info", "at": "2026-11-21 09:30:00"}
EXAMPLES = {
    "find": {"persons": [{**_PERSON, "match_probability": 0.998731, "match_weight": 14.62}]},
    "golden": {"person_id": _PERSON["person_id"], "requested_id": _PERSON["person_id"], "status": "active", "records": 12,
               "fields": {f: {"value": _PERSON[f], "source": _SOURCE} for f in ("name", "sex", "birth_date", "id_no")}},
    "identifiers": {"person_id": _PERSON["person_id"], "identifiers": [
        {"kind": "id_no", "label": "居民身份证号码", "scope": None, "value": "220102********0614",
         "registered_at": "2026-11-21 09:30:02"},
        {"kind": "patient_id", "label": "机构患者编号", "scope": "12220104412001376B", "value": "P000123",
         "registered_at": "2026-11-21 09:30:02"}]},
    "events": {"events": [{"id": 7, "kind": "merge", "person_id": _PERSON["person_id"],
                           "other_id": "0c4d6e8f1a2b3c4d5e6f7a8b9c0d1e2f", "actor": "ops", "reason": "同一人",
                           "created_at": "2026-11-22 10:00:00", "records_moved": 3, "identifiers_moved": 2}]},
    "split": {"person_id": "5e6f7a8b9c0d1e2f0c4d6e8f1a2b3c4d", "event_id": 8},
    "reviews": {"total": 1, "reviews": [{"id": 3, "kind": "possible_match", "status": "pending", "probability": 0.83,
                             "weight": 6.1, "person_id": _PERSON["person_id"],
                             "candidate_id": "0c4d6e8f1a2b3c4d5e6f7a8b9c0d1e2f",
                             "evidence": [{"field": "name", "level": "拼音相同", "weight": 3.2}]}]},
    "decision": {"review_id": 3, "status": "linked", "event_id": 9},
    "xref": {"person_id": _PERSON["person_id"], "local_ids": [
        {"org": "12220104412001376B", "org_name": "长春中医药大学附院", "patient_id": "P000123"},
        {"org": "122201024120041126", "org_name": "长春市中医院", "patient_id": "0098812"}],
        "identifiers": [{"kind": "id_no", "label": "居民身份证号码", "scope": None, "value": "220102********0614"}]},
    "event": {"event_id": 9},
    "notifications": {"notifications": [{
        "id": 9, "action": "merge", "action_label": "合并", "at": "2026-11-22 10:00:00",
        "person_id": _PERSON["person_id"], "other_id": "0c4d6e8f1a2b3c4d5e6f7a8b9c0d1e2f",
        "now": [{"person_id": _PERSON["person_id"], "patient_ids": ["P000123", "P000877"]}]}],
        "next_after": 9, "more": False},
    "session": {"username": "ops", "role": "operator", "csrf_token": "q3JX0c1m7y4b9Zt2vQ8kLwHnE5sUaRfP6dGiO0eTxYc",
                "expires_at": "2026-11-22 18:00:00"},
}

from phip.empi import edits, reads


class Operator(BaseModel):
    operator: str | None = Field(None, max_length=64, description="操作人（以登录会话的用户为准，此字段仅作兼容）")
    reason: str | None = Field(None, max_length=200)


class MergeRequest(Operator):
    survivor: str = Field(min_length=1, max_length=32)
    retired: str = Field(min_length=1, max_length=32)


class SplitRequest(Operator):
    record_ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(min_length=1)


class XrefQuery(BaseModel):
    """By the institution's patient id, or by a province-wide identifier (ID numbers only in a
    body: a query string is written to access logs)."""

    org: str | None = Field(None, max_length=32, description="机构代码（与 patient_id 一起）")
    patient_id: str | None = Field(None, max_length=64, description="院内患者ID")
    kind: str | None = Field(None, pattern="^(id_no|health_card|insurance|doc)$", description="标识类别")
    scope: str | None = Field(None, max_length=8, description="证件类别代码（kind=doc 时）")
    value: str | None = Field(None, max_length=64, description="标识值")


class PersonSearch(BaseModel):
    """PDQ search (居民查找) in a request body: ID numbers and phones never go into an address,
    which access logs and proxies write down whole."""

    id_no: str | None = Field(None, max_length=32, description="身份证件号码")
    name: str | None = Field(None, max_length=50, description="姓名")
    birth_date: date | None = Field(None, description="出生日期")
    phone: str | None = Field(None, max_length=20, description="电话号码")
    sex: str | None = Field(None, pattern="^[0129]$", description="性别代码")
    limit: int = Field(20, ge=1, le=100)


class Decision(Operator):
    decision: str = Field(pattern="^(link|reject)$", description="link（是同一人）| reject（不是同一人）")


def _query(**given: object) -> dict[str, str]:
    """A search's conditions for the trail: names and identifiers masked (phip.privacy)."""
    return {k: mask_kind(k, str(v)) or "" for k, v in given.items() if v is not None}


def build_router(engine: Engine) -> APIRouter:
    def session(request: Request) -> auth.SessionInfo:
        info = auth.session(engine, request.cookies.get(COOKIE))
        if info is None:
            raise ApiError(401, "LOGIN_REQUIRED", _LOGIN[1])
        auth.require_role(info, "operator")
        csrf.check_token(request, info)
        return info

    def operator(info: Annotated[auth.SessionInfo, Depends(session)]) -> str:
        return info.username

    router = APIRouter(prefix="/api/v1/empi", tags=["EMPI 患者主索引"], dependencies=[Depends(session)])
    Actor = Annotated[str, Depends(operator)]

    def reader(request: Request, username: Actor) -> audit.Actor:
        return audit_actor.operator(request, username)

    Reader = Annotated[audit.Actor, Depends(reader)]
    EventId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
    errors = {401: ("LOGIN_REQUIRED", *_LOGIN[1:]), 403: (*csrf.CSRF_FAILED, csrf.HEADER)}
    not_found = {**errors, 404: ("PERSON_NOT_FOUND", "居民“9f1c2b7e”不存在", "person_id")}

    def body(model: type[BaseModel], example: dict) -> object:
        return Annotated[model, Body(openapi_examples={"示例": {"value": example}})]

    SplitBody = body(SplitRequest, {"record_ids": [1024, 1025], "reason": "两位患者误合并为一人"})
    DecisionBody = body(Decision, {"decision": "link", "reason": "电话、住址一致，确认同一人"})
    MergeBody = body(MergeRequest, {"survivor": _PERSON["person_id"], "retired": "0c4d6e8f1a2b3c4d5e6f7a8b9c0d1e2f",
                                    "reason": "同一人"})
    UndoBody = body(Operator, {"reason": "合并有误，撤销"})

    def documented(example: str, *statuses: int, overrides: dict | None = None) -> dict:
        return responses(EXAMPLES[example], 401, *statuses, overrides={**errors, **(overrides or {})})

    def changing(example: str, *statuses: int, overrides: dict | None = None) -> dict:
        """A POST: 403 without the session's CSRF token too."""
        return documented(example, 403, *statuses, overrides=overrides)

    @router.get("/session", responses=documented("session"))
    def current_session(info: Annotated[auth.SessionInfo, Depends(session)]) -> dict:
        """当前登录会话：用户、角色和CSRF令牌（每个POST请求须在请求头 X-CSRF-Token 中提供此令牌）。"""
        return {"username": info.username, "role": info.role, "csrf_token": info.csrf_token,
                "expires_at": info.expires_at.isoformat(sep=" ", timespec="seconds")}

    in_url = ("IDENTIFIER_IN_URL", "身份证号码和电话号码不能放在网址中（会被写入访问日志）：请改用 "
              "POST /api/v1/empi/persons/search，在请求体中提供", "id_no")

    @router.get("/persons", responses=documented("find", 400, overrides={400: in_url}))
    def find(who: Reader, id_no: str | None = None, name: str | None = Query(None, max_length=50), birth_date: date | None = None,
             phone: str | None = Query(None, max_length=20), sex: str | None = Query(None, pattern="^[0129]$"),
             limit: int = Query(20, ge=1, le=100)) -> dict:
        """PDQ：按姓名+出生日期查找居民（身份证号码、电话请用 POST /persons/search）。"""
        if id_no or phone:  # refused before anything reads them; the access log masks them too
            raise ApiError(400, in_url[0], in_url[1], "id_no" if id_no else "phone")
        hits = reads.find(engine, name=name, birth_date=birth_date, sex=sex, limit=limit)
        audit.log_reads(engine, who, "empi.person.search", [h["person_id"] for h in hits],
                        detail={"query": _query(name=name, birth_date=birth_date, sex=sex), "hits": len(hits)})
        return {"persons": hits}

    @router.post("/persons/search", responses=changing("find", 400, overrides={400: ("BAD_QUERY", "请提供身份证号码、电话号码，或姓名加出生日期", None)}))
    def search(query: Annotated[PersonSearch, Body(openapi_examples={"按身份证号码": {"value": {"id_no": "220102199004120614"}},
                                                                     "按姓名和出生日期": {"value": {"name": "张伟", "birth_date": "1990-04-12"}}})],
               who: Reader) -> dict:
        """PDQ：按身份证号码、电话或姓名+出生日期查找居民，按匹配权重排序（查询条件在请求体中，不进访问日志）。"""
        hits = reads.find(engine, id_no=query.id_no, name=query.name, birth_date=query.birth_date,
                          phone=query.phone, sex=query.sex, limit=query.limit)
        audit.log_reads(engine, who, "empi.person.search", [h["person_id"] for h in hits],
                        detail={"query": _query(**query.model_dump(exclude={"limit"})), "hits": len(hits)})
        return {"persons": hits}

    @router.get("/persons/{person_id}", responses=documented("golden", 404, overrides=not_found))
    def golden(person_id: str, who: Reader) -> dict:
        """居民最优记录（每个字段最新可信值及其来源）。已合并的居民编号返回合并后的居民。"""
        record = reads.golden_record(engine, person_id)
        audit.log_event(engine, who, "empi.person.read", person_id=record["person_id"])
        return record

    @router.get("/persons/{person_id}/identifiers", responses=documented("identifiers", 404, overrides=not_found))
    def identifiers(person_id: str, who: Reader) -> dict:
        """PIX：居民在各机构、各证件体系下的全部标识。"""
        found = reads.identifiers(engine, person_id)
        audit.log_event(engine, who, "empi.identifiers.read", person_id=found["person_id"])
        return found

    @router.get("/persons/{person_id}/events", responses=documented("events"))
    def person_events(person_id: str, who: Reader) -> dict:
        """该居民的主索引操作记录（审计）。"""
        events = reads.events(engine, person_id)
        audit.log_event(engine, who, "empi.events.read", person_id=person_id)
        return {"events": events}

    @router.post("/persons/{person_id}/split", responses=changing("split", 404, overrides=not_found))
    def split(person_id: str, body: SplitBody, actor: Actor) -> dict:
        new_id, event_id = edits.split(engine, person_id, body.record_ids, actor, body.reason)
        return {"person_id": new_id, "event_id": event_id}

    @router.get("/reviews", responses=documented("reviews"))
    def review_queue(who: Reader, status: str = Query("pending", pattern="^(pending|linked|rejected|merged)$"),
                     limit: int = Query(50, ge=1, le=500)) -> dict:
        """审核队列：逐字段比较结果与匹配权重。"""
        items = reads.reviews(engine, status, limit)
        audit.log_reads(engine, who, "empi.reviews.read", [p for i in items for p in (i["person_id"], i["candidate_id"])],
                        detail={"status": status, "items": len(items)})
        return {"total": reads.review_count(engine, status), "reviews": items}

    @router.post("/reviews/{review_id}/decision", responses=changing("decision"))
    def decide(review_id: EventId, body: DecisionBody, actor: Actor) -> dict:
        return edits.decide(engine, review_id, body.decision, actor, body.reason)

    @router.post("/merge", responses=changing("event", 404, overrides=not_found))
    def merge(body: MergeBody, actor: Actor) -> dict:
        return {"event_id": edits.merge(engine, body.survivor, body.retired, actor, body.reason)}

    @router.post("/events/{event_id}/undo", responses=changing("event"))
    def undo(event_id: EventId, body: UndoBody, actor: Actor) -> dict:
        return {"event_id": edits.undo(engine, event_id, actor, body.reason)}

    return router


def build_xref_router(engine: Engine, limiter: object | None = None) -> APIRouter:
    """Cross-reference lookup (PIX 交叉索引查询) for hospital systems: authorised by the
    institution's push-API key, limited to persons the institution has records or a patient id of
    (``reads.xref``)."""
    from phip.api.keyauth import institution_key
    from phip.api.limits import RateLimiter

    institution = institution_key(engine, limiter or RateLimiter())  # type: ignore[arg-type]
    router = APIRouter(prefix="/api/v1/empi", tags=["EMPI 交叉索引 PIX"])
    Org = Annotated[str, Depends(institution)]
    refused = {401: ("AUTH_REQUIRED", "缺少接口密钥：请在请求头 Authorization: Bearer <密钥> 中提供", None),
               403: ("XREF_FORBIDDEN", "只能查询本机构患者所属的居民：该患者不是贵机构的患者，或平台没有该患者", None),
               404: ("PATIENT_NOT_FOUND", "平台没有该患者（尚未上传过该患者的记录）", "patient_id")}
    documented = responses(EXAMPLES["xref"], 400, 401, 403, 404, 429, overrides=refused)

    @router.get("/xref", responses=documented)
    def xref(org: Org, request: Request, patient_id: str = Query(..., min_length=1, max_length=64, description="院内患者ID"),
             org_code: str | None = Query(None, alias="org", max_length=32,
                                          description="患者所属机构代码（缺省为本机构）")) -> dict:
        """PIX 查询（IHE ITI-9，WS/T 448 人员查询）：院内患者ID所属的居民（主索引号）及其在各机构的院内患者ID。
        只能查询本机构有记录的居民。"""
        found = reads.xref(engine, org=org_code or org, patient_id=patient_id, viewer=org)
        audit.log_event(engine, audit_actor.institution(request, org), "empi.xref.read", person_id=found["person_id"])
        return found

    @router.post("/xref", responses=documented)
    def xref_by_body(org: Org, body: Annotated[XrefQuery, Body(openapi_examples={
            "按身份证号码": {"value": {"kind": "id_no", "value": "220102199004120614"}},
            "按院内患者ID": {"value": {"org": "12220104412001376B", "patient_id": "P000123"}}})],
                     request: Request) -> dict:
        """同上，查询条件放在请求体中：按身份证号码等标识查询时必须用此方式（查询串会写入访问日志）。"""
        found = reads.xref(engine, org=body.org or (org if body.patient_id else None), patient_id=body.patient_id,
                           kind=body.kind, value=body.value, scope=body.scope, viewer=org)
        audit.log_event(engine, audit_actor.institution(request, org), "empi.xref.read", person_id=found["person_id"],
                        detail={"kind": body.kind or "patient_id"})
        return found

    @router.get("/notifications", responses=responses(EXAMPLES["notifications"], 400, 401, 429))
    def notifications(org: Org, request: Request,
                      after: int = Query(0, ge=0, le=MAX_ROW_ID, description="上次返回的 next_after（首次为0）"),
                      limit: int = Query(100, ge=1, le=500, description="每次最多返回的通知数")) -> dict:
        """个人信息合并通知（WS/T 448 个人注册服务；IHE ITI-10 的轮询形式）：主索引合并、拆分及其撤销中
        涉及本机构患者的事件，按发生顺序；每条给出事件后各居民主索引号下本机构的院内患者ID，
        供医院更新本地对照。用 next_after 继续轮询；其他机构患者的事件不返回。"""
        found = reads.notifications(engine, org, after, limit)
        audit.log_event(engine, audit_actor.institution(request, org), "empi.notifications.read",
                        detail={"after": after, "returned": len(found["notifications"])})
        return found

    return router

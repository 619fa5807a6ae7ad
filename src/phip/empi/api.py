"""EMPI HTTP API (``/api/v1/empi``): PDQ-like find, PIX-like identifiers, golden record, review
queue actions, merge / split / undo. Thin: every endpoint calls phip.empi.service.

ID numbers and phones are masked in every answer: operator roles (who may see them in clear)
arrive with the user-login issue; until then nothing here unmasks.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from phip.api.errors import ApiError

from . import service


class Operator(BaseModel):
    operator: str = Field(min_length=1, max_length=64, description="操作人")
    reason: str | None = Field(None, max_length=200)


class MergeRequest(Operator):
    survivor: str = Field(min_length=1, max_length=32)
    retired: str = Field(min_length=1, max_length=32)


class SplitRequest(Operator):
    record_ids: list[int] = Field(min_length=1)


class Decision(Operator):
    decision: str = Field(pattern="^(link|reject)$", description="link（是同一人）| reject（不是同一人）")


def _call(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except service.EmpiError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.field) from None


def build_router(engine: Engine) -> APIRouter:
    router = APIRouter(prefix="/api/v1/empi", tags=["EMPI 患者主索引"])

    @router.get("/persons")
    def find(id_no: str | None = None, name: str | None = Query(None, max_length=50), birth_date: date | None = None,
             phone: str | None = Query(None, max_length=20), sex: str | None = Query(None, pattern="^[0129]$"),
             limit: int = Query(20, ge=1, le=100)) -> dict:
        """PDQ：按身份证号码、电话或姓名+出生日期查找居民，按匹配权重排序。"""
        hits = _call(service.find, engine, id_no=id_no, name=name, birth_date=birth_date, phone=phone, sex=sex, limit=limit)
        return {"persons": hits}

    @router.get("/persons/{person_id}")
    def golden(person_id: str) -> dict:
        """居民最优记录（每个字段最新可信值及其来源）。已合并的居民编号返回合并后的居民。"""
        return _call(service.golden_record, engine, person_id)

    @router.get("/persons/{person_id}/identifiers")
    def identifiers(person_id: str) -> dict:
        """PIX：居民在各机构、各证件体系下的全部标识。"""
        return _call(service.identifiers, engine, person_id)

    @router.get("/persons/{person_id}/events")
    def person_events(person_id: str) -> dict:
        """该居民的主索引操作记录（审计）。"""
        return {"events": _call(service.events, engine, person_id)}

    @router.post("/persons/{person_id}/split")
    def split(person_id: str, body: SplitRequest) -> dict:
        new_id, event_id = _call(service.split, engine, person_id, body.record_ids, body.operator, body.reason)
        return {"person_id": new_id, "event_id": event_id}

    @router.get("/reviews")
    def review_queue(status: str = Query("pending", pattern="^(pending|linked|rejected|merged)$"),
                     limit: int = Query(50, ge=1, le=500)) -> dict:
        """审核队列：逐字段比较结果与匹配权重。"""
        return {"reviews": service.reviews(engine, status, limit)}

    @router.post("/reviews/{review_id}/decision")
    def decide(review_id: int, body: Decision) -> dict:
        return _call(service.decide, engine, review_id, body.decision, body.operator, body.reason)

    @router.post("/merge")
    def merge(body: MergeRequest) -> dict:
        return {"event_id": _call(service.merge, engine, body.survivor, body.retired, body.operator, body.reason)}

    @router.post("/events/{event_id}/undo")
    def undo(event_id: int, body: Operator) -> dict:
        return {"event_id": _call(service.undo, engine, event_id, body.operator, body.reason)}

    return router

"""The institution behind a request (接口密钥认证): one dependency for every API a hospital
system calls with its push-API key (records, receipts, feedback, the EMPI cross-reference),
so that each answers a missing, wrong or over-used key the same way."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, Request
from sqlalchemy import Engine

from phip.orgs.keys import KeyClient, authenticate_client

from .errors import ApiError
from phip.throttle import FailureLimiter

from .limits import RateLimiter

#: Wrong keys per client address before it must wait: a key is 32 random bytes, so no one needs
#: more than a few tries, and the limiter of valid keys runs only after authentication.
BAD_KEYS = (10, 600.0)


def institution_key(engine: Engine, limiter: RateLimiter) -> Callable[..., str]:
    """A FastAPI dependency answering the institution code of the request's key; 401 without a
    valid key, 429 with Retry-After once the institution's rate is spent, or once its address
    has sent too many wrong keys."""
    return institution_of(key_client(engine, limiter))


def institution_of(client: Callable[..., KeyClient]) -> Callable[..., str]:
    """The institution code of a :func:`key_client` dependency (sharing its wrong-key budget)."""

    def institution(
        request: Request,
        authorization: Annotated[str | None, Header(description="Bearer <接口密钥>")] = None,
        x_api_key: Annotated[str | None, Header(description="接口密钥（与 Authorization 二选一）")] = None,
    ) -> str:
        return client(request, authorization, x_api_key).org_code

    return institution


def key_client(engine: Engine, limiter: RateLimiter) -> Callable[..., KeyClient]:
    """As :func:`institution_key`, answering the whole :class:`KeyClient` (the push API lets a
    city platform's key write for its region's institutions)."""
    wrong = FailureLimiter(*BAD_KEYS)

    def client(
        request: Request,
        authorization: Annotated[str | None, Header(description="Bearer <接口密钥>")] = None,
        x_api_key: Annotated[str | None, Header(description="接口密钥（与 Authorization 二选一）")] = None,
    ) -> KeyClient:
        key = x_api_key
        if authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not key:
            raise ApiError(401, "AUTH_REQUIRED", "缺少接口密钥：请在请求头 Authorization: Bearer <密钥> 中提供")
        address = f"addr:{request.client.host if request.client else '-'}"
        if wait := wrong.wait(address):
            raise ApiError(429, "RATE_LIMITED", f"错误的接口密钥过多，请{math.ceil(wait)}秒后重试",
                           headers={"Retry-After": str(math.ceil(wait))})
        found = authenticate_client(engine, key)
        if found is None:
            wrong.failed(address)
            raise ApiError(401, "AUTH_INVALID", "接口密钥无效或已被吊销")
        if wait := limiter.acquire(found.org_code):
            raise ApiError(429, "RATE_LIMITED", f"请求过于频繁，请{math.ceil(wait)}秒后重试",
                           headers={"Retry-After": str(math.ceil(wait))})
        return found

    return client

"""Cross-site request forgery guard (跨站请求伪造防护) for requests a browser's cookie authenticates.

Two checks, both answering 403 with a stable code:

* ``CROSS_ORIGIN``: a state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` (or,
  without one, ``Referer``) names another host than the one it was sent to. Checked for every
  such request that carries no API key, in :class:`SameOrigin` before any route runs.
* ``CSRF_FAILED``: a state-changing request authenticated by the operator session cookie that
  lacks the session's CSRF token (header ``X-CSRF-Token``; the dashboard's forms send the
  ``csrf_token`` field instead). :func:`check_token`, called where the session is read.

Requests with an institution API key (``Authorization: Bearer`` or ``X-API-Key``) are not
cookie-based and are exempt: a browser never adds those headers by itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from phip.web import auth

from .errors import ApiError, answer

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HEADER = "X-CSRF-Token"
CROSS_ORIGIN = ("CROSS_ORIGIN", "请求来源与平台地址不一致（可能是跨站请求伪造），已拒绝：请从平台页面重新操作")
CSRF_FAILED = ("CSRF_FAILED", "缺少或错误的CSRF令牌（请求头 X-CSRF-Token），已拒绝：请刷新页面或重新获取令牌后重试")


def has_api_key(headers: dict[str, str]) -> bool:
    """An institution key header: such a request is not authenticated by a cookie."""
    return bool(headers.get("x-api-key")) or headers.get("authorization", "").lower().startswith("bearer ")


def same_origin(headers: dict[str, str]) -> bool:
    """True when neither Origin nor Referer is sent, or the one sent names the request's host.
    An opaque ``Origin: null`` (sandboxed frame, file page) is never the platform."""
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return True
    host = headers.get("host", "")
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()


def check_token(request: Request, session: auth.SessionInfo) -> None:
    """Refuse a state-changing request of a cookie session without the session's token."""
    if request.method in UNSAFE and not auth.csrf_ok(session.csrf_token, request.headers.get(HEADER)):
        raise ApiError(403, *CSRF_FAILED, field=HEADER)


class SameOrigin:
    """ASGI middleware: 403 ``CROSS_ORIGIN`` for a state-changing request from another site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if not has_api_key(headers) and not same_origin(headers):
                response = answer(Request(scope), 403, *CROSS_ORIGIN)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""One error shape for every endpoint: ``{"error": {"code", "message", "field"}}``.

Codes are stable (hospitals program against them); messages are Chinese for the engineer
reading them. A database that is down answers 503 with Retry-After, never a stack trace; a
value the database refuses (a U+0000, a number beyond its column) answers 400, because
sending it again would fail again."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from phip.accounts import AuthError
from phip.empi.errors import EmpiError
from phip.errors import PhipError
from phip.fhir import FhirError
from phip.ingest.errors import UnknownDataset, UnknownInstitution
from phip.share import ShareError
from phip.input_messages import pydantic_error_zh

log = logging.getLogger("phip.api")
RETRY_AFTER_SECONDS = 5


class ApiError(PhipError):
    """A refusal decided by the API itself (authentication, body, media type): it names its
    HTTP status and headers at the raise site."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(code, message, field)
        self.status = status
        self.headers = headers


#: The HTTP status of every error class a route lets escape (the nearest class in the MRO
#: wins; a class not listed is a bug and answers 500). ``None``: the error carries its own
#: ``status``: ApiError decides it where it is raised, and EmpiError's refusals span
#: 400/403/404/409 within one class the CLI shares (the service sets it beside the code).
HTTP_STATUS: dict[type[PhipError], int | None] = {
    ApiError: None,
    EmpiError: None,
    ShareError: None,  # phip.share: 403 no authorization, 404 absent or out of scope, 429 codes
    FhirError: None,  # phip.fhir: 400 search parameters, 403 no authorization, 404 absent
    AuthError: None,  # phip.accounts: 401 login, 403 role, 429 lockout, 400/409 input
    UnknownInstitution: 404,
    UnknownDataset: 404,
}


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


#: Human pages (path prefix → renderer of the request, status and Chinese message): an error
#: under them is an HTML page in the site's frame, not JSON (or, for someone not logged in,
#: the way to the login). The dashboard registers ``/ops`` and ``/login``.
HtmlErrorPage = Callable[[Request, int, str], Response]
_HTML_PAGES: dict[str, HtmlErrorPage] = {}


def register_html_pages(prefix: str, render: HtmlErrorPage) -> None:
    _HTML_PAGES[prefix] = render


#: APIs with an error shape of their own (path prefix → renderer of status, code, message,
#: field): the FHIR API answers an OperationOutcome, also for a refused key or an unknown path.
ErrorShape = Callable[[int, str, str, str | None], Response]
_SHAPES: dict[str, ErrorShape] = {}


def register_error_shape(prefix: str, render: ErrorShape) -> None:
    _SHAPES[prefix] = render


def answer(request: Request, status: int, code: str, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    """The error as JSON (the API's shape), or as a page where a person reads it."""
    path = request.url.path
    for prefix, shape in _SHAPES.items():
        if path == prefix or path.startswith(prefix + "/"):
            response = shape(status, code, message, field)
            if headers:
                response.headers.update(headers)
            return response
    for prefix, render in _HTML_PAGES.items():
        if path == prefix or path.startswith(prefix + "/"):
            response = render(request, status, message)
            if headers:
                response.headers.update(headers)
            return response
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def http_status(exc: PhipError) -> int:
    """The status :data:`HTTP_STATUS` gives the error's nearest listed class."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            status = HTTP_STATUS[cls]
            return exc.status if status is None else status  # type: ignore[attr-defined]
    raise LookupError(type(exc).__name__)


def install(app: FastAPI) -> None:
    async def _phip_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PhipError)
        return answer(request, http_status(exc), exc.code, exc.message, exc.field, getattr(exc, "headers", None))

    # only the listed classes: any other error escaping a route stays a 500, as a bug should
    for cls in HTTP_STATUS:
        app.add_exception_handler(cls, _phip_error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        message = {404: "接口或页面不存在", 405: "不支持的请求方法"}.get(exc.status_code, str(exc.detail))
        return answer(request, exc.status_code, code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # its loc is ("body", offset): no field to name
            offset = next((p for p in first.get("loc", ())[1:] if isinstance(p, int)), None)
            where = f"（第{offset + 1}个字符附近）" if offset is not None else ""
            return answer(request, 400, "BAD_JSON", f"请求体不是有效的JSON{where}")
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        said = pydantic_error_zh(first)  # the value is not echoed: it may be an ID number
        message = f"请求参数错误：【{field or '请求体'}】{said}" if said else f"请求参数错误：{first.get('msg', '')}"
        return answer(request, 400, "BAD_REQUEST", message, field)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _refused_value(request: Request, exc: DataError | OverflowError) -> Response:
        # SQLite's driver refuses an integer beyond 64 bits in Python (OverflowError) where
        # PostgreSQL answers DataError: the same 400 on both
        log.warning("value refused by the database: %s", type(getattr(exc, "orig", exc)).__name__)
        return answer(request, 400, "BAD_DATA", "请求中的值无法被数据库接受（如含空字符U+0000或数值超出范围），"
                                                         "本次请求未保存，请修正后重试")

    async def _database_down(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", type(exc).__name__)
        return answer(request, 503, "DATABASE_UNAVAILABLE", "平台数据库暂时不可用，本批未保存，请稍后重试",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout) -> Response:
        # every connection of this process busy for the pool's whole timeout: a busy server,
        # not a broken request; the client retries after a while (it was a 500 before)
        log.warning("connection pool exhausted")
        return answer(request, 503, "SERVER_BUSY", "平台繁忙（数据库连接已满），本次请求未保存，请稍后重试",
                      headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(DBAPIError, _database_down)


class RejectNul:
    """Answers 400 ``NUL_CHARACTER`` to a request whose path or query carries a U+0000
    (``%00``), before any route runs: PostgreSQL cannot compare text with one, and SQLite
    would just find nothing, so every back end answers alike. Records in a pushed body are
    checked one by one instead (the validator's ``NUL_CHARACTER``), so the rest of a batch
    still lands. A plain ASGI middleware: two substring tests per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            response = answer(Request(scope), 400, "NUL_CHARACTER", "请求地址或参数中含有空字符（U+0000），请删除后重试")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

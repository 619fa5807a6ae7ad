"""What every server-rendered page shares: the template environment, the security headers, the
session cookie, the role check and the CSRF check of a form.

Every route of every area calls :func:`signed_in` with the roles it serves: someone without a
session is sent to the login of that area, someone of another role gets a 403 page."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path as PathParam
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine

from phip import accounts
from phip.store.sql import MAX_ROW_ID
from phip.privacy import mask_phone

HERE = Path(__file__).parent
COOKIE = "phip_session"
LOGIN_CSRF = "phip_login_csrf"
#: where each role lands after logging in, and the areas a ``next`` address may point into
HOME = {"operator": "/ops/", "regional": "/ops/", "clinician": "/share/", "auditor": "/audit/", "resident": "/me/"}
RESIDENT_LOGIN = "/me/login"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: a row id in a page's address (an authorization, an audit event): bounded to the database's
#: 64-bit integers, so a longer one is a 400 page rather than a driver's overflow
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
           "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                      "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"}

ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
ENV.filters["mask_phone"] = mask_phone
ENV.filters["num"] = lambda v: "" if v is None else (f"{v:,}" if isinstance(v, int) else v)


class LoginRequired(Exception):
    """No session on a page that needs one: the app's handler sends the browser to ``login_url``."""

    def __init__(self, next_url: str):
        self.next_url = next_url

    @property
    def login_url(self) -> str:
        return RESIDENT_LOGIN if self.next_url.startswith("/me") else "/login"


class Forbidden(Exception):
    """A session of another role, or a form without its CSRF token: a 403 page."""

    def __init__(self, message: str):
        self.message = message


def page(name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(name).render(**ctx), status_code=status_code, headers=HEADERS)


def attachment(name: str) -> dict[str, str]:
    """A download's header for a Chinese file name: an ASCII fallback for old clients and the
    name itself encoded as RFC 5987 asks (``filename*=UTF-8''…``)."""
    return {"Content-Disposition": f"attachment; filename=\"{name.encode('ascii', 'ignore').decode() or 'file.xlsx'}\"; "
                                   f"filename*=UTF-8''{quote(name)}"}


def safe_next(url: str | None, role: str | None = None) -> str:
    """A local address inside one of the areas, else the role's home (never another site)."""
    if url and not url.startswith("//") and any(url.startswith(h) for h in HOME.values()):
        return url
    return HOME.get(role or "", "/ops/")


def landing(url: str | None, role: str) -> str:
    """Where a login goes: ``url`` when it is inside the role's own area, else the role's home."""
    home = HOME.get(role, "/ops/")
    return url if url and safe_next(url) == url and url.startswith(home.rstrip("/")) else home


def signed_in(engine: Engine, request: Request, *roles: str) -> accounts.SessionInfo:
    """The session of this request, of one of ``roles``: the server-side check of every route."""
    info = accounts.session(engine, request.cookies.get(COOKIE))
    if info is None:
        raise LoginRequired(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
    try:
        return accounts.require_role(info, *roles)
    except accounts.AuthError as exc:
        raise Forbidden(exc.message) from None


def check_csrf(me: accounts.SessionInfo, given: str | None) -> None:
    if not accounts.csrf_ok(me.csrf_token, given):
        raise Forbidden("表单已过期或来源不明（CSRF校验失败），请刷新页面后重试")


def login_token() -> str:
    """A double-submit token for a login form (no session yet): the same value in a cookie and the form."""
    return secrets.token_urlsafe(24)


def set_session(resp: Response, request: Request, token: str) -> None:
    resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    max_age=int(accounts.session_ttl().total_seconds()), path="/")


def client(request: Request) -> str:
    return request.client.host if request.client else "-"

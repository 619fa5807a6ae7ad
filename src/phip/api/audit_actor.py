"""Who is reading, as the audit trail names them (phip.audit.Actor), from an HTTP request."""

from __future__ import annotations

from fastapi import Request

from phip.audit import Actor


def address(request: Request) -> str | None:
    return request.client.host if request.client else None


def operator(request: Request, username: str, role: str = "operator") -> Actor:
    """A logged-in dashboard account (operators have no institution)."""
    return Actor(username, role, address=address(request))


def institution(request: Request, org: str) -> Actor:
    """An institution's API key, named by the prefix its key list shows (``key:<prefix>``)."""
    key = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization") or ""
    if bearer.lower().startswith("bearer "):
        key = bearer[7:].strip()
    return Actor(f"key:{key[:12]}", "institution", org_code=org, address=address(request))

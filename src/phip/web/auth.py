"""Dashboard users and sessions: argon2id password hashes (argon2-cffi), random session tokens
stored as SHA-256, sessions that expire (PHIP_SESSION_MINUTES, default 8 hours), and one CSRF
token per session for every form that changes something."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update

from phip.config import get_settings
from phip.errors import PhipError
from phip.standard.validate import platform_now

from .tables import User, WebSession

ROLES = {"operator": "运维人员（省平台）"}
_hasher = PasswordHasher()
# verify a password even for an unknown user, so response time does not tell who exists
_DUMMY = _hasher.hash("phip-dummy-password")


class AuthError(PhipError, ValueError):
    """A refused login or user change; ``code`` is stable, ``message`` Chinese."""


@dataclass(frozen=True)
class SessionInfo:
    username: str
    display_name: str
    role: str
    csrf_token: str
    expires_at: datetime


def session_ttl() -> timedelta:
    return get_settings().session_ttl


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(engine: Engine, username: str, password: str, role: str = "operator", display_name: str | None = None) -> None:
    if role not in ROLES:
        raise AuthError("BAD_ROLE", f"角色“{role}”不存在，可选：{'、'.join(ROLES)}")
    if not username or len(username) > 50 or not username.replace("_", "").replace(".", "").isalnum():
        raise AuthError("BAD_USERNAME", "用户名只能包含字母、数字、下划线和点，最长50个字符")
    if len(password) < 10:
        raise AuthError("WEAK_PASSWORD", "密码至少10个字符")
    with engine.begin() as conn:
        if conn.execute(select(User.username).where(User.username == username)).first():
            raise AuthError("USER_EXISTS", f"用户“{username}”已存在")
        conn.execute(insert(User), [{"username": username, "display_name": display_name or username, "role": role,
                                     "password_hash": _hasher.hash(password), "disabled": False, "created_at": platform_now()}])


def login(engine: Engine, username: str, password: str) -> tuple[str, SessionInfo]:
    """Check the password and open a session; returns (cookie token, session)."""
    with engine.connect() as conn:
        user = conn.execute(select(User.__table__).where(User.username == username)).first()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or user.disabled:
        raise AuthError("LOGIN_FAILED", "用户名或密码错误")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = platform_now()
    expires = now + session_ttl()
    with engine.begin() as conn:
        conn.execute(delete(WebSession).where(WebSession.expires_at < now))
        conn.execute(insert(WebSession), [{"token_hash": _digest(token), "username": user.username, "csrf_token": csrf,
                                           "created_at": now, "expires_at": expires}])
        if _hasher.check_needs_rehash(user.password_hash):
            conn.execute(update(User).where(User.username == user.username).values(password_hash=_hasher.hash(password)))
    return token, SessionInfo(user.username, user.display_name, user.role, csrf, expires)


def session(engine: Engine, token: str | None) -> SessionInfo | None:
    if not token:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(WebSession.username, User.display_name, User.role, WebSession.csrf_token, WebSession.expires_at, User.disabled)
            .join(User, User.username == WebSession.username).where(WebSession.token_hash == _digest(token))
        ).first()
    if row is None or row.disabled or row.expires_at <= platform_now():
        return None
    return SessionInfo(row.username, row.display_name, row.role, row.csrf_token, row.expires_at)


def logout(engine: Engine, token: str | None) -> None:
    if token:
        with engine.begin() as conn:
            conn.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected, given)

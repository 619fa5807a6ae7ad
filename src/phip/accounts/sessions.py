"""Users, passwords and sessions of every role: argon2id password hashes (argon2-cffi), random
session tokens stored as SHA-256, sessions that expire (PHIP_SESSION_MINUTES, default 8 hours),
one CSRF token per session, login lockout per account and per address, and the server-side
role check every route calls (:func:`require_role`)."""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, insert, select, update

from phip.audit import SYSTEM, Actor, append
from phip.config import get_settings
from phip.errors import PhipError
from phip.standard.validate import platform_now
from phip.orgs.service import register_regions
from phip.store.models import Institution
from phip.throttle import FailureLimiter

from .tables import User, WebSession

ROLES = {
    "operator": "运维人员（省平台）",
    "regional": "区域卫健委（只读）",
    "clinician": "医生（医疗机构）",
    "resident": "居民",
    "auditor": "审计员",
}
_hasher = PasswordHasher()
# verify a password even for an unknown user, so response time does not tell who exists


@cache
def _dummy() -> str:
    """A hash to verify against when the user is unknown (same time either way); made on first
    login, not at import (an argon2 hash costs 0.14 s that every CLI command paid)."""
    return _hasher.hash("phip-dummy-password")


class AuthError(PhipError, ValueError):
    """A refused login, session or user change; ``code`` is stable, ``message`` Chinese,
    ``status`` the HTTP answer (401 no login, 403 wrong role, 429 locked, 400/409 bad input)."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(code, message, field)
        self.status = status


@dataclass(frozen=True)
class SessionInfo:
    """Who is logged in: what every page and API route checks and the audit trail records."""

    username: str
    display_name: str
    role: str
    csrf_token: str
    expires_at: datetime
    org_code: str | None = None
    department: str | None = None
    person_id: str | None = None
    region_code: str | None = None  # regional: the city or county (GB/T 2260) it may read


def session_ttl() -> timedelta:
    return get_settings().session_ttl


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str) -> None:
    if len(password) < 10:
        raise AuthError("WEAK_PASSWORD", "密码至少10个字符", "password")


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def _check_username(username: str) -> None:
    if not username or len(username) > 50 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise AuthError("BAD_USERNAME", "用户名只能包含字母、数字、下划线、连字符和点，最长50个字符", "username")


def create_user(engine: Engine, username: str, password: str, role: str = "operator", display_name: str | None = None,
                *, org_code: str | None = None, department: str | None = None, person_id: str | None = None,
                region_code: str | None = None, by: Actor = SYSTEM) -> None:
    """A new account (an audit event by ``by``, the command line's is the system). A clinician
    needs a registered institution (and says its department); a regional reader a city or
    county code of the register; residents are made by
    :func:`phip.accounts.residents.set_password` or with ``person_id``."""
    if role not in ROLES:
        raise AuthError("BAD_ROLE", f"角色“{role}”不存在，可选：{'、'.join(ROLES)}", "role")
    _check_username(username)
    if role == "clinician" and not org_code:
        raise AuthError("ORG_REQUIRED", "医生账户必须属于一家医疗机构（--org）", "org_code")
    if role != "clinician" and (org_code or department):
        raise AuthError("ORG_NOT_ALLOWED", "只有医生账户属于医疗机构和科室", "org_code")
    if role == "resident" and not person_id:
        raise AuthError("PERSON_REQUIRED", "居民账户必须对应主索引中的一位居民", "person_id")
    check_region(engine, role, region_code)
    password_hash = hash_password(password)
    with engine.begin() as conn:
        if org_code and conn.execute(select(Institution.code).where(Institution.code == org_code)).first() is None:
            raise AuthError("UNKNOWN_ORG", f"医疗机构“{org_code}”未注册", "org_code")
        if conn.execute(select(User.username).where(User.username == username)).first():
            raise AuthError("USER_EXISTS", f"用户“{username}”已存在", "username", 409)
        conn.execute(insert(User), [{"username": username, "display_name": display_name or username, "role": role,
                                     "password_hash": password_hash, "disabled": False, "created_at": platform_now(),
                                     "org_code": org_code, "department": department, "person_id": person_id,
                                     "region_code": region_code}])
        append(conn, by, "account.create", person_id=person_id, target=username,
               detail={"role": role, "org_code": org_code, "department": department, "region_code": region_code})


def check_region(engine: Engine, role: str, region_code: str | None) -> None:
    """A regional reader needs a city or county code institutions are registered under (else
    it would read an empty, misleading dashboard); no other role has one."""
    if role != "regional":
        if region_code:
            raise AuthError("REGION_NOT_ALLOWED", "只有区域卫健委账户属于行政区划（--region）", "region_code")
        return
    if not region_code:
        raise AuthError("REGION_REQUIRED", "区域卫健委账户必须指定所辖市或区县的行政区划代码（--region，如 220100）",
                        "region_code")
    if region_code not in register_regions(engine):
        raise AuthError("UNKNOWN_REGION", f"行政区划代码“{region_code}”不是机构登记册中的市或区县代码", "region_code")


class LoginGuard:
    """Login failure handling (等保 2.0): five wrong passwords per account, twenty per address,
    in 15 minutes; then the login is refused before the password is even checked."""

    def __init__(self, per_account: int = 5, per_address: int = 20, window: float = 900.0):
        self.by_account, self.by_address = FailureLimiter(per_account, window), FailureLimiter(per_address, window)

    def check(self, account: str, address: str) -> None:
        if wait := max(self.by_account.wait(f"user:{account}"), self.by_address.wait(f"addr:{address}")):
            raise AuthError("LOGIN_LOCKED", f"登录失败次数过多，请{math.ceil(wait / 60)}分钟后再试", status=429)

    def failed(self, account: str, address: str) -> None:
        self.by_account.failed(f"user:{account}")
        self.by_address.failed(f"addr:{address}")

    def succeeded(self, account: str) -> None:
        self.by_account.succeeded(f"user:{account}")


def _user_row(conn: Connection, username: str):  # noqa: ANN202
    return conn.execute(select(User.__table__).where(User.username == username)).first()


def login(engine: Engine, username: str, password: str, *, guard: LoginGuard | None = None,
          address: str = "-") -> tuple[str, SessionInfo]:
    """Check the password and open a session; returns (cookie token, session). With ``guard``
    the account and the address are locked out after repeated failures."""
    if guard is not None:
        guard.check(username, address)
    with engine.connect() as conn:
        user = _user_row(conn, username)
    try:
        _hasher.verify(user.password_hash if user else _dummy(), password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or user.disabled:
        if guard is not None:
            guard.failed(username, address)
        raise AuthError("LOGIN_FAILED", "用户名或密码错误", status=401)
    if guard is not None:
        guard.succeeded(username)
    return open_session(engine, user, password)


def open_session(engine: Engine, user, password: str | None = None) -> tuple[str, SessionInfo]:  # noqa: ANN001
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = platform_now()
    expires = now + session_ttl()
    with engine.begin() as conn:
        conn.execute(delete(WebSession).where(WebSession.expires_at < now))
        conn.execute(insert(WebSession), [{"token_hash": _digest(token), "username": user.username, "csrf_token": csrf,
                                           "created_at": now, "expires_at": expires}])
        if password is not None and _hasher.check_needs_rehash(user.password_hash):
            conn.execute(update(User).where(User.username == user.username).values(password_hash=_hasher.hash(password)))
    return token, SessionInfo(user.username, user.display_name, user.role, csrf, expires, user.org_code,
                              user.department, user.person_id, user.region_code)


def session(engine: Engine, token: str | None) -> SessionInfo | None:
    if not token:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(WebSession.username, User.display_name, User.role, WebSession.csrf_token, WebSession.expires_at,
                   User.disabled, User.org_code, User.department, User.person_id, User.region_code)
            .join(User, User.username == WebSession.username).where(WebSession.token_hash == _digest(token))
        ).first()
    if row is None or row.disabled or row.expires_at <= platform_now():
        return None
    return SessionInfo(row.username, row.display_name, row.role, row.csrf_token, row.expires_at, row.org_code,
                       row.department, row.person_id, row.region_code)


def logout(engine: Engine, token: str | None) -> None:
    if token:
        with engine.begin() as conn:
            conn.execute(delete(WebSession).where(WebSession.token_hash == _digest(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected, given)


def require_role(info: SessionInfo | None, *roles: str) -> SessionInfo:
    """The server-side role check of every route: 401 without a session, 403 for another role."""
    if info is None:
        raise AuthError("LOGIN_REQUIRED", "请先登录", status=401)
    if roles and info.role not in roles:
        names = "、".join(ROLES.get(r, r) for r in roles)
        raise AuthError("ROLE_FORBIDDEN", f"当前账户无权访问：仅限{names}", status=403)
    return info


def user_info(engine: Engine, username: str) -> SessionInfo | None:
    """An enabled account as a :class:`SessionInfo` without a session (the share API's clinician id)."""
    with engine.connect() as conn:
        row = _user_row(conn, username)
    if row is None or row.disabled:
        return None
    return SessionInfo(row.username, row.display_name, row.role, "", datetime.max, row.org_code, row.department,
                       row.person_id, row.region_code)

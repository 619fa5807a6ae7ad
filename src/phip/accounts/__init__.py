"""Accounts of every role (账户与角色): operators, regional readers, clinicians, residents,
auditors; passwords, sessions, lockout and the server-side role check. One model for every
page and API."""

from .sessions import (
    ROLES,
    AuthError,
    LoginGuard,
    SessionInfo,
    create_user,
    csrf_ok,
    login,
    logout,
    require_role,
    session,
    session_ttl,
    user_info,
)

__all__ = ["ROLES", "AuthError", "LoginGuard", "SessionInfo", "create_user", "csrf_ok", "login", "logout",
           "require_role", "session", "session_ttl", "user_info"]

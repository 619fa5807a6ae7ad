"""Who did something (操作人): the subject of every audit event."""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("operator", "regional", "clinician", "resident", "auditor", "institution", "system")


@dataclass(frozen=True)
class Actor:
    """An account, or ``key:<key id>`` for an institution's API key, with the role it acted in."""

    username: str  # account name, or "key:<key id>" for an institution's API key
    role: str  # operator | regional | clinician | resident | auditor | institution | system
    org_code: str | None = None  # the actor's institution
    department: str | None = None
    address: str | None = None  # client IP


SYSTEM = Actor("system", "system")


def local_operator() -> Actor:
    """Whoever runs a ``phip`` command: the operating-system account (the shell has no login)."""
    import os
    import pwd

    return Actor(pwd.getpwuid(os.getuid()).pw_name, "operator", address="local")

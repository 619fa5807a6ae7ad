"""Errors of the audit trail (审计日志)."""

from __future__ import annotations

from phip.errors import PhipError


class AuditError(PhipError):
    """A refused audit operation or a trail that fails verification; ``code`` is stable."""

"""One tamper-evident audit trail (审计日志): every read of personal data and every change of
consent, account or EMPI link, chained with HMAC-SM3 and anchored outside the database.

Entry points call :func:`append` inside the transaction of a change, or :func:`log_event`
for a read; the auditor's page and the resident's access log use the query functions."""

from __future__ import annotations

from .actor import SYSTEM, Actor
from .errors import AuditError
from .queries import REVIEW, VERDICTS, for_person, pending_reviews, review, search
from .trail import append, log_event

__all__ = ["REVIEW", "SYSTEM", "VERDICTS", "Actor", "AuditError", "append", "for_person", "log_event",
           "pending_reviews", "review", "search"]

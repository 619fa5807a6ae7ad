"""Sharing (共享调阅): find a patient through the EMPI, authorizations (consent, one-time code,
break-the-glass), and the cross-institution timeline and documents an authorized reader sees.
Pages (phip.web) and the JSON API (phip.api.share) call these functions and nothing else."""

from .catalog import load_catalog
from .grants import (
    CODE_LIMITS,
    CodeLimits,
    authorizations,
    break_glass,
    grant_consent,
    issue_code,
    redeem_code,
    revoke,
)
from .patients import find
from .policy import ShareError
from .records import document, timeline

__all__ = ["CODE_LIMITS", "CodeLimits", "ShareError", "authorizations", "break_glass", "document", "find",
           "grant_consent", "issue_code", "load_catalog", "redeem_code", "revoke", "timeline"]

"""Refusals as FHIR answers: an OperationOutcome with a stable PHIP code (the same codes the
sharing API answers) and a Chinese diagnostics text for the engineer reading it."""

from __future__ import annotations

from typing import Any

from phip.errors import PhipError

#: the IssueType (http://hl7.org/fhir/issue-type) of each HTTP status a refusal answers
ISSUE_TYPE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported", 406: "not-supported",
              409: "conflict", 410: "deleted", 429: "throttled", 503: "transient"}
CODE_SYSTEM = "https://phip.local/fhir/CodeSystem/error-code"


class FhirError(PhipError):
    """A refused FHIR request; ``status`` is its HTTP answer."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None):
        super().__init__(code, message, field)
        self.status = status


def operation_outcome(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error" if status < 500 else "fatal",
        "code": ISSUE_TYPE.get(status, "exception"),
        "details": {"coding": [{"system": CODE_SYSTEM, "code": code}], "text": message},
        "diagnostics": message,
    }
    if field:
        issue["expression"] = [field]
    return {"resourceType": "OperationOutcome", "issue": [issue]}

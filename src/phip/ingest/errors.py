"""Errors of a batch that cannot enter the pipeline at all (not a record-level problem)."""

from __future__ import annotations

from phip.errors import PhipError


class IngestError(PhipError):
    """A batch refused as a whole: its institution or data set is not known."""

    code = "INGEST_ERROR"

    def __init__(self, message: str):
        super().__init__(None, message)


class UnknownInstitution(IngestError):
    code = "UNKNOWN_ORG"


class UnknownDataset(IngestError):
    code = "UNKNOWN_DATASET"

"""Step one of a batch, with no database: validate and normalise every record, key and hash it.

A pure function of its arguments, so it runs the same in the writer's process or in the
validation process (:mod:`phip.ingest.workers`); :func:`validate_remote` is what that
process runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from phip.gc_tuning import gc_paused
from phip.standard.catalog import DataSet, Standard, load_standard
from phip.standard.checks import replace_nul
from phip.standard.validate import Finding, RecordValidator, finding, validator_for

from . import workers
from .keys import KEY_SEPARATOR, document, record_key
from .readers import Unreadable
from .receipt import Rejection

_USCC_PROBLEMS = ("USCC_FORMAT", "USCC_CHECKSUM")


@dataclass(slots=True)
class Good:
    """A record that passed validation, keyed and hashed, waiting for its person and its write."""

    index: int
    record: dict[str, Any]
    key: str
    hash: str
    event_time: datetime | None
    warnings: list[Finding]
    #: The record as its canonical JSON (see ingest.keys.document) when validated in this
    #: process; a validation process leaves it out (:func:`good_rows`): pickled, the text costs
    #: more than serialising the record again.
    document: bytes | None = None
    person_id: str | None = None


@dataclass(slots=True)
class Validated:
    """A batch already validated elsewhere (a reader process), as a stream hands it in."""

    records: Sequence[Any]  # the records as sent (rejected ones are stored as such)
    good: list[Good]
    rejections: list[Rejection]


def validate_batch(
    standard: Standard, dataset: DataSet, org_code: str, org_name: str, records: Sequence[Any], now: datetime,
    *, documents: bool = True,
) -> tuple[list[Good], list[Rejection]]:
    """(good, rejections) of one batch. Person resolution stays with the writer: its result
    costs more to unpickle than to compute.

    ``documents``: keep each record's canonical JSON for the writer. A validation process does
    not: it hands back records only, which keeps its peak memory lower."""
    with gc_paused():
        return _validate_batch(standard, dataset, org_code, org_name, records, now, documents)


def _validate_batch(
    standard: Standard, dataset: DataSet, org_code: str, org_name: str, records: Sequence[Any], now: datetime,
    documents: bool,
) -> tuple[list[Good], list[Rejection]]:
    validator = validator_for(standard, dataset)
    event_field = dataset.event_time
    good: list[Good] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(records):
        if isinstance(raw, Unreadable):
            rejections.append(Rejection(index, None, [finding("UNREADABLE", None, reason=raw.reason)]))
            continue
        if isinstance(raw, dict):
            claimed = raw.get("org_code")
            if claimed in (None, ""):
                raw = {**raw, "org_code": org_code}
                if raw.get("org_name") in (None, ""):
                    raw["org_name"] = org_name
            elif not same_institution(claimed, org_code):
                rejections.append(_rejected(validator, dataset, index, raw,
                                            [finding("ORG_MISMATCH", "org_code", value=claimed, org=org_code)]))
                continue
        outcome = validator.validate(raw, now)
        if outcome.record is None:
            rejections.append(_rejected(validator, dataset, index, raw, outcome.findings))
            continue
        record = outcome.record
        warnings = outcome.findings
        if warnings and record.get("org_code") == org_code:
            # the sender's own code was checked when it was registered (a business system has no
            # USCC at all): not a warning on each of its records
            warnings = [f for f in warnings if not (f.field == "org_code" and f.code in _USCC_PROBLEMS)]
        event = record.get(event_field)
        if event is not None and not isinstance(event, datetime):
            event = datetime(event.year, event.month, event.day)
        text, digest = document(record)
        good.append(Good(index, record, record_key(dataset, record), digest, event, warnings,
                         text if documents else None))
    return good, rejections


def same_institution(claimed: Any, org_code: str) -> bool:
    """Whether a record's ``org_code`` names the sending institution (case and spaces aside)."""
    return claimed == org_code or str(claimed).strip().upper() == org_code


def _raw_key(dataset: DataSet, raw: Any) -> str | None:
    """Best-effort key of a rejected record so the hospital can find it."""
    if not isinstance(raw, dict):
        return None
    try:
        parts = [raw[k] for k in dataset.natural_key]
    except KeyError:
        return None
    if any(isinstance(part, dict | list | tuple) for part in parts):
        return None  # a key is a value, never a structure (whose str() may nest without end)
    return replace_nul(KEY_SEPARATOR.join(map(str, parts))[:200])


def _rejected(validator: RecordValidator, dataset: DataSet, index: int, raw: Any, findings: list[Finding]) -> Rejection:
    """A rejection known by the natural key when its fields can be read as a stored record's
    would be (then the corrected record, stored under that key, clears it), else by content."""
    values = validator.natural_key_values(raw)
    if values is not None:
        key = record_key(dataset, values)
        if len(key) <= 200:
            return Rejection(index, key, findings, True)
    return Rejection(index, _raw_key(dataset, raw), findings)


def validate_remote(dataset_code: str, org_code: str, org_name: str, records: Sequence[Any], now: datetime) -> tuple:
    """One batch validated in the validation process, as it returns it: (rows, rejections)."""
    standard = load_standard()
    good, rejections = validate_batch(standard, standard.dataset(dataset_code), org_code, org_name, records, now,
                                      documents=False)
    return good_rows(good), rejections


def good_rows(good: list[Good]) -> list[tuple]:
    """Validated records as plain tuples, which pickle several times faster than the dataclass."""
    return [(g.index, g.record, g.key, g.hash, g.event_time, g.warnings) for g in good]


def goods(rows: list[tuple]) -> list[Good]:
    """The validated records from the plain tuples a validation process returns."""
    return [Good(*row) for row in rows]


def from_remote(validated: tuple | None) -> tuple[list[Good], list[Rejection]] | None:
    return None if validated is None else (goods(validated[0]), validated[1])


workers.preload(validate_remote)

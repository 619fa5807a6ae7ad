"""What identifies a record and its content: the natural key (the store's idempotency key with
the institution and data set) and the content hash of its canonical JSON.

A module of its own because the EMPI (which names records in its review queue) and the
benchmarks need them without the pipeline.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any

import orjson

from phip.standard.catalog import DataSet

KEY_SEPARATOR = "|"


def record_key(dataset: DataSet, record: dict[str, Any]) -> str:
    """The natural-key values of a normalised record joined by ``|`` (a ``|`` or ``\\`` inside a
    value escaped, so two different keys never join to the same text)."""
    values = []
    for name in dataset.natural_key:
        value = record[name]
        text = value.isoformat() if isinstance(value, date | datetime) else str(value)
        values.append(text.replace("\\", "\\\\").replace(KEY_SEPARATOR, "\\" + KEY_SEPARATOR))
    return KEY_SEPARATOR.join(values)


def content_hash(record: dict[str, Any]) -> str:
    """Hash of the canonical JSON of a normalised record: equal content, equal hash."""
    return document(record)[1]


def document(record: dict[str, Any]) -> tuple[bytes, str]:
    """The canonical JSON of a normalised record (keys sorted, UTF-8) and its content hash.
    Validated in the writer's own process, a record is stored as this very text (see
    ``ingest.validation.Good``), not serialised a second time by the driver."""
    text = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return text, hashlib.blake2b(text, digest_size=16).hexdigest()

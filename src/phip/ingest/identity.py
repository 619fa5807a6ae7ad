"""Person resolution inside the pipeline: the hook (:class:`PersonResolver`) the EMPI fills.

The pipeline is handed a resolver by whoever builds it (:mod:`phip.runtime`); ingest itself
knows no resolver, so the EMPI sits above ingest and ingest never imports it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from phip.standard.catalog import DataSet
from phip.standard.validate import Finding


@dataclass
class Resolution:
    """What a resolver hands back: the person of each record (None when it names no person)
    and extra findings by record index (the EMPI's ID-number guard warns this way)."""

    person_ids: list[str | None]
    findings: dict[int, list[Finding]] = field(default_factory=dict)


class PersonResolver(Protocol):
    def resolve(
        self, conn: Connection, org_code: str, dataset: DataSet, records: Sequence[dict[str, Any]], now: datetime
    ) -> Resolution:
        ...


def new_person_id() -> str:
    """A new person id: 32 hex digits, time-ordered like UUIDv7 (48-bit milliseconds, then 80
    random bits). The id is indexed in persons, identifiers, the candidate index and records;
    random ids (uuid4) land on random leaf pages of all four indexes, so once a province's
    tables outgrow memory every new person costs four page reads and, after each checkpoint,
    four full-page images in the WAL. Time-ordered ids append to the right-hand pages."""
    return f"{time.time_ns() // 1_000_000:012x}{_random_bits.next():020x}"


class _RandomBits:
    """80 random bits per call, drawn from the operating system 4 KiB at a time: one
    ``getrandom`` system call per id cost 6 µs here, a twentieth of a new person's cost.
    A forked child starts with an empty buffer, so two processes never hand out the same bits."""

    _SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer = b""
        self._at = 0

    def next(self) -> int:
        with self._lock:
            if self._at + 10 > len(self._buffer):
                self._buffer, self._at = os.urandom(self._SIZE), 0
            start = self._at
            self._at = start + 10
            return int.from_bytes(self._buffer[start : start + 10], "big")


_random_bits = _RandomBits()


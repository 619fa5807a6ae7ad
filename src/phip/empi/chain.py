"""Hash chain of the EMPI audit trail (操作记录防篡改链).

Every event written after migration 0006 carries ``hash`` = SHA-256 of the previous event's
hash and this event's canonical content (action, time, actor, reason, persons, review, the
event it reverts, detail). Events are only written under the exclusive EMPI lock, so the
chain is linear in id order. ``reverted_by`` is left out: it is filled in later, and the undo
event that sets it is itself chained through ``reverts``. ``phip empi verify`` recomputes the
chain: an edited, deleted or reordered event breaks it from that event on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from .tables import EmpiEvent

GENESIS = "0" * 64
FIELDS = ("action", "at", "actor", "reason", "person_id", "other_id", "review_id", "reverts", "detail")


def _canonical(event: Mapping[str, Any]) -> bytes:
    doc = {f: event.get(f) for f in FIELDS}
    if isinstance(doc["at"], datetime):
        doc["at"] = doc["at"].isoformat(sep=" ")
    # sorted keys: JSONB (PostgreSQL) gives keys back in its own order
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def link(previous: str, event: Mapping[str, Any]) -> str:
    return hashlib.sha256(previous.encode() + _canonical(event)).hexdigest()


def last_hash(conn: Connection) -> str:
    """Hash of the newest event (GENESIS when none is chained yet); call under the EMPI lock."""
    e = EmpiEvent.__table__
    return conn.execute(select(e.c.hash).order_by(e.c.id.desc()).limit(1)).scalar() or GENESIS


def seal(conn: Connection, events: Iterable[dict[str, Any]]) -> None:
    """Set ``hash`` on new events (dicts of column values), in the order they will get ids."""
    previous = last_hash(conn)
    for event in events:
        event["hash"] = previous = link(previous, event)


@dataclass
class Verdict:
    checked: int = 0  # chained events whose hash was recomputed
    unchained: int = 0  # events written before the chain began (migration 0006)
    broken_at: int | None = None  # id of the first event whose hash does not follow

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(engine: Engine) -> Verdict:
    e = EmpiEvent.__table__
    verdict, previous = Verdict(), GENESIS
    cols = [e.c.id, e.c.hash, *[e.c[f] for f in FIELDS]]
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(select(*cols).order_by(e.c.id))
        for row in rows.mappings():
            if row["hash"] is None and verdict.checked == 0:
                verdict.unchained += 1
                continue
            if row["hash"] != link(previous, row):
                verdict.broken_at = row["id"]
                break
            previous = row["hash"]
            verdict.checked += 1
    return verdict

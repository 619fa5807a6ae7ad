"""The receipt of a batch (回执) and its rejected records, as the sender is told them and as
the store gives them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, select

from phip.standard.validate import Finding
from phip.store.models import Batch, BatchFinding


@dataclass(slots=True)
class Rejection:
    index: int
    record_key: str | None
    findings: list[Finding]
    #: ``record_key`` is the natural key as a stored record of it would have it (normalised):
    #: the stored rejection is known by it, and a record of that key accepted later clears it.
    #: Otherwise the key is a best effort for the hospital to read, and the rejection is known
    #: by the content hash of its payload.
    keyed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "record_key": self.record_key, "findings": [f.as_dict() for f in self.findings]}


@dataclass(slots=True)
class Receipt:
    """What the sender is told (回执): one per batch."""

    batch_id: str
    org_code: str
    dataset: str
    source: str
    received_at: datetime
    total: int = 0
    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    #: event days of the records this batch stored or changed: the quality analysis covers
    #: the days that received data, a back-fill's included
    event_days: set[date] = field(default_factory=set)

    def as_dict(self, max_rejections: int | None = None) -> dict[str, Any]:
        shown = self.rejections if max_rejections is None else self.rejections[:max_rejections]
        return receipt_dict(
            batch_id=self.batch_id, org_code=self.org_code, dataset=self.dataset, source=self.source,
            received_at=self.received_at, counts={name: getattr(self, name) for name in COUNTS},
            rejections=[r.as_dict() for r in shown],
        )

    def add(self, other: Receipt, keep: int | None = None) -> None:
        """Fold another receipt into this one (a file import is many batches), keeping at most
        ``keep`` rejections in all (every one is stored with its batch either way): a file of
        a million bad rows must not be held in memory to show the first ten."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.event_days |= other.event_days
        room = len(other.rejections) if keep is None else max(0, keep - len(self.rejections))
        self.rejections.extend(other.rejections[:room])


#: The counts of a receipt, in the order the sender sees them.
COUNTS = ("total", "accepted", "updated", "unchanged", "rejected", "warnings")


def receipt_dict(*, batch_id: str, org_code: str, dataset: str, source: str, received_at: datetime,
                 counts: dict[str, int], rejections: list[dict[str, Any]]) -> dict[str, Any]:
    """A receipt as JSON, whether just made (:meth:`Receipt.as_dict`) or read back from the store."""
    return {
        "batch_id": batch_id,
        "org_code": org_code,
        "dataset": dataset,
        "source": source,
        "received_at": received_at.isoformat(sep=" "),
        "counts": {name: counts[name] for name in COUNTS},
        "rejections": rejections,
    }


def stored_receipt(engine: Engine, org_code: str, batch_id: str) -> dict[str, Any] | None:
    """A batch's receipt read back from the store (as :meth:`Receipt.as_dict` gave it), None
    when the institution has no batch of that id."""
    with engine.connect() as conn:
        batch = conn.execute(select(Batch).where(Batch.id == batch_id, Batch.org_code == org_code)).first()
        if batch is None:
            return None
        rows = conn.execute(
            select(BatchFinding.idx, BatchFinding.record_key, BatchFinding.findings)
            .where(BatchFinding.batch_id == batch_id, BatchFinding.rejected.is_(True)).order_by(BatchFinding.idx)
        ).all()
    return receipt_dict(
        batch_id=batch.id, org_code=batch.org_code, dataset=batch.dataset, source=batch.source,
        received_at=batch.received_at, counts={name: getattr(batch, name) for name in COUNTS},
        rejections=[{"index": r.idx, "record_key": r.record_key, "findings": r.findings} for r in rows],
    )

"""Read side of rejections (拒收记录) for the CLI, the dashboard and the feedback API: counts
per institution and data set, pages of rejections with masked examples, and an institution's
own open rejections.

The pipeline keeps one current rejection per source row and content (``rejected_records``,
see ``phip.ingest.writer._keep_rejections``); it is open until a record of its key
is accepted. A rejected record is shown as it was sent, so its values are of unknown meaning:
ID-number and phone fields are masked by field, and every other value by shape
(``phip.privacy.mask_text``), before anything leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, case, desc, func, select

from phip.standard.catalog import DataSet, load_standard
from phip.store.models import BatchFinding, Institution, RejectedRecord
from phip.privacy import PERSON_FIELD_MASKS, mask_id, mask_phone, mask_text

#: Characters of one shown value: enough to recognise it, not a dump of the record.
SHOWN = 60


@dataclass(frozen=True)
class Group:
    """Rejections of one institution × data set."""

    org_code: str
    org_name: str
    dataset: str
    dataset_name: str
    open: int
    resolved: int
    times_seen: int  # receipts that carried them, the open ones
    last_seen: datetime | None


@dataclass(frozen=True)
class RejectionView:
    id: int
    org_code: str
    dataset: str
    record_key: str | None
    first_seen: datetime
    last_seen: datetime
    times_seen: int
    resolved_at: datetime | None
    findings: list[dict[str, Any]]  # code, field, message (messages never carry a full ID number)
    example: dict[str, str]  # label: masked value as sent

    @property
    def reasons(self) -> str:
        return "；".join(f"[{f.get('code')}] {f.get('message', '')}" for f in self.findings if f.get("severity", "error") == "error")


def groups(engine: Engine, *, org_code: str | None = None, dataset: str | None = None,
           include_resolved: bool = False) -> list[Group]:
    """Counts per institution × data set, those with open rejections (or any, ``include_resolved``)."""
    r = RejectedRecord
    is_open = r.resolved_at.is_(None)
    # sum(CASE …), not count(*) FILTER: MariaDB has no FILTER clause
    stmt = (select(r.org_code, r.dataset, func.sum(case((is_open, 1), else_=0)), func.sum(case((is_open, 0), else_=1)),
                   func.sum(case((is_open, r.times_seen), else_=0)), func.max(r.last_seen))
            .group_by(r.org_code, r.dataset))
    if org_code:
        stmt = stmt.where(r.org_code == org_code)
    if dataset:
        stmt = stmt.where(r.dataset == dataset)
    if not include_resolved:
        stmt = stmt.where(is_open)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        names = dict(conn.execute(select(Institution.code, Institution.name)
                                  .where(Institution.code.in_({row[0] for row in rows}))).all()) if rows else {}
    std = load_standard()
    order = {d.code: d.number for d in std.datasets}
    out = [Group(org, names.get(org, org), ds, std.dataset(ds).name, int(n_open or 0), int(n_resolved or 0),
                 int(seen or 0), last)
           for org, ds, n_open, n_resolved, seen, last in rows]
    return sorted(out, key=lambda g: (g.org_code, order.get(g.dataset, 999)))


def open_counts(engine: Engine, org_code: str) -> dict[str, int]:
    """Open rejections of an institution by data set (the quality score counts them)."""
    r = RejectedRecord
    with engine.connect() as conn:
        return {ds: n for ds, n in conn.execute(
            select(r.dataset, func.count()).where(r.org_code == org_code, r.resolved_at.is_(None)).group_by(r.dataset))}


def find(engine: Engine, org_code: str, dataset: str, *, include_resolved: bool = False, page: int = 1,
         size: int = 50, role: str = "operator") -> tuple[list[RejectionView], int]:
    """A page of one institution × data set's rejections, most recently seen first, masked; and the total."""
    r = RejectedRecord
    where = [r.org_code == org_code, r.dataset == dataset]
    if not include_resolved:
        where.append(r.resolved_at.is_(None))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(r).where(*where)).scalar_one()
        rows = conn.execute(select(r.__table__).where(*where).order_by(desc(r.last_seen), desc(r.id))
                            .limit(size).offset((page - 1) * size)).all()
    ds = load_standard().dataset(dataset)
    return [RejectionView(row.id, row.org_code, row.dataset, row.record_key, row.first_seen, row.last_seen,
                          row.times_seen, row.resolved_at, _masked_findings(row.findings or [], role),
                          example(ds, row.payload, row.findings or [], role)) for row in rows], total


def example(dataset: DataSet, payload: Any, findings: list[dict[str, Any]], role: str = "operator") -> dict[str, str]:
    """The values that say whose record it is and what was wrong with it, as sent and masked:
    the person (name, ID number, phone) and every field a finding names."""
    if isinstance(payload, dict) and "_unreadable" in payload:
        return {"原文": _shown(mask_text(payload["_unreadable"], role))}
    for marker in ("_unserialisable", "_too_deep"):  # what the pipeline kept instead (ingest.writer._jsonable)
        if isinstance(payload, dict) and marker in payload:
            return {"原文": _shown(mask_text(payload[marker], role))}
    if not isinstance(payload, dict):
        return {"原文": _shown(mask_text(_text(payload), role))}
    specs = {f.name: f for f in dataset.fields}
    person = dataset.person
    roles = {field: person_role for person_role, field in person.items()}
    wanted = []  # the natural key is shown beside, as the record's key
    for role_name in ("name", "id_no", "phone"):
        if role_name in person:
            wanted.append(person[role_name])
    wanted += [f["field"] for f in findings if f.get("field")]
    out: dict[str, str] = {}
    for name in dict.fromkeys(wanted):
        if name not in payload or payload[name] in (None, ""):
            continue
        spec = specs.get(name)
        value = payload[name]
        rule = PERSON_FIELD_MASKS.get(roles.get(name, ""))
        if spec is not None and spec.check == "id_no" or name == person.get("id_no"):
            shown = mask_id(_text(value), role)
        elif spec is not None and spec.check == "phone" or name == person.get("phone"):
            shown = mask_phone(_text(value), role)
        elif rule is not None:
            shown = mask_text(rule(_text(value), role), role)
        else:
            shown = mask_text(_text(value), role)
        out[spec.label if spec is not None else name] = _shown(shown)
    return out


def as_json(view: RejectionView) -> dict[str, Any]:
    return {"record_key": view.record_key, "first_seen": view.first_seen.isoformat(sep=" "),
            "last_seen": view.last_seen.isoformat(sep=" "), "times_seen": view.times_seen,
            "resolved_at": view.resolved_at.isoformat(sep=" ") if view.resolved_at else None,
            "findings": [{k: f.get(k) for k in ("severity", "code", "field", "message")} for f in view.findings],
            "example": view.example}


def _masked_findings(findings: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    """A message may quote the value it refuses: one sent in the wrong field may be an ID number."""
    return [{**f, "message": mask_text(f.get("message", ""), role)} for f in findings]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def feedback_items(engine: Engine, org_code: str, since: datetime | None, limit: int,
                   warnings: bool = False) -> list[dict[str, Any]]:
    """The institution's open rejections as the feedback API gives them (its own data: not
    masked), each source row once however often it was sent; with ``warnings``, the receipts'
    lines of stored records with warnings too (one per batch that carried them), by time."""
    rr = RejectedRecord
    stmt = (select(rr.last_seen, rr.first_seen, rr.times_seen, rr.batch_id, rr.dataset, rr.idx, rr.record_key,
                   rr.findings)
            .where(rr.org_code == org_code, rr.resolved_at.is_(None)).order_by(rr.last_seen, rr.id).limit(limit))
    warned = (select(BatchFinding.created_at, BatchFinding.batch_id, BatchFinding.dataset, BatchFinding.idx,
                     BatchFinding.record_key, BatchFinding.findings)
              .where(BatchFinding.org_code == org_code, BatchFinding.rejected.is_(False))
              .order_by(BatchFinding.created_at, BatchFinding.id).limit(limit))
    if since is not None:
        stmt = stmt.where(rr.last_seen >= since)
        warned = warned.where(BatchFinding.created_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        warned_rows = conn.execute(warned).all() if warnings else []
    items = [
        {"received_at": r.last_seen.isoformat(sep=" "), "first_seen": r.first_seen.isoformat(sep=" "),
         "times_seen": r.times_seen, "batch_id": r.batch_id, "dataset": r.dataset,
         "index": r.idx, "record_key": r.record_key, "rejected": True, "findings": r.findings} for r in rows]
    if not warnings:
        return items
    return sorted(items + [
        {"received_at": r.created_at.isoformat(sep=" "), "batch_id": r.batch_id, "dataset": r.dataset,
         "index": r.idx, "record_key": r.record_key, "rejected": False, "findings": r.findings}
        for r in warned_rows], key=lambda item: item["received_at"])[:limit]

"""Shared documents in and out of the store: a patient's stored records rendered as a CDA for
an authorized reader (the sharing policy decides, the audit trail records), and received
documents run through the one pipeline (same receipts, rejections and feedback as JSON).

Authorization is sharing's (:func:`phip.share.policy.access`): a clinician needs the
patient's consent, a one-time code or a break-the-glass grant covering the record's
institution and category, exactly as for the JSON document view; a document outside the
reader's scope is "not found" like one that does not exist."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from phip.accounts import SessionInfo
from phip.accounts.trail import audit
from phip.ingest.pipeline import Pipeline, Receipt
from phip.share.policy import ShareError, access, no_authorization, not_found
from phip.store.models import Record

from .inbound import Mapped, read
from .problems import DocumentRefused
from .readahead import read_many
from .render import render
from .templates import Template, load_templates

SOURCE = "api"  # a document arrives through the institution's push interface, as JSON batches do


def template_of(ref: str) -> Template:
    try:
        return load_templates().get(ref)
    except KeyError:
        known = "、".join(load_templates().by_code)
        raise ShareError("UNKNOWN_DOCUMENT_TYPE", f"共享文档类型“{ref}”不存在，可用：{known}", "type", status=404) from None


def export(engine: Engine, who: SessionInfo, ref: str, person_id: str, key: str, org_code: str | None = None,
           address: str | None = None) -> bytes:
    """The CDA of one document of the patient (``key``: the template's key field, e.g. a visit
    number or a prescription number); 403 without authorization, 404 outside its scope."""
    template = template_of(ref)
    ds = template.dataset
    r = Record
    with engine.begin() as conn:
        acc = access(conn, who, person_id)
        refusal: ShareError | None = None
        rows: list[Any] = []
        grant = None
        if not acc.any:
            refusal = no_authorization()
        else:
            match = r.payload[template.group].as_string() == key if template.group else r.record_key == key
            query = select(r.id, r.org_code, r.payload).where(r.person_id.in_(acc.ids), r.dataset == ds.code, match)
            if org_code:
                query = query.where(r.org_code == org_code)
            rows = list(conn.execute(query).all())
            orgs = {row.org_code for row in rows}
            if len(orgs) > 1:
                refusal = ShareError("AMBIGUOUS_DOCUMENT", "多家机构有此编号的文档，请用 org_code 指明机构", "org_code", status=409)
            elif rows:
                grant = acc.grant_for(rows[0].org_code, ds.code)
            if not rows or (refusal is None and grant is None):
                refusal = refusal or not_found()
        if refusal is not None:
            audit(conn, who, "share.refused", address=address, person_id=acc.person_id, target=f"cda:{template.code}:{key}")
            raise_it = refusal
        else:
            raise_it = None
            rows.sort(key=lambda row: (row.payload.get("item_no") or 0, row.id))
            xml = render(template, [row.payload for row in rows])
            audit(conn, who, "share.cda", address=address, person_id=acc.person_id, authorization=grant or None,
                  flagged=acc.break_glass({grant} if grant else set()), target=f"{ds.code}:{rows[0].id}",
                  detail={"template": template.code, "org_code": rows[0].org_code, "records": len(rows)})
    if raise_it is not None:
        raise raise_it
    return xml


def receive(pipeline: Pipeline, org_code: str, body: bytes, now: datetime | None = None) -> tuple[Mapped, Receipt]:
    """One received document through the pipeline; DocumentRefused (nothing stored) when it
    fails its template."""
    mapped = read(body)
    receipt = pipeline.ingest(org_code, mapped.template.dataset.code, mapped.records, source=SOURCE,
                              source_ref=f"CDA {mapped.template.code} {mapped.document_id}"[:200], now=now)
    return mapped, receipt


@dataclass
class Received:
    """Many documents read and ingested together (file import, benchmark)."""

    documents: int = 0
    refused: list[tuple[int, DocumentRefused]] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)


def receive_many(pipeline: Pipeline, org_code: str, bodies: Iterable[bytes], source_ref: str = "CDA",
                 now: datetime | None = None, batch: int = 1000) -> Received:
    """Documents read (on both cores: :mod:`.readahead`) and their records ingested in batches
    per data set: a refused document is reported and skipped, the others stored."""
    out = Received()
    pending: dict[str, list[dict[str, Any]]] = {}

    def flush(code: str) -> None:
        out.receipts.append(pipeline.ingest(org_code, code, pending.pop(code), source=SOURCE, source_ref=source_ref, now=now))

    for index, mapped in enumerate(read_many(bodies)):
        out.documents += 1
        if isinstance(mapped, DocumentRefused):
            out.refused.append((index, mapped))
            continue
        records = pending.setdefault(mapped.template.dataset.code, [])
        records += mapped.records
        if len(records) >= batch:
            flush(mapped.template.dataset.code)
    for code in list(pending):
        flush(code)
    return out

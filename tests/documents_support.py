"""Generated records of each shared-document type, stored through the real pipeline, and the
documents (key -> records) they make, for the CDA tests and the interop benchmark."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, select

from phip.documents import Template
from phip.ingest.pipeline import Pipeline
from phip.store.models import Record
from phip.synth.generator import Generator

NOW = datetime(2026, 11, 22, 12, 0, 0)
DAY = date(2026, 11, 21)


def generate(template: Template, orgs: list[tuple[str, str]], seed: int = 25, visits: int = 12,
             admissions: int = 3) -> list[tuple[str, list[dict[str, Any]]]]:
    """(org, records) of the template's data set for one generated day."""
    gen = Generator(seed=seed)
    if template.dataset.category == "public_health":
        batches = gen.public_health(orgs[0], DAY, DAY, residents=visits, now=NOW)
    else:
        batches = gen.day(orgs[:1], DAY, visits=visits, admissions=admissions, now=NOW, datasets=[template.dataset.code])
    return [(org, recs) for org, code, recs in batches if code == template.dataset.code]


def stored_documents(engine: Engine, template: Template) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(org, document key) -> the stored payloads of that document, items in order."""
    docs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    with engine.connect() as conn:
        for org, payload in conn.execute(select(Record.org_code, Record.payload).where(Record.dataset == template.dataset.code)):
            docs[(org, str(payload[template.key_field]))].append(payload)
    for rows in docs.values():
        rows.sort(key=lambda p: p.get("item_no") or 0)
    return dict(docs)


def ingest(pipeline: Pipeline, batches: list[tuple[str, list[dict[str, Any]]]], dataset: str) -> int:
    stored = 0
    for org, recs in batches:
        receipt = pipeline.ingest(org, dataset, recs, now=NOW)
        stored += receipt.accepted
    return stored

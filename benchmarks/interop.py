"""Shared documents (CDA) against JSON for the same records (issue 25).

For one generated day of outpatient activity (visits, western prescriptions, lab reports) at
a few institutions, on a SQLite file (or PostgreSQL with --pg), prints in one run:

* JSON ingest: records/s through Pipeline.ingest in batches of 1,000 into an empty store;
* CDA render: the same stored records read back as documents (C0002 visit, C0004
  prescription, C0007 lab report) and rendered to CDA XML, documents/s and records/s;
* CDA read: parse (hardened) + check against the template + map, records/s, no database;
* CDA ingest: read + the same pipeline into another empty store, records gathered per data
  set into batches of 1,000 (``receive_many``, as the file import does), records/s;
* CDA ingest one by one: each document its own pipeline batch (the POST /api/v1/documents
  path), on the first --single documents;
* the ratios CDA ingest / JSON ingest (aim: at least 0.5).

Usage: python benchmarks/interop.py [--visits 400] [--orgs 4] [--single 300] [--pg postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.documents import load_templates, read, receive, receive_many, render  # noqa: E402
from phip.ingest import workers  # noqa: E402
from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.runtime import build_pipeline, tune_gc  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402
from phip.store.models import Record  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

NOW = datetime(2026, 11, 22, 12, 0, 0)
DAY = date(2026, 11, 21)
TYPES = ("C0002", "C0004", "C0007")
BATCH = 1000


def store(url: str | None, name: str) -> Engine:
    if url:
        create_database(f"{url}_{name}")
        engine = make_engine(f"{url}_{name}")
        wipe(engine)
    else:
        engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/{name}.db")
    upgrade(engine)
    seed_institutions(engine)
    return engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=400, help="outpatient visits per institution")
    ap.add_argument("--orgs", type=int, default=4)
    ap.add_argument("--single", type=int, default=300, help="documents ingested one by one")
    ap.add_argument("--pg", help="PostgreSQL URL prefix (databases <url>_interop_json, _cda, _single)")
    args = ap.parse_args()
    tune_gc()
    workers.pool()  # the validation process starts once, before timing

    templates = load_templates()
    chosen = [templates.by_code[c] for c in TYPES]
    json_store = store(args.pg, "interop_json")
    orgs = [(o.code, o.name) for o in list_institutions(json_store)][: args.orgs]
    batches = list(Generator(seed=25).day(orgs, DAY, visits=args.visits, admissions=0, now=NOW,
                                          datasets=[t.dataset.code for t in chosen]))
    records = sum(len(r) for _, _, r in batches)

    pipeline = build_pipeline(json_store)
    start = time.perf_counter()
    for org, code, recs in batches:
        for i in range(0, len(recs), BATCH):
            pipeline.ingest(org, code, recs[i:i + BATCH], now=NOW)
    json_s = time.perf_counter() - start

    docs: dict[str, list[tuple[str, list[dict]]]] = defaultdict(list)  # org -> (template code, rows)
    with json_store.connect() as conn:
        for t in chosen:
            grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for org, payload in conn.execute(select(Record.org_code, Record.payload).where(Record.dataset == t.dataset.code)):
                grouped[(org, str(payload[t.key_field]))].append(payload)
            for (org, _), rows in grouped.items():
                rows.sort(key=lambda p: p.get("item_no") or 0)
                docs[org].append((t.code, rows))
    start = time.perf_counter()
    bodies = {org: [render(templates.by_code[c], rows) for c, rows in items] for org, items in docs.items()}
    render_s = time.perf_counter() - start
    documents = sum(len(b) for b in bodies.values())
    size = sum(len(x) for b in bodies.values() for x in b)

    start = time.perf_counter()
    for b in bodies.values():
        for body in b:
            read(body)
    read_s = time.perf_counter() - start

    cda_pipeline = build_pipeline(store(args.pg, "interop_cda"))
    start = time.perf_counter()
    stored = 0
    for org, b in bodies.items():
        got = receive_many(cda_pipeline, org, b, now=NOW, batch=BATCH)
        assert not got.refused, got.refused[:1]
        stored += sum(r.accepted for r in got.receipts)
    cda_s = time.perf_counter() - start
    assert stored == records, (stored, records)

    single_pipeline = build_pipeline(store(args.pg, "interop_single"))
    flat = [(org, body, rows) for org, b in bodies.items() for body, (_, rows) in zip(b, docs[org], strict=True)][: args.single]
    start = time.perf_counter()
    for org, body, _ in flat:
        receive(single_pipeline, org, body, now=NOW)
    single_s = time.perf_counter() - start
    single_records = sum(len(rows) for _, _, rows in flat)

    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"{backend}: {records} records in {documents} documents ({', '.join(TYPES)}), {size / documents / 1024:.1f} KB per document")
    print(f"JSON ingest (batches of {BATCH})      {records / json_s:9.0f} records/s")
    print(f"CDA render                        {documents / render_s:9.0f} documents/s {records / render_s:9.0f} records/s")
    print(f"CDA read (parse+check+map)        {documents / read_s:9.0f} documents/s {records / read_s:9.0f} records/s")
    print(f"CDA ingest (read + pipeline)      {documents / cda_s:9.0f} documents/s {records / cda_s:9.0f} records/s")
    print(f"CDA ingest one by one ({len(flat)} docs)  {len(flat) / single_s:9.0f} documents/s {single_records / single_s:9.0f} records/s")
    print(f"ratio CDA ingest / JSON ingest    {json_s / cda_s:9.2f}")
    print(f"ratio CDA render / JSON ingest    {json_s / render_s:9.2f}")
    print(f"ratio one by one / JSON ingest    {(single_records / single_s) / (records / json_s):9.2f}")


if __name__ == "__main__":
    main()

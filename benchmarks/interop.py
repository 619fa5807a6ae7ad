"""Shared documents (CDA) against JSON for the same records (issue 25).

For one generated day of outpatient activity (visits, western prescriptions, lab reports) at
a few institutions, on a SQLite file (or PostgreSQL with --pg), prints in one run:

* JSON ingest: records/s through Pipeline.ingest in batches of 1,000 into an empty store, in
  this one process (the push API's path); and with the validation process validating each
  batch while this process writes the one before (``Pipeline.ingest_stream``'s overlap, the file
  import's path);
* CDA render: the same stored records read back as documents (C0002 visit, C0004
  prescription, C0007 lab report) and rendered to CDA XML, documents/s and records/s;
* CDA read: parse (hardened) + check against the template + map, records/s, no database;
* CDA ingest: read + the same pipeline into another empty store, records gathered per data
  set into batches of 1,000, records/s: in this one process (``read`` and ``Pipeline.ingest``),
  and with the validation process reading ahead (``receive_many``, as the file import and the
  batch API do) while this process validates and writes;
* CDA ingest one by one: each document its own pipeline batch (the POST /api/v1/documents
  path), on the first --single documents;
* the ratios CDA ingest / JSON ingest, like for like (aim: at least 0.5): one process against
  one, and two (this one and the validation process) against two;
* the floor under reading: the hardened parse alone, and the bytes of XML against JSON per record;
  and the ratios reading could reach if checking and mapping cost nothing (the ceiling the
  parser sets).

The four ingests run in the same round into empty stores, their order turned round every
round; each figure is the median of --rounds rounds (default 3).

Usage: python benchmarks/interop.py [--visits 400] [--orgs 4] [--single 300] [--rounds 3] [--pg postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from statistics import median

from sqlalchemy import Engine, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.documents import load_templates, read, receive, receive_many, render  # noqa: E402
from phip.documents.readahead import read_many  # noqa: E402
from phip.documents.safexml import parse  # noqa: E402
from phip.ingest import workers  # noqa: E402
from phip.ingest.pipeline import STREAM_LOOKAHEAD  # noqa: E402
from phip.ingest.validation import from_remote, validate_remote  # noqa: E402
from phip.ingest.pipeline import Pipeline  # noqa: E402
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


def settle(engine: Engine) -> None:
    """End a finished store's background checkpoint thread (SQLite), outside the timing: left
    running, it copied the store's log during the next figure and made the CDA read measure
    up to 30 % slower (385–391 against 288–310 µs a record)."""
    checkpointer = getattr(engine, "checkpointer", None)
    if checkpointer is not None:
        checkpointer.close(wait=30)


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def ingest_json(pipeline: Pipeline, batches: list) -> None:
    for org, code, recs in batches:
        for i in range(0, len(recs), BATCH):
            pipeline.ingest(org, code, recs[i:i + BATCH], now=NOW)


def stream_json(pipeline: Pipeline, batches: list) -> None:
    """JSON with its validation process: ``ingest_stream``'s overlap (each batch validated there
    while this process writes the one before, two ahead) across institutions and data sets,
    since a day of one institution's data set here is a single batch (a stream of one batch
    would overlap nothing)."""
    waiting: deque = deque()

    def write() -> None:
        org, code, recs, future = waiting.popleft()
        validated = from_remote(workers.result(future))
        pipeline.commit(pipeline.prepare(org, code, recs, source="file", now=NOW, validated=validated))

    for org, code, recs in batches:
        for i in range(0, len(recs), BATCH):
            part = recs[i:i + BATCH]
            waiting.append((org, code, part, workers.submit(validate_remote, code, org, pipeline.institution_name(org), part, NOW)))
            if len(waiting) > STREAM_LOOKAHEAD:
                write()
    while waiting:
        write()


def ingest_cda_here(pipeline: Pipeline, bodies: dict[str, list[bytes]], records: int) -> None:
    """receive_many without the validation process: each document read here, then batches."""
    stored = 0
    for org, b in bodies.items():
        pending: dict[str, list[dict]] = defaultdict(list)
        for body in b:
            mapped = read(body)
            pending[mapped.template.dataset.code] += mapped.records
        for code, recs in pending.items():
            for i in range(0, len(recs), BATCH):
                stored += pipeline.ingest(org, code, recs[i:i + BATCH], source="api", now=NOW).accepted
    assert stored == records, (stored, records)


def ingest_cda(pipeline: Pipeline, bodies: dict[str, list[bytes]], records: int) -> None:
    stored = 0
    for org, b in bodies.items():
        got = receive_many(pipeline, org, b, now=NOW, batch=BATCH)
        assert not got.refused, got.refused[:1]
        stored += sum(r.accepted for r in got.receipts)
    assert stored == records, (stored, records)


def documents_of(engine: Engine, chosen: list) -> dict[str, list[tuple[str, list[dict]]]]:
    """Stored records grouped as documents: org -> (template code, rows of one document)."""
    docs: dict[str, list[tuple[str, list[dict]]]] = defaultdict(list)
    with engine.connect() as conn:
        for t in chosen:
            grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for org, payload in conn.execute(select(Record.org_code, Record.payload).where(Record.dataset == t.dataset.code)):
                grouped[(org, str(payload[t.key_field]))].append(payload)
            for (org, _), rows in grouped.items():
                rows.sort(key=lambda p: p.get("item_no") or 0)
                docs[org].append((t.code, rows))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=400, help="outpatient visits per institution")
    ap.add_argument("--orgs", type=int, default=4)
    ap.add_argument("--single", type=int, default=300, help="documents ingested one by one")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, JSON and CDA alternating which goes first; medians")
    ap.add_argument("--pg", help="PostgreSQL URL prefix (databases <url>_interop_json, _cda, _single)")
    args = ap.parse_args()
    tune_gc()
    workers.warm()  # the validation process starts once, before timing

    templates = load_templates()
    chosen = [templates.by_code[c] for c in TYPES]
    json_store = store(args.pg, "interop_json")
    orgs = [(o.code, o.name) for o in list_institutions(json_store)][: args.orgs]
    batches = list(Generator(seed=25).day(orgs, DAY, visits=args.visits, admissions=0, now=NOW,
                                          datasets=[t.dataset.code for t in chosen]))
    records = sum(len(r) for _, _, r in batches)
    json_bytes = sum(len(json.dumps(rec, ensure_ascii=False, default=str).encode()) for _, _, r in batches for rec in r)
    ingest_json(build_pipeline(json_store), batches)  # the stored records the documents are rendered from
    docs = documents_of(json_store, chosen)
    bodies = {org: [render(templates.by_code[c], rows) for c, rows in items] for org, items in docs.items()}
    documents = sum(len(b) for b in bodies.values())
    size = sum(len(x) for b in bodies.values() for x in b)
    flat = [(org, body, rows) for org, b in bodies.items() for body, (_, rows) in zip(b, docs[org], strict=True)][: args.single]
    single_records = sum(len(rows) for _, _, rows in flat)
    if workers.pool() is not None:  # the process imports the templates and builds its validators before timing
        list(read_many(x for b in bodies.values() for x in b[:100]))
        for org, code, recs in batches:
            workers.result(workers.submit(validate_remote, code, org, org, recs[:100], NOW))

    jobs = {"json": lambda p: ingest_json(p, batches), "json2": lambda p: stream_json(p, batches),
            "cda": lambda p: ingest_cda_here(p, bodies, records), "cda2": lambda p: ingest_cda(p, bodies, records)}
    runs: dict[str, list[float]] = defaultdict(list)
    for n in range(args.rounds):
        for name in list(jobs)[:: 1 if n % 2 == 0 else -1]:
            pipeline = build_pipeline(store(args.pg, f"interop_{name}"))  # empty, outside the timing
            runs[name].append(timed(lambda: jobs[name](pipeline)))  # noqa: B023 - called at once
            settle(pipeline.engine)
        runs["render"].append(timed(lambda: [render(templates.by_code[c], rows) for items in docs.values() for c, rows in items]))
        runs["parse"].append(timed(lambda: [parse(x) for b in bodies.values() for x in b]))
        runs["read"].append(timed(lambda: [read(x) for b in bodies.values() for x in b]))
        single = build_pipeline(store(args.pg, "interop_single"))
        runs["single"].append(timed(lambda: [receive(single, org, body, now=NOW) for org, body, _ in flat]))
    json_s, json2_s, cda_s, cda2_s, render_s, parse_s, read_s, single_s = (
        median(runs[k]) for k in ("json", "json2", "cda", "cda2", "render", "parse", "read", "single"))
    two = "validation process on" if workers.pool() is not None else "validation process OFF: in this process"

    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"{backend}: {records} records in {documents} documents ({', '.join(TYPES)}), {size / documents / 1024:.1f} KB per document, "
          f"{size / records / 1024:.1f} KB of XML per record against {json_bytes / records / 1024:.2f} KB of JSON "
          f"({size / json_bytes:.1f}x); median of {args.rounds} rounds")
    print(f"JSON ingest (batches of {BATCH}), 1 process  {records / json_s:9.0f} records/s  {json_s / records * 1e6:6.0f} us/record")
    print(f"JSON ingest streamed, 2 processes  {records / json2_s:9.0f} records/s  {json2_s / records * 1e6:6.0f} us/record  ({two})")
    print(f"CDA render                        {documents / render_s:9.0f} documents/s {records / render_s:9.0f} records/s")
    print(f"CDA parse only (hardened libxml2) {documents / parse_s:9.0f} documents/s {records / parse_s:9.0f} records/s"
          f"  {parse_s / records * 1e6:6.0f} us/record")
    print(f"CDA read (parse+check+map)        {documents / read_s:9.0f} documents/s {records / read_s:9.0f} records/s"
          f"  {read_s / records * 1e6:6.0f} us/record")
    print(f"CDA ingest (read + pipeline), 1 process {documents / cda_s:9.0f} documents/s {records / cda_s:9.0f} records/s"
          f"  {cda_s / records * 1e6:6.0f} us/record")
    print(f"CDA ingest read ahead, 2 processes {documents / cda2_s:9.0f} documents/s {records / cda2_s:9.0f} records/s"
          f"  {cda2_s / records * 1e6:6.0f} us/record  ({two})")
    print(f"CDA ingest one by one ({len(flat)} docs)  {len(flat) / single_s:9.0f} documents/s {single_records / single_s:9.0f} records/s")
    for label, j, c in (("1 process / 1 process  ", "json", "cda"), ("2 processes / 2 processes", "json2", "cda2")):
        print(f"ratio CDA ingest / JSON ingest, {label} {median(runs[j]) / median(runs[c]):5.2f}   (rounds: "
              f"{', '.join(f'{a / b:.2f}' for a, b in zip(runs[j], runs[c], strict=True))})")
    # what the ratios could be if checking and mapping cost nothing: the records still go through
    # the same pipeline (JSON's 1-process time) and every byte through the hardened parse; with two
    # processes that work is at best split evenly over two cores
    print(f"ceiling if reading cost only the parse: 1 process {json_s / (json_s + parse_s):5.2f}, "
          f"2 processes {json2_s / ((json_s + parse_s) / 2):5.2f}")
    print(f"ratio CDA render / JSON ingest    {json_s / render_s:9.2f}")
    print(f"ratio one by one / JSON ingest    {(single_records / single_s) / (records / json_s):9.2f}")


if __name__ == "__main__":
    main()

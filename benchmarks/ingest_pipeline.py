"""Ingest pipeline throughput against the physical limit of the same database.

For N generated outpatient-visit records (default 100,000) and each back end (SQLite file,
PostgreSQL), prints:

* pipeline: records/s through Pipeline.ingest (validate, normalise, hash, resolve persons,
  upsert with versioning, counters, receipt) in batches of 1,000, each its own transaction;
* raw insert: the same stored rows (already normalised, hashed, serialised) bulk-inserted
  into a copy of the records table with the same driver, same batch size, same commits;
* raw COPY (PostgreSQL): the same rows through COPY, the fastest path the server has;
* ratios pipeline / raw.

Usage: python benchmarks/ingest_pipeline.py [--records 100000] [--pg postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from itertools import groupby
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import Engine, Table, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.ingest.pipeline import Pipeline, content_hash, record_key  # noqa: E402
from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.standard.catalog import load_standard  # noqa: E402
from phip.standard.validate import validator_for  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402
from phip.store.models import Record  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

BATCH = 1000
NOW = datetime(2026, 11, 22, 12, 0, 0)


def generate(n: int, orgs: list[tuple[str, str]]) -> list[tuple[str, list[dict]]]:
    """(org, batch) pairs of outpatient visits, ~n records in all."""
    gen = Generator(seed=42)
    per_org_day = 1000
    batches: list[tuple[str, list[dict]]] = []
    total, day = 0, date(2026, 10, 1)
    while total < n:
        for org in orgs:
            for org_code, _, recs in gen.day([org], day, visits=per_org_day, admissions=1, now=NOW, datasets=["outpatient_visit"]):
                recs = recs[: n - total]
                for start in range(0, len(recs), BATCH):
                    batches.append((org_code, recs[start : start + BATCH]))
                total += len(recs)
            if total >= n:
                break
        day += timedelta(days=1)
    return batches


def fresh(engine: Engine) -> None:
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)


def raw_table(engine: Engine) -> Table:
    """A copy of ``records`` (same columns, same unique key and indexes) to bulk-insert into."""
    from sqlalchemy import MetaData

    md = MetaData()
    copy = Record.__table__.to_metadata(md, name="raw_records")
    for idx in list(copy.indexes):
        idx.name = "raw_" + str(idx.name)
    for c in copy.constraints:
        if c.name and not str(c.name).startswith("raw_"):
            c.name = "raw_" + str(c.name)
    md.drop_all(engine)
    md.create_all(engine)
    return copy


def stored_rows(batches: list[tuple[str, list[dict]]]) -> list[list[dict]]:
    """What the pipeline would store, prepared ahead so the raw insert times only the insert."""
    std = load_standard()
    ds = std.dataset("outpatient_visit")
    v = validator_for(std, ds)
    out = []
    for org, recs in batches:
        rows = []
        for r in recs:
            rec = v.validate(r, NOW).record
            assert rec is not None
            rows.append({
                "org_code": org, "dataset": ds.code, "record_key": record_key(ds, rec), "version": 1,
                "content_hash": content_hash(rec), "person_id": None, "event_time": rec["visit_time"],
                "received_at": NOW, "batch_id": "raw", "payload": rec,
            })
        out.append(rows)
    return out


def bench_pipeline(engine: Engine, batches, stream: bool) -> float:
    """One batch at a time (what one push request does), or a stream of batches per
    institution (file import, pull collection), where validation overlaps the writes."""
    fresh(engine)
    pipeline = Pipeline(engine)
    n = 0
    t0 = time.perf_counter()
    if stream:
        by_org = sorted(batches, key=lambda b: b[0])  # a stream is one institution's
        for org, group in groupby(by_org, key=lambda b: b[0]):
            for receipt in pipeline.ingest_stream(org, "outpatient_visit", (recs for _, recs in group), source="bench", now=NOW):
                n += receipt.accepted
    else:
        for org, recs in batches:
            n += pipeline.ingest(org, "outpatient_visit", recs, source="bench", now=NOW).accepted
    elapsed = time.perf_counter() - t0
    assert n == sum(len(b) for _, b in batches), "every record must be accepted"
    return n / elapsed


def bench_raw_insert(engine: Engine, rows_by_batch) -> float:
    table = raw_table(engine)
    n = 0
    t0 = time.perf_counter()
    for rows in rows_by_batch:
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        n += len(rows)
    return n / (time.perf_counter() - t0)


def bench_raw_copy(engine: Engine, rows_by_batch) -> float:
    raw_table(engine)
    cols = ["org_code", "dataset", "record_key", "version", "content_hash", "person_id", "event_time",
            "received_at", "batch_id", "payload"]
    n = 0
    t0 = time.perf_counter()
    for rows in rows_by_batch:
        with engine.begin() as conn:
            cur = conn.connection.dbapi_connection.cursor()
            with cur.copy(f"COPY raw_records ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row([*(r[c] for c in cols[:-1]), orjson.dumps(r["payload"]).decode()])
        n += len(rows)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pg", default=os.environ.get("PHIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        probe = make_engine(f"sqlite:///{tmp}/probe.db")
        fresh(probe)
        orgs = [(r.code, r.name) for r in list_institutions(probe)][:10]
        t0 = time.perf_counter()
        batches = generate(args.records, orgs)
        rows = stored_rows(batches)
        n = sum(len(b) for _, b in batches)
        print(f"generated {n} outpatient-visit records in {len(batches)} batches ({time.perf_counter() - t0:.1f}s, not timed)")

        targets: list[tuple[str, Engine]] = [("SQLite", make_engine(f"sqlite:///{tmp}/bench.db"))]
        try:
            create_database(args.pg)
            targets.append(("PostgreSQL", make_engine(args.pg)))
        except Exception as exc:  # noqa: BLE001
            print(f"PostgreSQL skipped: {exc}")
        for name, engine in targets:
            raw = {"raw INSERT": bench_raw_insert(engine, rows)}
            if engine.dialect.name == "postgresql":
                raw["raw COPY"] = bench_raw_copy(engine, rows)
            print(f"{name}: " + "   ".join(f"{k} {v:,.0f} rec/s" for k, v in raw.items()), flush=True)
            for label, stream in (("pipeline, batch by batch", False), ("pipeline, streamed", True)):
                piped = bench_pipeline(engine, batches, stream)
                ratios = "   ".join(f"{piped / v:.2f} of {k}" for k, v in raw.items())
                print(f"  {label:<26} {piped:>8,.0f} rec/s   {ratios}", flush=True)
            engine.dispose()


if __name__ == "__main__":
    main()

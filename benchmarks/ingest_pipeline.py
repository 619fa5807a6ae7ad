"""Ingest pipeline throughput against the physical limit of the same database.

For N generated outpatient-visit records (default 100,000) and each back end (SQLite file,
PostgreSQL), prints:

* pipeline: records/s through Pipeline.ingest (validate, normalise, hash, resolve persons,
  upsert with versioning, counters, receipt) in batches of 1,000, each its own transaction;
* pipeline in two processes: the institutions split between two processes writing at once,
  each batch by batch — how a province scales (several push-API workers or collectors), and
  the only way one Python process's GIL leaves the second core to the database and a writer;
* raw insert: the same stored rows (already normalised, hashed, serialised) bulk-inserted
  into a copy of the records table with the same driver, same batch size, same commits;
* raw COPY (PostgreSQL): the same rows through COPY, the fastest path the server has;
* ratios pipeline / raw, the raw rates measured before and again after the pipeline runs
  and the ratios taken against their mean (the cores of a shared virtual machine drift by a
  fifth within minutes; a baseline measured once would fold that drift into the ratio),
  and where the CPU goes (this process and the database server, µs
  per record), read from /proc.

Every PHIP process tunes the garbage collector (phip.runtime.tune_gc) and starts its
validation process once (phip.ingest.workers); the benchmark does both before timing.

``--rounds K`` repeats the pipeline runs K times per back end, each round between two raw
baselines (the one after a round is the one before the next), and prints the median ratios.

Usage: python benchmarks/ingest_pipeline.py [--records 100000] [--rounds 1] [--pg postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from itertools import groupby
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import Engine, Table, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.ingest.keys import content_hash, record_key  # noqa: E402
from phip.runtime import build_pipeline  # noqa: E402
from phip.ingest import workers  # noqa: E402
from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.runtime import tune_gc  # noqa: E402
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


def top_up_hospitals(engine: Engine, hospitals: int) -> list[tuple[str, str]]:
    """The register's hospitals topped up to ``hospitals`` with synthetic ones (valid USCC
    codes, the seed's regions in turn), registered by a direct insert; returns (code, name)."""
    from phip.standard.checks import uscc_check_char
    from phip.standard.validate import platform_now
    from phip.store.models import Institution

    seeded = [r for r in list_institutions(engine) if r.kind == "hospital"]
    now = platform_now()
    extra = []
    for n in range(hospitals - len(seeded)):
        model = seeded[n % len(seeded)]
        body = f"12{model.region_code}{900000000 + n:09d}"
        extra.append({"code": body + uscc_check_char(body), "name": f"{model.region_name}规模测试第{n + 1}医院",
                      "kind": "hospital", "region_code": model.region_code, "region_name": model.region_name,
                      "network_status": "connected", "status": "active", "created_at": now})
    if extra:
        with engine.begin() as conn:
            conn.execute(insert(Institution), extra)
    return [(r.code, r.name) for r in list_institutions(engine) if r.kind == "hospital"]


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


def server_cpu(engine: Engine) -> float:
    """CPU seconds used so far by the database server's processes on this machine (PostgreSQL;
    SQLite runs inside this process)."""
    if engine.dialect.name != "postgresql":
        return 0.0
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")].startswith("postgres"):
            fields = text[text.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def bench_pipeline(engine: Engine, batches, stream: bool) -> tuple[float, float, float]:
    """One batch at a time (what one push request does), or a stream of batches per
    institution (file import, pull collection), where a validation process validates the
    next batch while this one is written. Returns (records/s, own CPU µs/record, server CPU
    µs/record)."""
    fresh(engine)
    pipeline = build_pipeline(engine)
    n = 0
    cpu0, server0 = time.process_time(), server_cpu(engine)
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
    return n / elapsed, (time.process_time() - cpu0) / n * 1e6, (server_cpu(engine) - server0) / n * 1e6


def _writer(url: str, batches, start) -> tuple[int, float, float]:  # noqa: ANN001
    tune_gc()
    engine = make_engine(url)
    pipeline = build_pipeline(engine)
    pipeline.institution_name(batches[0][0])
    start.wait()
    t0 = time.perf_counter()
    n = sum(pipeline.ingest(org, "outpatient_visit", recs, source="bench", now=NOW).accepted for org, recs in batches)
    return n, t0, time.perf_counter()


def bench_parallel(engine: Engine, url: str, batches, processes: int = 2) -> float:
    """The institutions split between ``processes`` writer processes, started together."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fresh(engine)
    orgs = sorted({org for org, _ in batches})
    shares = [[b for b in batches if orgs.index(b[0]) % processes == i] for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Manager().Barrier(processes)
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        done = list(pool.map(_writer, [url] * processes, shares, [start] * processes))
    n = sum(d[0] for d in done)
    assert n == sum(len(b) for _, b in batches), "every record must be accepted"
    return n / (max(d[2] for d in done) - min(d[1] for d in done))


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
    parser.add_argument("--rounds", type=int, default=1, help="pipeline runs per back end, each between raw baselines")
    parser.add_argument("--pg", default=os.environ.get("PHIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench"))
    args = parser.parse_args()
    tune_gc()
    workers.warm()

    with tempfile.TemporaryDirectory() as tmp:
        probe = make_engine(f"sqlite:///{tmp}/probe.db")
        fresh(probe)
        # hospitals: the register also holds business systems, whose non-USCC codes would make
        # every record carry a warning row (another workload than the one measured before)
        orgs = [(r.code, r.name) for r in list_institutions(probe) if r.kind == "hospital"][:10]
        t0 = time.perf_counter()
        batches = generate(args.records, orgs)
        rows = stored_rows(batches)
        n = sum(len(b) for _, b in batches)
        print(f"generated {n} outpatient-visit records in {len(batches)} batches ({time.perf_counter() - t0:.1f}s, not timed)")

        sqlite_url = f"sqlite:///{tmp}/bench.db"
        targets: list[tuple[str, str, Engine]] = [("SQLite", sqlite_url, make_engine(sqlite_url))]
        try:
            create_database(args.pg)
            targets.append(("PostgreSQL", args.pg, make_engine(args.pg)))
        except Exception as exc:  # noqa: BLE001
            print(f"PostgreSQL skipped: {exc}")
        for name, url, engine in targets:
            before = raw_rates(engine, rows)
            print(f"{name}: " + "   ".join(f"{k} {v:,.0f} rec/s" for k, v in before.items()), flush=True)
            ratios: dict[str, list[float]] = {}
            for round_ in range(1, args.rounds + 1):
                if args.rounds > 1:
                    print(f"  round {round_}")
                runs = []
                for label, stream in (("pipeline, batch by batch", False), ("pipeline, streamed", True)):
                    piped, own, server = bench_pipeline(engine, batches, stream)
                    split = f"   CPU/record: this process {own:.0f} µs" + (f", server {server:.0f} µs" if server else "")
                    runs.append((label, piped, split))
                if engine.dialect.name == "postgresql":  # SQLite has one writer at a time
                    runs.append(("pipeline, 2 processes", bench_parallel(engine, url, batches), ""))
                after = raw_rates(engine, rows)
                raw = {k: (before[k] + after[k]) / 2 for k in before}
                print("  raw again after the pipeline runs: " + "   ".join(f"{k} {v:,.0f} rec/s" for k, v in after.items())
                      + "   (ratios below: against the mean of before and after)")
                for label, piped, split in runs:
                    for k, v in raw.items():
                        ratios.setdefault(f"{label}: of {k}", []).append(piped / v)
                    shown = "   ".join(f"{piped / v:.2f} of {k}" for k, v in raw.items())
                    print(f"  {label:<30} {piped:>8,.0f} rec/s   {shown}{split}", flush=True)
                before = after  # the next round's baseline before
            if args.rounds > 1:
                print(f"  {name}, ratios over {args.rounds} rounds (median, range):")
                for key, values in ratios.items():
                    print(f"    {key:<48} {statistics.median(values):.2f}   {min(values):.2f}–{max(values):.2f}")
            engine.dispose()

def raw_rates(engine: Engine, rows) -> dict[str, float]:  # noqa: ANN001
    """The physical limits: a plain bulk INSERT, and on PostgreSQL COPY."""
    rates = {"raw INSERT": bench_raw_insert(engine, rows)}
    if engine.dialect.name == "postgresql":
        rates["raw COPY"] = bench_raw_copy(engine, rows)
    return rates

if __name__ == "__main__":
    main()

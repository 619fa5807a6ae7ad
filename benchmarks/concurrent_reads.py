"""Ingest on the embedded store (SQLite) while another process reads it, as a dashboard does.

A store holding --seed days of four institutions' activity takes --days more, batch by
batch, three times in one run into three copies of it:

* alone (the baseline);
* while a second process keeps running the month's upload-statistics report, each in a read
  transaction begun as PHIP reads (``engine.connect()``: deferred, on its WAL snapshot);
* the same, each report read in a transaction begun IMMEDIATE (``engine.begin()``): how
  every read began before reads were deferred, holding the one write lock while it ran.

Prints the ingest rate of each, its ratio to the baseline, and the reader's reports done
and their median and p95 time.

Usage: python benchmarks/concurrent_reads.py [--seed 3] [--days 2] [--visits 60]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.reports.period import parse_period  # noqa: E402
from phip.reports.uploads import upload_report  # noqa: E402
from phip.runtime import build_pipeline, tune_gc  # noqa: E402
from phip.store.db import make_engine, upgrade  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

NOW = datetime(2026, 11, 28, 21, 0, 0)


def reader(path: str, mode: str, stop: mp.Event, out: mp.Queue) -> None:
    """Run the month's upload report again and again until ``stop``; put the times."""
    engine = make_engine(f"sqlite:///{path}")
    period = parse_period(f"{NOW:%Y-%m}")
    times = []
    while not stop.is_set():
        start = time.perf_counter()
        if mode == "immediate":  # a read holding the write lock, as every read did before
            with engine.begin():
                upload_report(engine, period)
        else:
            upload_report(engine, period)
        times.append(time.perf_counter() - start)
    out.put(times)
    engine.dispose()


def batches(orgs: list, first: date, days: int, visits: int) -> list:
    gen = Generator(seed=7)
    return [b for d in range(days) for b in gen.day(orgs, first + timedelta(days=d), visits=visits,
                                                     admissions=max(1, visits // 10), now=NOW)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3, help="days already in the store")
    ap.add_argument("--days", type=int, default=2, help="days ingested while measured")
    ap.add_argument("--visits", type=int, default=60, help="outpatient visits a day per institution")
    args = ap.parse_args()
    tune_gc()
    work = Path(tempfile.mkdtemp())
    base = work / "base.db"
    engine = make_engine(f"sqlite:///{base}")
    upgrade(engine)
    seed_institutions(engine)
    orgs = [(o.code, o.name) for o in list_institutions(engine) if o.kind == "hospital"][:4]
    start = NOW.date() - timedelta(days=args.seed + args.days)
    pipeline = build_pipeline(engine)
    for org, ds, recs in batches(orgs, start, args.seed, args.visits):
        pipeline.ingest(org, ds, recs, now=NOW)
    engine.dispose()
    todo = batches(orgs, start + timedelta(days=args.seed), args.days, args.visits)
    records = sum(len(r) for _, _, r in todo)

    results = {}
    for mode in ("alone", "deferred", "immediate"):
        path = work / f"{mode}.db"
        shutil.copy(base, path)
        engine = make_engine(f"sqlite:///{path}")
        pipeline = build_pipeline(engine)
        spawn = mp.get_context("spawn")  # a fresh interpreter, as a separate server process would be
        stop, out = spawn.Event(), spawn.Queue()
        proc = None
        if mode != "alone":
            proc = spawn.Process(target=reader, args=(str(path), mode, stop, out))
            proc.start()
            time.sleep(2.0)  # the reader has started and is reading
        began = time.perf_counter()
        for org, ds, recs in todo:
            pipeline.ingest(org, ds, recs, now=NOW)
        seconds = time.perf_counter() - began
        reads: list[float] = []
        if proc is not None:
            stop.set()
            reads = out.get(timeout=120)
            proc.join()
        engine.dispose()
        results[mode] = (seconds, reads)

    alone = results["alone"][0]
    print(f"SQLite: {records} records in {len(todo)} batches onto a store of {args.seed} days of 4 institutions")
    for mode, label in (("alone", "ingest alone"), ("deferred", "with reports read deferred (PHIP)"),
                        ("immediate", "with reports read IMMEDIATE (before)")):
        seconds, reads = results[mode]
        line = f"{label:40s} {records / seconds:8.0f} records/s  ratio {alone / seconds:5.2f}"
        if reads:
            q = statistics.quantiles(reads, n=20)
            line += f"  reports {len(reads):4d}, median {statistics.median(reads) * 1000:6.1f} ms, p95 {q[-1] * 1000:6.1f} ms"
        print(line)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Internet-hospital ingest with the supervision rules on versus off, in one run.

The rules judge each batch inside its write transaction (quality.arrival), so "on" is the
pipeline as ``phip serve`` builds it and "off" the same pipeline without that step. The same
generated day of two internet hospitals goes into an empty store per round, off and on
alternating (drift of a shared machine hits both); the script prints records/s of each and
the ratio on / off (aim: >= 0.8).

The nightly pass (window rules, companions that came later) is not on the ingest path; it is
timed after each "on" round and printed beside it, with the ratio of the whole road (ingest,
then that pass) to ingest alone, for information.

Usage: python benchmarks/supervision.py [--consultations 400] [--rounds 3] [--violation-rate 0.05]
       [--db sqlite|postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_supervision]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from phip.quality.rules import load_supervision_rules
from phip.quality.arrival import SupervisionOnArrival
from phip.quality.run import analyse
from phip.runtime import build_pipeline, prepare
from phip.store.db import make_engine
from phip.store.models import Base
from phip.synth.internet import InternetGenerator

HOSPITALS = [("12220102MB1C2400HU", "吉林大学中日联谊医院互联网医院"), ("12220802MB1C2401K7", "白城微医互联网医院")]
ENTITY = ("12220104412001376B", "长春中医药大学附院")


def batches(consultations: int, rate: float):  # noqa: ANN201
    now = datetime.now().replace(microsecond=0)
    day = now.date() - timedelta(days=1)
    gen = InternetGenerator(HOSPITALS, ENTITY, seed=24, violation_rate=rate)
    out = [b for d in (gen.register(now - timedelta(days=3)), gen.day(day, now, consultations)) for b in d.batches]
    return out, day, now


def empty(engine) -> None:  # noqa: ANN001
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def one(url: str, data, day, now, supervise: bool) -> tuple[int, float, float]:  # noqa: ANN001
    """Records stored, seconds of ingest, seconds of the nightly pass (0 when off)."""
    engine = prepare(make_engine(url))
    empty(engine)
    prepare(engine)
    pipeline = build_pipeline(engine)
    if not supervise:  # off: the same pipeline without the rules judging batches as they arrive
        pipeline.counters = tuple(c for c in pipeline.counters if not isinstance(c, SupervisionOnArrival))
    n = 0
    t0 = time.perf_counter()
    for org, ds, recs in data:
        pipeline.ingest(org, ds, recs, now=now)
        n += len(recs)
    ingest = time.perf_counter() - t0
    nightly = 0.0
    if supervise:
        t0 = time.perf_counter()
        for org, _ in HOSPITALS:
            analyse(engine, org, day, day, as_of=now, rules=load_supervision_rules(), mark=False)
        nightly = time.perf_counter() - t0
    engine.dispose()
    return n, ingest, nightly


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--consultations", type=int, default=400, help="per internet hospital and day")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--violation-rate", type=float, default=0.05)
    ap.add_argument("--db", default="sqlite")
    args = ap.parse_args()
    url = args.db
    if url == "sqlite":
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    data, day, now = batches(args.consultations, args.violation_rate)
    one(url, data, day, now, False)  # warm-up: imports, caches, schema
    ratios, whole = [], []
    for r in range(args.rounds):
        n, off, _ = one(url, data, day, now, False)
        _, on, nightly = one(url, data, day, now, True)
        ratios.append(off / on)
        whole.append(off / (on + nightly))
        print(f"round {r + 1}: {n} records; off {n / off:,.0f} rec/s, on {n / on:,.0f} rec/s, ratio {off / on:.2f}; "
              f"nightly pass {nightly:.2f} s, ingest + nightly vs off {off / (on + nightly):.2f}")
    print(f"median ratio on/off: {statistics.median(ratios):.2f} (aim >= 0.8); "
          f"with the nightly pass: {statistics.median(whole):.2f}")

if __name__ == "__main__":
    main()

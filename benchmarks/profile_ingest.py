"""Where the ingest pipeline's CPU goes: cProfile of N outpatient visits from ten hospitals,
batch by batch on SQLite, for the source tree given (this checkout's by default).

Run it on two checkouts to compare commits (the workload is the same: the generator and the
institutions come from the tree under test, chosen as hospitals):

    python benchmarks/profile_ingest.py --records 20000 --out /tmp/after.prof
    python benchmarks/profile_ingest.py --src ../old/src --records 20000 --out /tmp/before.prof

Prints records/s and CPU µs per record (both under the profiler, so only comparable with each
other) and the functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

NOW = datetime(2026, 11, 22, 12, 0, 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"), help="the phip source tree")
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", help="write the profile here (pstats format)")
    args = ap.parse_args()
    sys.path.insert(0, args.src)
    from phip.ingest import workers
    from phip.orgs.service import list_institutions
    from phip.runtime import build_pipeline, prepare, tune_gc
    from phip.store.db import make_engine
    from phip.synth.generator import Generator

    tune_gc()
    workers.warm()
    engine = prepare(make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'profile.db'}"))
    orgs = [(r.code, r.name) for r in list_institutions(engine) if getattr(r, "kind", "hospital") == "hospital"][:10]
    gen, batches, day = Generator(seed=7), [], NOW.date()
    while sum(len(b) for _, b in batches) < args.records:
        batches += [(org, recs) for org, ds, recs in gen.day(orgs, day, visits=1000, admissions=0, now=NOW)
                    if ds == "outpatient_visit"]
        day = day.fromordinal(day.toordinal() - 1)
    pipeline = build_pipeline(engine)
    n, profile = 0, cProfile.Profile()
    cpu0, t0 = time.process_time(), time.perf_counter()
    profile.enable()
    for org, recs in batches:
        n += pipeline.ingest(org, "outpatient_visit", recs, source="profile", now=NOW).accepted
    profile.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"{args.src}: {n} records, {n / wall:,.0f} rec/s, {cpu / n * 1e6:.0f} µs CPU per record (profiled)")
    if args.out:
        profile.dump_stats(args.out)
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

"""Change detection (``change_detection: checksum``) against a full re-read, on a table without
an update time: MariaDB HIS → the platform on PostgreSQL.

Builds ``MZ_JZJL_LS`` (phip.synth.his_synth.build_unstamped: N visits, default 1,000,000, no
update-time column) in MariaDB (``phip_his_checksum_bench``), loads it once into PostgreSQL
(``phip_bench_checksum``) with the change-detection job (its first run reads everything and
records the chunks), then, in the same run, alternately:

* changes 0.1 % of the rows at the source (random keys, a fresh set each time) and runs the
  change-detection job: the checksum pass at the source, then the re-read of the changed
  chunks through the pipeline (new versions stored);
* a full re-read of the same table through the same road (a job without change detection, what
  a table without an update time costs otherwise every night; the rows are unchanged).

and prints the times, the checksum pass on its own, rows fetched, and the ratio (change detection
/ full re-read). The order checksum, full, checksum brackets the full read, as the machine's
speed drifts (benchmarks/collect.py). ``--spread recent`` puts the changes in the last 1 % of keys
instead (corrections of recent visits), ``--chunk`` sets the chunk size.

Usage: python benchmarks/collect_checksum.py [--rows 1000000] [--chunk 200] [--spread random|recent]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from phip.collect import checksum  # noqa: E402
from phip.synth import his_synth
from phip.collect.mapping import load_mapping  # noqa: E402


def build(url: str, rows: int) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.execute(text(f"SELECT COUNT(*) FROM {his_synth.UNSTAMPED_TABLE}")).scalar()
    except Exception:  # noqa: BLE001 - no database or table yet
        have = -1
    finally:
        engine.dispose()
    start = time.perf_counter()
    url = his_synth.build_unstamped(url, rows)  # always fresh: earlier runs changed rows
    print(f"HIS: {rows:,} visits without update time built in {time.perf_counter() - start:.0f} s"
          f" (had {have:,})" if have >= 0 else f"HIS: {rows:,} visits built in {time.perf_counter() - start:.0f} s")
    return url


def change(url: str, keys: list[int], stamp: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            conn.execute(text(f"UPDATE {his_synth.UNSTAMPED_TABLE} SET KSMC = :m WHERE JZXH IN ({', '.join(map(str, part))})"),
                         {"m": f"内科{stamp}"})
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--share", type=float, default=0.001, help="share of rows changed before each checksum run")
    ap.add_argument("--spread", choices=["random", "recent"], default="random")
    ap.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    args = ap.parse_args()

    from phip.collect.runner import Collector
    from phip.ingest import workers
    from phip.runtime import build_pipeline, prepare, tune_gc
    from phip.store.db import create_database, make_engine, wipe

    tune_gc()
    workers.warm()
    url = build(f"{args.mariadb}/phip_his_checksum_bench_collectmodes?charset=utf8mb4", args.rows)
    pg = f"{args.pg}/phip_bench_checksum_collectmodes"
    create_database(pg)
    store = make_engine(pg)
    wipe(store)
    prepare(store)
    detect = load_mapping(his_synth.unstamped_mapping(url, chunk_size=args.chunk))
    full_text = his_synth.unstamped_mapping(url).replace("name: visits_unstamped", "name: visits_full")
    full_text = "\n".join(line for line in full_text.splitlines() if "change_detection" not in line) + "\n"
    full = load_mapping(full_text)

    planned: list[float] = []
    real_plan = checksum.plan

    def timed_plan(*a, **k):  # noqa: ANN002,ANN003
        start = time.perf_counter()
        out = real_plan(*a, **k)
        planned.append(time.perf_counter() - start)
        return out

    checksum.plan = timed_plan  # the checksum pass, timed on its own inside the run

    def run(mapping) -> tuple[float, object]:  # noqa: ANN001
        start = time.perf_counter()
        (result,) = Collector(store, build_pipeline(store)).run(mapping)
        seconds = time.perf_counter() - start
        if result.status != "ok":
            raise SystemExit(f"run failed: {result.error}")
        return seconds, result

    seconds, first = run(detect)
    print(f"first run (reads all, records {first.chunks:,} chunks of ~{args.chunk}): {first.rows_read:,} rows in {seconds:.1f} s")
    rng = random.Random(2026)
    n = int(args.rows * args.share)

    def changed_keys() -> list[int]:
        if args.spread == "recent":
            return rng.sample(range(args.rows - args.rows // 100 + 1, args.rows + 1), n)
        return rng.sample(range(1, args.rows + 1), n)

    detect_times, full_times = [], []
    for round_, step in enumerate(("detect", "full", "detect")):
        if step == "detect":
            change(url, changed_keys(), str(round_))
            seconds, r = run(detect)
            detect_times.append(seconds)
            print(f"change detection after {n:,} rows changed ({args.spread}): {seconds:6.1f} s = checksum pass "
                  f"{planned[-1]:.1f} s + re-read {seconds - planned[-1]:.1f} s; chunks changed {r.chunks_changed:,}/"
                  f"{r.chunks:,}, rows fetched {r.rows_read:,}, new versions {r.updated:,}")
            assert r.updated == n, (r.updated, n)
        else:
            seconds, r = run(full)
            full_times.append(seconds)
            print(f"full re-read:                                {seconds:6.1f} s; rows fetched {r.rows_read:,}, "
                  f"unchanged {r.unchanged:,}, updated {r.updated:,}")
    ratio = (sum(detect_times) / len(detect_times)) / full_times[0]
    print(f"\nratio change detection / full re-read: {ratio:.3f} "
          f"({sum(detect_times) / len(detect_times):.1f} s against {full_times[0]:.1f} s; {args.rows:,} rows, "
          f"{args.share:.1%} changed, chunks of {args.chunk})")
    store.dispose()


if __name__ == "__main__":
    main()

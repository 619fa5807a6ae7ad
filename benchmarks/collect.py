"""Pull collection throughput and memory: MariaDB HIS → the platform on PostgreSQL.

Builds (or reuses) a synthetic HIS in MariaDB (database ``phip_his_bench``) with N outpatient
visits (``MZ_JZJL`` + diagnoses ``MZ_ZDXX``, default 500,000), then, each in its own process:

* raw fetch: the exact query the collector sends for ``outpatient_visit`` of the worked
  example (join + cursor order), same driver (pymysql), same read-only session, same
  server-side cursor and batch size — rows fetched and thrown away;
* collect: ``Collector.run(..., full=True)`` for that data set into PostgreSQL
  (database ``phip_bench_collect``, emptied first): map, validate, identify, upsert, count,
  cursor — the whole road;

and prints rows/s of both, the ratio collect / raw, and the collector's peak RSS after
100,000 rows and at the end (flat memory = server-side cursor + per-batch pipeline).

The raw fetch runs before *and* after each collect, and the ratio is taken against the mean
of the two: on a shared virtual machine the speed of the cores drifts by a fifth within
minutes (seen here: the same raw fetch at 22,000 and 43,000 rows/s in one hour), and a
baseline measured only before would fold that drift into the ratio. The two raw figures
are printed, so the drift during a round is visible. ``--rounds K`` repeats collect K times
(raw, collect, raw, collect, …, raw) and prints the median ratio.

Usage: python benchmarks/collect.py [--rows 500000] [--rounds 1] [--rebuild]
       [--mariadb mysql+pymysql://root@127.0.0.1:3306] [--pg postgresql+psycopg://postgres@127.0.0.1:5432]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from phip.synth import his_synth  # noqa: E402
from phip.collect.mapping import load_mapping  # noqa: E402

JOB = "outpatient_visit"
EXAMPLE = ROOT / "src" / "phip" / "collect" / "examples" / "his_demo.yaml"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(url: str, rows: int, rebuild: bool) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.execute(text("SELECT COUNT(*) FROM MZ_JZJL")).scalar()
    except Exception:  # noqa: BLE001 - no database or table yet
        have = -1
    finally:
        engine.dispose()
    if have == rows and not rebuild:
        print(f"HIS: reusing {have:,} visits in {url}")
        return
    start = time.perf_counter()
    his_synth.reset_database(url)
    engine = create_engine(url)
    his_synth.create_schema(engine)
    per_day = 5000
    days = -(-rows // per_day)
    synth = his_synth.HisSynth(seed=2026)
    done = 0
    for back in range(days, 0, -1):
        data = his_synth.HisData()
        n = min(per_day, rows - done)
        synth.day(data, synth.now.date() - timedelta(days=back), n, 0, {"MZ_JZJL", "MZ_ZDXX"}, plant=False)
        his_synth.load(engine, data)
        done += n
    engine.dispose()
    print(f"HIS: built {done:,} visits in {time.perf_counter() - start:.0f} s")


def mapping_file(url: str, tmp: Path, batch: int | None = None) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["source"]["url"] = url
    if batch:
        data["source"]["batch_size"] = batch
    path = tmp / "his_bench.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def phase_raw(path: Path) -> dict:
    from phip.collect.runner import build_sql
    from phip.collect.source import open_source

    mapping = load_mapping(path)
    job = mapping.job(JOB)
    sql, _, params = build_sql(job, None)
    engine = open_source(mapping)
    n = 0
    start = time.perf_counter()
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(text(sql), params)
        for rows in result.partitions(mapping.source.batch_size):
            n += len(rows)
    seconds = time.perf_counter() - start
    engine.dispose()
    return {"rows": n, "seconds": seconds, "rss": rss_mib()}


def validation_rss_mib() -> float | None:
    """Peak RSS of the collector's validation process (phip.ingest.workers), if it runs."""
    from phip.ingest import workers

    executor = workers.pool()
    for pid in getattr(executor, "_processes", None) or {}:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def phase_collect(path: Path, pg: str) -> dict:
    from phip.collect.runner import Collector
    from phip.runtime import build_pipeline
    from phip.ingest import workers
    from phip.runtime import prepare, tune_gc
    from phip.store.db import create_database, make_engine, wipe

    tune_gc()  # as every phip command does (phip.cli.main)
    workers.warm()  # a `phip worker` starts its validation process once, not per run

    create_database(pg)
    engine = make_engine(pg)
    wipe(engine)
    prepare(engine)
    mapping = load_mapping(path)
    marks: dict[str, float] = {}

    class Marks:
        rows = 0

        def start(self, job, total):  # noqa: ANN001
            pass

        def advance(self, job, rows):  # noqa: ANN001
            before, Marks.rows = Marks.rows, Marks.rows + rows
            if before < 100_000 <= Marks.rows:
                marks["rss_100k"] = rss_mib()

    start = time.perf_counter()
    (result,) = Collector(engine, build_pipeline(engine)).run(mapping, [JOB], full=True, progress=Marks())
    seconds = time.perf_counter() - start
    engine.dispose()
    if result.status != "ok":
        raise SystemExit(f"collect failed: {result.error}")
    return {"rows": result.rows_read, "accepted": result.accepted, "rejected": result.rejected, "seconds": seconds,
            "rss_100k": marks.get("rss_100k"), "rss_end": rss_mib(), "rss_validation": validation_rss_mib()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=1, help="collect runs, each between two raw fetches")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--batch", type=int, help="rows per batch (default: the worked example's)")
    ap.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    ap.add_argument("--phase", choices=["raw", "collect"], help=argparse.SUPPRESS)
    ap.add_argument("--mapping", help=argparse.SUPPRESS)
    args = ap.parse_args()
    pg = f"{args.pg}/phip_bench_collect"
    if args.phase == "raw":
        print(json.dumps(phase_raw(Path(args.mapping))))
        return
    if args.phase == "collect":
        print(json.dumps(phase_collect(Path(args.mapping), pg)))
        return

    his = f"{args.mariadb}/phip_his_bench?charset=utf8mb4"
    build(his, args.rows, args.rebuild)
    batch = args.batch or load_mapping(EXAMPLE).source.batch_size
    print(f"\nMariaDB → PostgreSQL, data set {JOB}, batch {batch} rows")
    with tempfile.TemporaryDirectory() as tmp:
        path = mapping_file(his, Path(tmp), args.batch)

        def phase(name: str) -> dict:
            proc = subprocess.run([sys.executable, __file__, "--phase", name, "--mapping", str(path), "--pg", args.pg],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            return json.loads(proc.stdout.strip().splitlines()[-1])

        ratios = []
        before = phase("raw")
        for round_ in range(1, args.rounds + 1):
            col = phase("collect")
            after = phase("raw")
            ratios.append(report(round_, before, col, after))
            before = after
    if len(ratios) > 1:
        print(f"\nratio collect / raw fetch over {len(ratios)} rounds: median {statistics.median(ratios):.2f}, "
              f"range {min(ratios):.2f}–{max(ratios):.2f}")


def report(round_: int, before: dict, col: dict, after: dict) -> float:
    """Print one round; returns its ratio (collect against the mean raw rate around it)."""
    rate_before, rate_after = before["rows"] / before["seconds"], after["rows"] / after["seconds"]
    raw_rate = (rate_before + rate_after) / 2
    col_rate = col["rows"] / col["seconds"]
    print(f"round {round_}")
    print(f"  raw fetch (pymysql, server-side cursor):   {before['rows']:>9,} rows at {rate_before:>9,.0f} rows/s before, "
          f"{rate_after:,.0f} after: mean {raw_rate:,.0f} rows/s")
    print(f"  collect → pipeline → PostgreSQL:           {col['rows']:>9,} rows in {col['seconds']:7.1f} s = {col_rate:>9,.0f} rows/s"
          f"  (accepted {col['accepted']:,}, rejected {col['rejected']:,})")
    print(f"  ratio collect / raw fetch: {col_rate / raw_rate:.2f}")
    at_100k = f"{col['rss_100k']:.0f} MiB at 100,000 rows, " if col["rss_100k"] else ""
    if col.get("rss_validation"):
        print(f"  validation process peak RSS: {col['rss_validation']:.0f} MiB")
    print(f"  collector peak RSS: {at_100k}{col['rss_end']:.0f} MiB at {col['rows']:,} rows"
          f"  (raw fetch process: {before['rss']:.0f} MiB)")
    return col_rate / raw_rate


if __name__ == "__main__":
    main()

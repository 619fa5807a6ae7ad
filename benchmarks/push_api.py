"""Push API throughput: concurrent hospital uploaders against a real uvicorn server on
PostgreSQL, beside the pipeline-only rate measured in the same run.

* pipeline only: the same kind of batches through Pipeline.ingest in this process;
* push API: 4 uploader threads, each its own institution and key, POSTing batches of 1,000
  outpatient visits (gzip JSON) to `phip serve --workers 2`;
* prints records/s, p50/p95 batch latency and the ratio API / pipeline.

Usage: python benchmarks/push_api.py [--batches 15] [--uploaders 4] [--pg postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import gzip
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_pipeline import NOW, fresh  # noqa: E402

from phip.runtime import build_pipeline  # noqa: E402
from phip.orgs.keys import create_key  # noqa: E402
from phip.orgs.service import list_institutions  # noqa: E402
from phip.store.db import create_database, make_engine  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

BATCH = 1000


def make_batches(orgs, per_org: int, seed: int) -> dict[str, list[list[dict]]]:
    gen = Generator(seed=seed)
    out: dict[str, list[list[dict]]] = {}
    for code, name in orgs:
        batches: list[list[dict]] = []
        day = date(2026, 9, 1)
        while len(batches) < per_org:
            for _, _, recs in gen.day([(code, name)], day, visits=BATCH, admissions=1, now=NOW, datasets=["outpatient_visit"]):
                batches.append(recs[:BATCH])
            day += timedelta(days=1)
        out[code] = batches[:per_org]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=15, help="batches per uploader")
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--pg", default=os.environ.get("PHIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_api"))
    args = parser.parse_args()
    create_database(args.pg)
    engine = make_engine(args.pg)
    fresh(engine)
    orgs = [(r.code, r.name) for r in list_institutions(engine) if r.kind == "hospital"][: args.uploaders]
    t0 = time.perf_counter()
    baseline_batches = make_batches(orgs, args.batches, seed=1)
    api_batches = make_batches(orgs, args.batches, seed=2)
    n = args.uploaders * args.batches * BATCH
    print(f"generated 2 × {n} outpatient visits ({time.perf_counter() - t0:.0f}s, not timed)")

    pipeline = build_pipeline(engine)
    t0 = time.perf_counter()
    for code, batches in baseline_batches.items():
        for batch in batches:
            pipeline.ingest(code, "outpatient_visit", batch, now=NOW)
    pipeline_rate = n / (time.perf_counter() - t0)

    fresh(engine)
    keys = {code: create_key(engine, code)[1] for code, _ in orgs}
    engine.dispose()
    port = free_port()
    env = {**os.environ, "PHIP_DATABASE_URL": args.pg, "PHIP_RATE_LIMIT": "0"}
    server = subprocess.Popen([sys.executable, "-m", "phip.cli", "serve", "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        bodies = {code: [gzip.compress(orjson.dumps(b), 1) for b in batches] for code, batches in api_batches.items()}
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def upload(code: str) -> None:
            headers = {"Authorization": f"Bearer {keys[code]}", "Content-Type": "application/json", "Content-Encoding": "gzip"}
            with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
                for body in bodies[code]:
                    start = time.perf_counter()
                    r = client.post("/api/v1/datasets/outpatient_visit/records", content=body)
                    took = time.perf_counter() - start
                    with lock:
                        latencies.append(took)
                        if r.status_code != 200 or r.json()["counts"]["accepted"] != BATCH:
                            failures.append(f"{r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=upload, args=(code,)) for code, _ in orgs]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        api_rate = n / (time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if failures:
        print(f"{len(failures)} failed batches, first: {failures[0]}")
    q = statistics.quantiles(latencies, n=20)
    print(f"{'path':<34} {'records/s':>10} {'p50 batch':>10} {'p95 batch':>10}")
    print(f"{'pipeline only (1 process)':<34} {pipeline_rate:>10,.0f}")
    print(f"{'push API (4 uploaders, 2 workers)':<34} {api_rate:>10,.0f} {statistics.median(latencies):>9.2f}s {q[18]:>9.2f}s")
    print(f"ratio API / pipeline: {api_rate / pipeline_rate:.2f}")


if __name__ == "__main__":
    main()

"""Province–city integration (省市一体化): records per second from the city's intake to stored
at the province, beside the province's own direct push rate measured in the same run; the lag
p95 under a steady push; the forwarder's peak memory at a small and a large backlog.

* province: `phip serve --workers 2` on PostgreSQL; city: this process, on a PostgreSQL database
  of its own, with PHIP_UPSTREAM_URL set (its pipeline writes the outbox);
* direct: one uploader POSTs batches of visits of the forwarder's size to the province with an institution's key;
* federated: the city ingests the same amount (same batches, another institution of the
  region) while `phip federation forward` runs in its own process; rate = records / (first intake → last marked sent);
* drain: the same amount queued first (not timed), then the forwarder alone: the forwarding
  path's own cost, without the city's intake sharing the machine;
* steady: the city ingests at half the federated rate; lag = sent_at − created_at per record;
* memory: tracemalloc peak of the forwarder over its first 20 batches with a backlog of
  10,000 and of --big (default 1,000,000) rows, made by SQL (not timed).

Usage: python benchmarks/federation.py [--records 20000] [--big 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_pipeline import NOW, fresh  # noqa: E402
from push_api import free_port  # noqa: E402

from phip.federation.forwarder import BATCH_SIZE, Forwarder, outbox_status  # noqa: E402
from phip.federation.tables import OutboxRow  # noqa: E402
from phip.orgs.keys import create_key  # noqa: E402
from phip.runtime import build_pipeline  # noqa: E402
from phip.store.db import create_database, make_engine  # noqa: E402
from phip.store.models import Institution, Record  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

BATCH = BATCH_SIZE  # the forwarder's batch: the direct uploader sends the same size
REGION = "220100"
DATASET = "outpatient_visit"


def batches(org: tuple[str, str], n: int, seed: int) -> list[list[dict]]:
    gen, out, day = Generator(seed=seed), [], date(2026, 9, 1)
    while sum(map(len, out)) < n:
        for _, _, recs in gen.day([org], day, visits=BATCH, admissions=1, now=NOW, datasets=[DATASET]):
            out.append(recs[:BATCH])
        day += timedelta(days=1)
    return out[: n // BATCH]


def start_province(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PHIP_DATABASE_URL": url, "PHIP_RATE_LIMIT": "0"}
    env.pop("PHIP_UPSTREAM_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "phip.cli", "serve", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the province did not start")


def federated(city, province_base: str, key: str, org, work: list[list[dict]], pace: float | None,
              drain: bool = False) -> tuple[float, list[float]]:
    """Ingest ``work`` at the city (at ``pace`` records/s, or flat out) while `phip federation
    forward` runs in its own process, as operators run it; returns (records/s intake → stored
    at the province, lags in seconds). ``drain``: queue first, then time the forwarder alone."""
    n = sum(map(len, work))
    env = {**os.environ, "PHIP_DATABASE_URL": city.engine.url.render_as_string(hide_password=False),
           "PHIP_UPSTREAM_URL": province_base, "PHIP_UPSTREAM_KEY": key}
    if drain:  # the backlog first (not timed), then the forwarder alone (in this process: no start-up)
        for batch in work:
            city.ingest(org[0], DATASET, batch, source="api")
        forwarder = Forwarder(city.engine, province_base, key)
        t0 = time.perf_counter()
        forwarder.run(once=True)
        took = time.perf_counter() - t0
        forwarder.close()
        with city.engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox"))
        return n / took, []
    t0 = time.perf_counter()
    sender = subprocess.Popen([sys.executable, "-m", "phip.cli", "federation", "forward"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for i, batch in enumerate(work):
            if pace:
                time.sleep(max(0.0, t0 + i * len(batch) / pace - time.perf_counter()))
            city.ingest(org[0], DATASET, batch, source="api")
        while outbox_status(city.engine, 0).backlog:
            time.sleep(0.02)
        took = time.perf_counter() - t0
    finally:
        sender.terminate()
        sender.wait(30)
    with city.engine.connect() as conn:
        lags = [(s - c).total_seconds() for s, c in conn.execute(select(OutboxRow.sent_at, OutboxRow.created_at))]
        conn.execute(text("DELETE FROM outbox"))
        conn.commit()
    assert len(lags) == n, (len(lags), n)
    return n / took, lags


def backlog_memory(city, province_base: str, key: str, org: str, rows: int, batches_: int = 20) -> float:
    """Peak MiB the forwarder allocates over its first ``batches_`` batches with ``rows`` waiting."""
    with city.engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox"))
        template = conn.execute(select(Record.payload).where(Record.org_code == org).limit(1)).scalar_one()
        conn.execute(text(
            "INSERT INTO outbox (org_code, dataset, record_key, version, payload, created_at, attempts) "
            "SELECT :org, :ds, 'MEM' || g, 1, jsonb_set(CAST(:payload AS jsonb), '{visit_no}', to_jsonb('MEM' || g))::json, "
            "now(), 0 FROM generate_series(1, :n) AS g"), {"org": org, "ds": DATASET, "payload": orjson.dumps(template).decode(), "n": rows})
    forwarder = Forwarder(city.engine, province_base, key)
    sent = [0]
    tracemalloc.start()
    forwarder.run(stop=lambda: sent.__setitem__(0, sent[0] + 1) or sent[0] > batches_)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    forwarder.close()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--pg", default=os.environ.get("PHIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_fed"))
    args = parser.parse_args()
    p_url, c_url = args.pg + "_province", args.pg + "_city"
    for url in (p_url, c_url):
        create_database(url)
    province, city_engine = make_engine(p_url), make_engine(c_url)
    fresh(province)
    fresh(city_engine)
    with province.connect() as conn:
        orgs = conn.execute(select(Institution.code, Institution.name).where(Institution.region_code == REGION)
                            .order_by(Institution.code).limit(5)).all()
    holder, direct_org, city_org, steady_org, drain_org = [tuple(o) for o in orgs]
    city_key = create_key(province, holder[0], "bench city", REGION)[1]
    direct_key = create_key(province, direct_org[0], "bench direct")[1]
    t0 = time.perf_counter()
    direct_work, city_work = batches(direct_org, args.records, 1), batches(city_org, args.records, 2)
    steady_work = batches(steady_org, args.records // 2, 3)
    drain_work = batches(drain_org, args.records, 4)
    print(f"generated {sum(map(len, direct_work + city_work + steady_work + drain_work))} visits ({time.perf_counter() - t0:.0f}s, not timed)")
    os.environ["PHIP_UPSTREAM_URL"] = "http://bench.invalid"  # the city's pipeline writes the outbox
    city = build_pipeline(city_engine)
    proc, base = start_province(p_url)
    try:
        with httpx.Client(base_url=base, timeout=300, headers={"Authorization": f"Bearer {direct_key}",
                                                               "Content-Type": "application/json"}) as client:
            t0 = time.perf_counter()
            for batch in direct_work:
                assert client.post(f"/api/v1/datasets/{DATASET}/records", content=orjson.dumps(batch)).status_code == 200
            direct = sum(map(len, direct_work)) / (time.perf_counter() - t0)
        rate, _ = federated(city, base, city_key, city_org, city_work, None)
        drained, _ = federated(city, base, city_key, drain_org, drain_work, None, drain=True)
        _, lags = federated(city, base, city_key, steady_org, steady_work, rate / 2)
        with province.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Record).where(Record.org_code == city_org[0])).scalar_one()
        small = backlog_memory(city, base, city_key, city_org[0], 10_000)
        big = backlog_memory(city, base, city_key, city_org[0], args.big)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    q = statistics.quantiles(lags, n=20)
    print(f"direct push to the province (1 uploader, batches of {BATCH}): {direct:,.0f} records/s")
    print(f"city intake → stored at the province: {rate:,.0f} records/s; ratio {rate / direct:.2f} (aim ≥ 0.7)")
    print(f"forwarder alone draining a backlog of {args.records:,}: {drained:,.0f} records/s; ratio {drained / direct:.2f}")
    print(f"steady push at {rate / 2:,.0f} records/s: lag p50 {statistics.median(lags):.2f}s, p95 {q[18]:.2f}s")
    print(f"forwarder peak memory over 20 batches: backlog 10,000 {small:.1f} MiB; backlog {args.big:,} {big:.1f} MiB")
    print(f"province holds {stored} records of the city's institution, the city {len(city_work) * BATCH}")


if __name__ == "__main__":
    main()

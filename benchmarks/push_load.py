"""Push API under load (issue 19 item 3): many hospital clients at once against a real
`phip serve --workers 2` on PostgreSQL, over loopback.

Each client is its own institution with its own key and POSTs its batches (gzip JSON) one
after another; a 503 or 429 is answered by waiting Retry-After and sending the same batch again.
Two identical waves (new record keys each) are sent; worker memory (VmRSS of
/proc/<pid>/status) is sampled before, during and after each wave.

Prints: answers by status (before retries), batches that never got a 2xx, records/s, batch
latency, rows in the database against the records sent (lost / duplicated), and worker RSS.
Asserted bound on memory: the workers' total RSS after the second wave is within 10% of their
total after the first (the second identical wave leaves nothing behind).

Usage: python benchmarks/push_load.py [--clients 50] [--batches 1] [--batch-size 1000] [--waves 2]
       [--workers 2] [--pg postgresql+psycopg://…]
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
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select  # noqa: E402

from ingest_pipeline import top_up_hospitals  # noqa: E402

from phip.orgs.keys import create_key  # noqa: E402
from phip.orgs.service import seed_institutions  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402
from phip.store.models import Record  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

DATASET = "outpatient_visit"
NOW = datetime(2026, 11, 22, 12, 0, 0)
MAX_TRIES = 30


@dataclass
class Result:
    clients: int
    batches: int
    batch_size: int
    waves: int
    statuses: Counter = field(default_factory=Counter)  # every answer, retries included
    failed: list[str] = field(default_factory=list)  # batches that never got a 2xx
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stored: int = 0  # rows of the data set in the database
    distinct: int = 0  # distinct record keys among them
    accepted: int = 0  # sum of the final receipts' accepted + unchanged
    rss: dict[str, dict[int, int]] = field(default_factory=dict)  # moment -> worker pid -> kB
    peak: dict[int, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return self.clients * self.batches * self.batch_size * self.waves

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 and s != 503)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_records(size: int) -> list[dict]:
    """``size`` valid outpatient visits of one synthetic institution, re-keyed per client below."""
    gen = Generator(seed=7)
    out: list[dict] = []
    day = date(2026, 9, 1)
    while len(out) < size:
        for _, _, recs in gen.day([("X", "x")], day, visits=size, admissions=1, now=NOW, datasets=[DATASET]):
            out += recs
        day = date.fromordinal(day.toordinal() + 1)
    return out[:size]


def bodies_for(template: list[dict], org: tuple[str, str], wave: int, batches: int) -> list[bytes]:
    code, name = org
    out = []
    for b in range(batches):
        batch = [{**r, "org_code": code, "org_name": name, "visit_no": f"W{wave}B{b}-{i:05d}",
                  "patient_id": f"{r['patient_id']}-{wave}"} for i, r in enumerate(template)]
        out.append(gzip.compress(orjson.dumps(batch), 1))
    return out


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def workers_of(server: int) -> list[int]:
    """uvicorn's worker processes: the server's spawned children (not its resource tracker)."""
    pids = []
    for pid in _children(server):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            pids.append(pid)
    return sorted(pids)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def settled(pids: list[int], deadline: float) -> None:
    """Wait until every worker has finished starting: its RSS unchanged (±1%) for a second."""
    last = {p: rss_kb(p) for p in pids}
    while time.monotonic() < deadline:
        time.sleep(1)
        now = {p: rss_kb(p) for p in pids}
        if all(now[p] and abs(now[p] - last[p]) <= last[p] / 100 for p in pids):
            return
        last = now


def run(pg: str, clients: int = 50, batches: int = 1, batch_size: int = 1000, waves: int = 2, workers: int = 2,
        env: dict[str, str] | None = None, echo: bool = True, duration: float = 0) -> Result:
    """Run the load and answer its figures (the slow test asserts on them). With ``duration``
    (seconds), waves follow one another until that time has passed (at least ``waves``)."""
    say = print if echo else (lambda *a, **k: None)
    create_database(pg)
    engine = make_engine(pg)
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)
    orgs = top_up_hospitals(engine, clients)[:clients]  # the seed's hospitals, then synthetic ones
    keys = {code: create_key(engine, code)[1] for code, _ in orgs}
    template = base_records(batch_size)
    result = Result(clients, batches, batch_size, waves)
    port = free_port()
    server_env = {**os.environ, "PHIP_DATABASE_URL": pg, **(env or {})}
    server = subprocess.Popen([sys.executable, "-m", "phip.cli", "serve", "--port", str(port), "--workers", str(workers)],
                              env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200 and len(workers_of(server.pid)) >= workers:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        pids = workers_of(server.pid)
        settled(pids, deadline)
        result.rss["start"] = {p: rss_kb(p) for p in pids}

        def upload(code: str, name: str, wave: int) -> None:
            headers = {"Authorization": f"Bearer {keys[code]}", "Content-Type": "application/json",
                       "Content-Encoding": "gzip"}
            with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
                for body in bodies_for(template, (code, name), wave, batches):
                    for _ in range(MAX_TRIES):
                        start = time.perf_counter()
                        try:
                            r = client.post(f"/api/v1/datasets/{DATASET}/records", content=body)
                        except httpx.TransportError as exc:
                            with lock:
                                result.statuses[0] += 1  # no answer at all
                            last = f"{type(exc).__name__}"
                            time.sleep(1)
                            continue
                        with lock:
                            result.statuses[r.status_code] += 1
                            result.latencies.append(time.perf_counter() - start)
                        if r.status_code in (429, 503) and r.headers.get("Retry-After"):
                            time.sleep(min(float(r.headers["Retry-After"]), 10))
                            last = f"{r.status_code} {r.text[:200]}"
                            continue
                        if 200 <= r.status_code < 300:
                            counts = r.json()["counts"]
                            with lock:
                                result.accepted += counts["accepted"] + counts["unchanged"]
                        else:
                            with lock:
                                result.failed.append(f"{r.status_code} {r.text[:200]}")
                        break
                    else:
                        with lock:
                            result.failed.append(f"gave up after {MAX_TRIES} tries: {last}")

        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                for p in pids:
                    result.peak[p] = max(result.peak.get(p, 0), rss_kb(p))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        wave = 0
        while wave < waves or time.perf_counter() - t0 < duration:
            wave += 1
            result.waves = wave
            threads = [threading.Thread(target=upload, args=(code, name, wave)) for code, name in orgs]
            w0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            result.rss[f"after wave {wave}"] = {p: rss_kb(p) for p in pids}
            say(f"wave {wave}: {clients * batches * batch_size:,} records in {time.perf_counter() - w0:.1f}s")
        result.seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
        if workers_of(server.pid) != pids:
            result.failed.append(f"workers changed during the run: {pids} -> {workers_of(server.pid)}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    with engine.connect() as conn:
        where = Record.dataset == DATASET
        result.stored = conn.execute(select(func.count()).select_from(Record).where(where)).scalar_one()
        result.distinct = conn.execute(select(func.count(func.distinct(Record.org_code + "/" + Record.record_key)))
                                       .where(where)).scalar_one()
    engine.dispose()
    report(result, say)
    return result


def report(r: Result, say) -> None:  # noqa: ANN001
    say(f"{r.clients} clients × {r.batches} batch(es) × {r.batch_size} records × {r.waves} waves = {r.sent:,} records "
        f"in {r.seconds:.1f}s ({r.sent / max(r.seconds, 1e-9):,.0f} records/s)")
    say("answers by status (retries included): " + ", ".join(f"{s or 'no answer'}: {n}" for s, n in sorted(r.statuses.items())))
    say(f"batches without a 2xx after retries: {len(r.failed)}" + (f" (first: {r.failed[0]})" if r.failed else ""))
    if len(r.latencies) >= 2:
        q = statistics.quantiles(r.latencies, n=20)
        say(f"batch latency p50 {statistics.median(r.latencies):.2f}s p95 {q[18]:.2f}s max {max(r.latencies):.2f}s")
    say(f"rows stored {r.stored:,} (distinct keys {r.distinct:,}) of {r.sent:,} sent; receipts accepted+unchanged {r.accepted:,}")
    for moment, by_pid in r.rss.items():
        say(f"worker RSS {moment:<13} " + "  ".join(f"[{p}] {kb / 1024:.0f} MB" for p, kb in by_pid.items()))
    say("worker RSS peak          " + "  ".join(f"[{p}] {kb / 1024:.0f} MB" for p, kb in r.peak.items()))
    growth = flat_growth(r)
    if growth is not None:
        say(f"workers' RSS grew {growth * 100:.1f}% from the first wave's end to the last's (bound: < 10%)")


def flat_growth(r: Result) -> float | None:
    """(workers' total RSS after the last wave − after the first) / after the first. The total,
    not each worker: which worker takes more of a wave's batches varies from wave to wave."""
    first, last = r.rss.get("after wave 1"), r.rss.get(f"after wave {r.waves}")
    if not first or not last or r.waves < 2 or not sum(first.values()):
        return None
    return (sum(last.values()) - sum(first.values())) / sum(first.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batches", type=int, default=1, help="batches per client per wave")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=0, help="seconds: waves go on until then (a load test)")
    parser.add_argument("--pg", default=os.environ.get("PHIP_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_load"))
    args = parser.parse_args()
    r = run(args.pg, args.clients, args.batches, args.batch_size, args.waves, args.workers, duration=args.duration)
    ok = not r.failed and not r.server_errors and r.stored == r.distinct == r.sent
    growth = flat_growth(r)
    flat = growth is None or growth < 0.10
    print("PASS" if ok and flat else "FAIL")
    sys.exit(0 if ok and flat else 1)


if __name__ == "__main__":
    main()

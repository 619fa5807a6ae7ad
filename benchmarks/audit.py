"""The audit trail's cost: appends/s and the p95 of one append (``log_event``: its own
transaction, the append lock, the head read, HMAC-SM3, the insert, the anchor file after the
commit), beside a plain INSERT of the same row in a transaction of its own (the floor), as a
ratio; then ``verify`` over the whole trail, as seconds per 100,000 events.

Runs on SQLite (a file in a temporary directory) and on PostgreSQL (database
``phip_bench_audit``, emptied first). The two kinds of write alternate in rounds, so drift of
a shared machine's cores falls on both.

Usage: python benchmarks/audit.py [--appends 2000] [--verify-rows 100000]
       [--pg postgresql+psycopg://postgres@127.0.0.1:5432] [--only sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

WORK = tempfile.mkdtemp(prefix="phip-bench-audit-")
os.environ["PHIP_AUDIT_KEY_FILE"] = str(Path(WORK) / "audit.key")
os.environ["PHIP_AUDIT_ANCHOR_FILE"] = str(Path(WORK) / "audit.anchor")

from datetime import datetime  # noqa: E402

from sqlalchemy import Column, Engine, Index, MetaData, Table, delete, insert  # noqa: E402

from phip import audit  # noqa: E402
from phip.audit import mac  # noqa: E402
from phip.audit.tables import AuditEvent  # noqa: E402
from phip.audit.trail import append_many  # noqa: E402
from phip.audit.verify import verify  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402

ACTOR = audit.Actor("dr_li", "clinician", "12220104412001376B", "内科", "10.0.0.7")
DETAIL = {"documents": 3, "categories": ["lab", "exam"], "reason": "复诊"}


def _engine(backend: str, pg: str) -> Engine:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{Path(WORK) / 'bench.db'}")
    else:
        url = f"{pg}/phip_bench_audit"
        create_database(url)
        engine = make_engine(url)
        wipe(engine)
    upgrade(engine)
    return engine


def _plain_table() -> Table:
    """audit_events' columns and indexes under another name: the same row, no chain."""
    source = AuditEvent.__table__
    table = Table("bench_plain", MetaData(), *[Column(c.name, c.type, primary_key=c.primary_key,
                                                      nullable=c.nullable, autoincrement=False) for c in source.columns])
    for index in source.indexes:
        Index(index.name.replace("audit_events", "bench_plain"), *[table.c[c.name] for c in index.columns])
    return table


PLAIN = _plain_table()


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(AuditEvent))
    PLAIN.drop(engine, checkfirst=True)
    PLAIN.create(engine)
    Path(os.environ["PHIP_AUDIT_ANCHOR_FILE"]).unlink(missing_ok=True)


def _plain(engine: Engine, seq: int) -> None:
    row = {"seq": seq, "at": datetime.now(), "username": ACTOR.username, "role": ACTOR.role, "org_code": ACTOR.org_code,
           "department": ACTOR.department, "address": ACTOR.address, "action": "share.timeline.read",
           "person_id": f"p{seq}", "authorization": "consent:1", "target": None, "detail": DETAIL, "flagged": False,
           "mac": "0" * 64}
    with engine.begin() as conn:
        conn.execute(insert(PLAIN), row)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def writes(engine: Engine, n: int, rounds: int = 4) -> dict[str, float]:
    _reset(engine)
    audited, plain = [], []
    per = n // rounds
    for r in range(rounds):
        for i in range(per):
            t = time.perf_counter()
            audit.log_event(engine, ACTOR, "share.timeline.read", person_id=f"p{i}", authorization="consent:1",
                            detail=DETAIL)
            audited.append(time.perf_counter() - t)
        for i in range(per):
            t = time.perf_counter()
            _plain(engine, r * per + i + 1)
            plain.append(time.perf_counter() - t)
    return {"appends_s": len(audited) / sum(audited), "plain_s": len(plain) / sum(plain),
            "p95_ms": _p95(audited) * 1e3, "plain_p95_ms": _p95(plain) * 1e3,
            "ratio": statistics.mean(audited) / statistics.mean(plain)}


def verify_time(engine: Engine, rows: int) -> float:
    _reset(engine)
    with engine.begin() as conn:
        for start in range(0, rows, 10_000):
            append_many(conn, [(ACTOR, "share.timeline.read", {"person_id": f"p{i}", "detail": DETAIL})
                               for i in range(start, min(rows, start + 10_000))])
    t = time.perf_counter()
    verdict = verify(engine)
    seconds = time.perf_counter() - t
    assert verdict.ok and verdict.checked == rows, verdict
    return seconds / rows * 100_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--verify-rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    mac.require_sm3()
    for backend in ("sqlite", "postgresql"):
        if args.only and backend != args.only:
            continue
        engine = _engine(backend, args.pg)
        w = writes(engine, args.appends)
        v = verify_time(engine, args.verify_rows)
        print(f"{backend:10}  log_event {w['appends_s']:7.0f}/s  p95 {w['p95_ms']:6.2f} ms  | plain INSERT "
              f"{w['plain_s']:7.0f}/s  p95 {w['plain_p95_ms']:6.2f} ms  | ratio {w['ratio']:4.2f}  | "
              f"verify {v:5.2f} s per 100,000")
        PLAIN.drop(engine, checkfirst=True)
        engine.dispose()


if __name__ == "__main__":
    main()

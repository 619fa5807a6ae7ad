"""Opening a patient's cross-institution timeline (share.timeline) inside a big store, against
reading the same rows by primary key (the floor), on PostgreSQL.

Fills a PostgreSQL store with N records (default 10,000,000) set-based with generate_series.
Every ``N / (patients * 1000)``-th row belongs to one of 200 benchmark patients, so each of them
has 1,000 records spread over 20 institutions and over the whole table (a long history: every
record on a page of its own), in the data sets the timeline shows (visits, lab reports,
prescriptions, exam reports) with payloads of realistic size; the rest are other persons.
Each benchmark patient has a consent for the reader's institution. Then, warm, per patient:

* timeline: ``phip.share.timeline`` as a clinician calls it (access check, the patient's
  records, the scope check per record, one audit event appended and committed);
* floor: one ``SELECT … WHERE id = ANY(:ids)`` of the same rows by primary key;

and prints p50 and p95 over the 200 patients of both and the ratio. Every patient's rows are
read once before measuring (warm), and the two sides alternate which goes first. Usage:

    python benchmarks/share.py [--records 10000000] [--patients 200] [--pg postgresql+psycopg://…/phip_bench_share] [--reuse]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("PHIP_DATA_DIR", tempfile.mkdtemp(prefix="phip-bench-share-"))  # the audit key and anchor

from phip import share  # noqa: E402
from phip.accounts import create_user, user_info  # noqa: E402
from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.store import partitions  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_share"
PER_PATIENT = 1000
ORGS = 20
DATASETS = ["outpatient_visit", "lab_report", "lab_report", "lab_report", "western_prescription",
            "western_prescription", "exam_report"]
OTHER = ["fee_detail", "fee_detail", "lab_report", "outpatient_visit", "western_prescription", "patient_info",
         "vital_signs", "inpatient_order"]
CHUNK = 1_000_000


def _pid(expr: str) -> str:
    return f"'bench' || lpad(({expr})::text, 27, '0')"


def load(engine: Engine, n: int, patients: int) -> None:
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)
    orgs = [r.code for r in list_institutions(engine) if r.kind == "hospital"]
    stride = n // (patients * PER_PATIENT)
    if stride < 1:
        raise SystemExit(f"--records must be at least {patients * PER_PATIENT}")
    with engine.begin() as conn:
        # the ten years the records span get their month partitions (store.partitions), as a
        # province back-loading its history would create them; the timeline and FHIR then read
        # the person index of every month
        partitions.ensure_months(conn, [partitions.add_months(date(2016, 1, 1), i) for i in range(120)])
        for ix in ("uq_records_natural_key", "ix_records_dataset_event", "ix_records_person",
                   "ix_records_record_key_dataset_org_code", "ix_records_id"):
            conn.execute(text(f'ALTER TABLE records DROP CONSTRAINT IF EXISTS "{ix}"'))
            conn.execute(text(f'DROP INDEX IF EXISTS "{ix}"'))
    mine = f"(g % {stride} = 0 AND g / {stride} <= {patients * PER_PATIENT})"
    sql = text(f"""
        INSERT INTO records (org_code, dataset, record_key, version, content_hash, person_id, event_time, received_at,
                             batch_id, payload)
        SELECT CASE WHEN {mine} THEN (CAST(:orgs AS text[]))[1 + (g / {stride} / {patients}) % {ORGS}] ELSE (CAST(:all_orgs AS text[]))[1 + g % 66] END,
               ds, 'K' || g, 1, md5(g::text),
               CASE WHEN {mine} THEN {_pid(f"(g / {stride}) % {patients}")} ELSE 'other' || lpad((g % 2000000)::text, 27, '0') END,
               ev, ev + interval '2 hours', 'bench',
               jsonb_build_object('dept_name', (ARRAY['内科','外科','儿科','妇科','急诊科'])[1 + g % 5],
                                  'diagnosis_name', (ARRAY['原发性高血压','2型糖尿病','急性上呼吸道感染','慢性胃炎','腰痛'])[1 + g % 5],
                                  'chief_complaint', '反复头晕3天，伴乏力', 'report_no', 'R' || (g / 3),
                                  'prescription_no', 'P' || (g / 2), 'panel_name', '血常规', 'item_name', '白细胞计数',
                                  'result_value', '6.2', 'reference_range', '3.5-9.5', 'drug_name', '硝苯地平缓释片',
                                  'exam_item_name', '胸部CT平扫', 'present_illness', repeat('患者自述症状持续，', 40))
        FROM (SELECT g, CASE WHEN {mine} THEN (CAST(:mine_ds AS text[]))[1 + g % {len(DATASETS)}] ELSE (CAST(:other_ds AS text[]))[1 + g % {len(OTHER)}] END AS ds,
                     timestamp '2016-01-01' + (g % 3650) * interval '1 day' + (g % 600) * interval '1 minute' AS ev
              FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g) s
    """)
    started = time.perf_counter()
    for lo in range(1, n + 1, CHUNK):
        with engine.begin() as conn:
            conn.execute(sql, {"orgs": orgs[:ORGS], "all_orgs": orgs[:66], "mine_ds": DATASETS, "other_ds": OTHER,
                               "lo": lo, "hi": min(n, lo + CHUNK - 1)})
        print(f"  {min(n, lo + CHUNK - 1):,} records ({time.perf_counter() - started:.0f} s)", flush=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_records_person ON records (person_id)"))
        conn.execute(text("CREATE INDEX ix_records_id ON records (id)"))  # the floor reads by id
        conn.execute(text(f"""INSERT INTO persons (id, created_at, status)
                              SELECT {_pid('p')}, now(), 'active' FROM generate_series(0, {patients - 1}) p"""))
        conn.execute(text(f"""INSERT INTO share_authorizations (person_id, kind, granted_by, created_at, expires_at)
                              SELECT {_pid('p')}, 'consent', 'bench', now() - interval '1 day', now() + interval '30 days'
                              FROM generate_series(0, {patients - 1}) p"""))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE records"))
        conn.execute(text("VACUUM ANALYZE persons"))
    create_user(engine, "bench_doctor", "bench-password-1", "clinician", org_code=orgs[ORGS], department="内科")
    print(f"loaded {n:,} records in {time.perf_counter() - started:.0f} s", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def alternate(pids: list[str], one: Callable[[str], float], other: Callable[[str], float]) -> tuple[list[float], list[float]]:
    """Both sides' times per patient, alternating which goes first (neither always pays a cold read)."""
    a, b = [], []
    for n, pid in enumerate(pids):
        if n % 2:
            a.append(one(pid))
            b.append(other(pid))
        else:
            b.append(other(pid))
            a.append(one(pid))
    return a, b


def measure(engine: Engine, patients: int) -> None:
    who = user_info(engine, "bench_doctor")
    pids = [f"bench{p:027d}" for p in range(patients)]
    with engine.connect() as conn:
        ids = {pid: list(conn.execute(text("SELECT id FROM records WHERE person_id = :p"), {"p": pid}).scalars())
               for pid in pids}
    floor_sql = text("SELECT id, org_code, dataset, event_time, payload FROM records WHERE id = ANY(:ids)")
    def read_floor(pid: str) -> float:
        start = time.perf_counter()
        with engine.connect() as conn:
            rows = conn.execute(floor_sql, {"ids": ids[pid]}).all()
        assert len(rows) == PER_PATIENT, len(rows)
        return (time.perf_counter() - start) * 1000

    def read_timeline(pid: str) -> float:
        start = time.perf_counter()
        documents.append(len(share.timeline(engine, who, pid)["documents"]))
        return (time.perf_counter() - start) * 1000

    documents: list[int] = []
    for pid in pids:  # warm: every patient's pages read once, so neither side pays the other's first read
        read_floor(pid)
    for pid in pids[:10]:
        read_timeline(pid)
    timeline, floor = alternate(pids, read_timeline, read_floor)
    p50, p95, f50, f95 = pct(timeline, .5), pct(timeline, .95), pct(floor, .5), pct(floor, .95)
    print(f"patients {patients}, records each {PER_PATIENT} over {ORGS} institutions, "
          f"documents on a timeline (median) {statistics.median(documents):.0f}")
    print(f"timeline   p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    print(f"floor (pk) p50 {f50:7.1f} ms   p95 {f95:7.1f} ms")
    print(f"ratio      p50 {p50 / f50:7.2f}      p95 {p95 / f95:7.2f}")


def run(description: str, measure: Callable[[Engine, int], None], records: int, patients: int, pg: str) -> None:
    """Parse the command line, load the store unless ``--reuse``, then measure (benchmarks/fhir_search.py too)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--records", type=int, default=records)
    ap.add_argument("--patients", type=int, default=patients)
    ap.add_argument("--pg", default=pg)
    ap.add_argument("--reuse", action="store_true", help="measure the store already loaded")
    args = ap.parse_args()
    if not args.reuse:
        create_database(args.pg)
        load(make_engine(args.pg), args.records, args.patients)
    measure(make_engine(args.pg), args.patients)


def main() -> None:
    run(__doc__.split("\n")[0], measure, 10_000_000, 200, DEFAULT_PG)


if __name__ == "__main__":
    main()

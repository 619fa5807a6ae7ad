"""Month report from counters vs a naive full scan of the records, on PostgreSQL.

Fills a PostgreSQL store with N records (default 10,000,000) set-based with generate_series —
66 institutions, a year of event times, the data sets the report counts plus others, small
JSON payloads with the fields the report needs (diagnosis codes, discharge times) — and the
counters the pipeline would have kept for them (``ingest_daily``, ``event_daily``,
``measure_daily``), built from the same rows. Then prints:

* report: ``upload_report`` for one month at institution and region level (median of 3, warm);
* naive: one GROUP BY over ``records`` computing the same figures (median of 3);
* the ratio naive / report, and a check that both give the same figures.

Only the primary key is kept on ``records`` while loading (secondary indexes do not help a
full scan and would only slow the load). Usage:

    python benchmarks/reports.py [--records 10000000] [--pg postgresql+psycopg://…/phip_bench_reports] [--reuse]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.reports.period import parse_period  # noqa: E402
from phip.reports.uploads import upload_report  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_reports"
MONTH = parse_period("2026-10")
# data set weights (out of 100): what a hospital sends most
WEIGHTS = {"fee_detail": 30, "lab_report": 22, "outpatient_visit": 18, "western_prescription": 10, "patient_info": 7,
           "exam_report": 5, "inpatient_visit": 3, "progress_note": 3, "vital_signs": 2}
DIAGNOSES = ["I10.x00", "E11.900", "J06.900", "K29.700", "M54.500", "I11.900", "E14.900", "J18.900"]
CHUNK = 1_000_000


def load(engine: Engine, n: int) -> None:
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)
    orgs = [r.code for r in list_institutions(engine) if r.kind == "hospital"]
    datasets = [ds for ds, w in WEIGHTS.items() for _ in range(w)]
    with engine.begin() as conn:
        for ix in ("uq_records_natural_key", "ix_records_dataset_event", "ix_records_person"):
            conn.execute(text(f'ALTER TABLE records DROP CONSTRAINT IF EXISTS "{ix}"'))
            conn.execute(text(f'DROP INDEX IF EXISTS "{ix}"'))
        conn.execute(text("ALTER TABLE records SET (autovacuum_enabled = false)"))
    sql = text("""
        INSERT INTO records (org_code, dataset, record_key, version, content_hash, person_id, event_time, received_at, batch_id, payload)
        SELECT org, ds, 'K' || g, 1, md5(g::text), NULL, ev, ev + ((g * 31) % 40) * interval '1 hour', 'bench',
               CASE ds WHEN 'inpatient_visit' THEN jsonb_build_object('diagnosis_code', dx,
                            'discharge_time', to_char(ev + ((g % 9) + 1) * interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS'))
                       WHEN 'outpatient_visit' THEN jsonb_build_object('diagnosis_code', dx)
                       ELSE jsonb_build_object('n', g) END
        FROM (SELECT g, (CAST(:orgs AS text[]))[1 + (g * 7919) % :norgs] AS org, (CAST(:ds AS text[]))[1 + (g * 104729) % 100] AS ds,
                     (CAST(:dx AS text[]))[1 + (g * 13) % :ndx] AS dx,
                     timestamp '2026-01-01' + ((g * 2654435761) % (365 * 86400)) * interval '1 second' AS ev
              FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) g) s
    """)
    t0 = time.perf_counter()
    for lo in range(1, n + 1, CHUNK):
        hi = min(n, lo + CHUNK - 1)
        with engine.begin() as conn:
            conn.execute(sql, {"orgs": orgs, "norgs": len(orgs), "ds": datasets, "dx": DIAGNOSES, "ndx": len(DIAGNOSES),
                               "lo": lo, "hi": hi})
        print(f"  loaded {hi:,} records ({time.perf_counter() - t0:.0f} s)", flush=True)
    # the counters the pipeline keeps, derived from the same rows
    with engine.begin() as conn:
        conn.execute(text("""INSERT INTO ingest_daily (org_code, dataset, day, received, accepted, updated, unchanged, rejected, warnings)
            SELECT org_code, dataset, received_at::date, count(*), count(*), 0, 0, 0, 0 FROM records GROUP BY 1, 2, 3"""))
        conn.execute(text("""INSERT INTO event_daily (org_code, dataset, day, records)
            SELECT org_code, dataset, event_time::date, count(*) FROM records GROUP BY 1, 2, 3"""))
        conn.execute(text("""INSERT INTO measure_daily (org_code, measure, day, records)
            SELECT org_code, 'discharges', (payload->>'discharge_time')::date, count(*) FROM records
             WHERE dataset = 'inpatient_visit' AND payload ? 'discharge_time' GROUP BY 1, 3
            UNION ALL SELECT org_code, 'hypertension', event_time::date, count(*) FROM records
             WHERE dataset IN ('outpatient_visit', 'inpatient_visit') AND left(payload->>'diagnosis_code', 3) IN ('I10','I11','I12','I13','I15') GROUP BY 1, 3
            UNION ALL SELECT org_code, 'diabetes', event_time::date, count(*) FROM records
             WHERE dataset IN ('outpatient_visit', 'inpatient_visit') AND left(payload->>'diagnosis_code', 3) IN ('E10','E11','E12','E13','E14') GROUP BY 1, 3"""))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


NAIVE = text("""
SELECT org_code,
  count(*) FILTER (WHERE received_at >= :s AND received_at < :e) AS volume,
  count(DISTINCT received_at::date) FILTER (WHERE received_at >= :s AND received_at < :e) AS days,
  count(*) FILTER (WHERE dataset = 'outpatient_visit' AND event_time >= :s AND event_time < :e) AS outpatient,
  count(*) FILTER (WHERE dataset = 'inpatient_visit' AND payload->>'discharge_time' >= :s_iso AND payload->>'discharge_time' < :e_iso) AS discharges,
  count(*) FILTER (WHERE dataset IN ('lab_report', 'exam_report') AND event_time >= :s AND event_time < :e) AS lab_exam,
  count(*) FILTER (WHERE dataset = 'patient_info' AND event_time >= :s AND event_time < :e) AS basic,
  count(*) FILTER (WHERE dataset IN ('outpatient_visit', 'inpatient_visit') AND event_time >= :s AND event_time < :e
                   AND left(payload->>'diagnosis_code', 3) IN ('I10','I11','I12','I13','I15')) AS hypertension,
  count(*) FILTER (WHERE dataset IN ('outpatient_visit', 'inpatient_visit') AND event_time >= :s AND event_time < :e
                   AND left(payload->>'diagnosis_code', 3) IN ('E10','E11','E12','E13','E14')) AS diabetes
FROM records GROUP BY org_code
""")
KEYS = ["volume", "days", "outpatient", "discharges", "lab_exam", "basic", "hypertension", "diabetes"]


def naive(engine: Engine) -> dict[str, list[int]]:
    s, e = MONTH.start, date(MONTH.end.year, MONTH.end.month + 1, 1) if MONTH.end.month < 12 else date(MONTH.end.year + 1, 1, 1)
    with engine.connect() as conn:
        rows = conn.execute(NAIVE, {"s": s, "e": e, "s_iso": s.isoformat(), "e_iso": e.isoformat()}).all()
    return {r[0]: list(r[1:]) for r in rows}


def timed(fn, runs: int = 3):  # noqa: ANN001, ANN201
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--reuse", action="store_true", help="keep the loaded store from an earlier run")
    args = ap.parse_args()
    create_database(args.pg)
    engine = make_engine(args.pg)
    if args.reuse:
        upgrade(engine)  # newer migrations (e.g. counter indexes) onto the loaded store
    else:
        print(f"loading {args.records:,} records and their counters into {engine.url.database} …", flush=True)
        t0 = time.perf_counter()
        load(engine, args.records)
        print(f"  load + counters + analyze: {time.perf_counter() - t0:.0f} s", flush=True)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM records")).scalar_one()
        counters = conn.execute(text("SELECT (SELECT count(*) FROM ingest_daily) + (SELECT count(*) FROM event_daily) "
                                     "+ (SELECT count(*) FROM measure_daily)")).scalar_one()
    upload_report(engine, MONTH, "institution")  # warm the connection pool and caches
    t_inst, report = timed(lambda: upload_report(engine, MONTH, "institution"))
    t_region, _ = timed(lambda: upload_report(engine, MONTH, "region"))
    t_naive, scan = timed(lambda: naive(engine))
    same = all([r.value(k) for k in KEYS] == scan.get(r.key, [0] * len(KEYS)) for r in report.rows)
    print(f"records stored: {stored:,}; counter rows: {counters:,}; month {MONTH}")
    print(f"report from counters, institution level (median of 3): {t_inst * 1000:.1f} ms")
    print(f"report from counters, region level (median of 3):      {t_region * 1000:.1f} ms")
    print(f"naive full scan of records, same figures (median of 3): {t_naive * 1000:.1f} ms")
    print(f"ratio naive / report (institution level): {t_naive / t_inst:.0f}x")
    print(f"same figures: {'yes' if same else 'NO'}; report under 1 s: {'yes' if max(t_inst, t_region) < 1 else 'NO'}")
    engine.dispose()


if __name__ == "__main__":
    main()

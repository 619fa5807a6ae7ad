"""One patient's FHIR Observation search (phip.fhir.search, first page of 20) beside the sharing timeline.

The same patient's sharing timeline (phip.share.timeline) is read in the same run, on
PostgreSQL. (Named fhir_search.py: a benchmarks/fhir.py would shadow the fhir.resources
package when run as a script.)

The store is the one benchmarks/share.py loads (its ``load``: N records set-based, every
benchmark patient with 1,000 records over 20 institutions spread over the whole table, 3 in 7
of them lab report items, a consent for every reader). Per patient, warm, the two sides
alternating which goes first:

* fhir: ``phip.fhir.search(…, "Observation", patient=…, _count=20)``: access check, the
  patient's lab rows by the person index with the fields that decide matching, the page's
  payloads, mapping and fhir.resources validation of every resource and the Bundle, one audit
  event committed;
* timeline: ``phip.share.timeline`` as the sharing API calls it;

prints p50/p95 of both and the ratio fhir / timeline, and the EXPLAIN of the search's query
(an index scan on ix_records_person, not a sequential scan). Usage:

    python benchmarks/fhir_search.py [--records 2000000] [--patients 100] [--pg postgresql+psycopg://…/phip_bench_fhir] [--reuse]
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("share_bench", HERE / "share.py")
share_bench = importlib.util.module_from_spec(_spec)  # sets PHIP_DATA_DIR and sys.path as it does for itself
_spec.loader.exec_module(share_bench)  # type: ignore[union-attr]

from phip import fhir, share  # noqa: E402
from phip.accounts import user_info  # noqa: E402
from phip.fhir.mapping import load_mapping  # noqa: E402
from phip.fhir.records import light_query  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_fhir"
BASE = "http://bench/fhir/R4"


def explain(engine: Engine, pid: str) -> str:
    rmap = load_mapping().resources["Observation"]
    q = light_query(rmap, [pid], rmap.datasets)
    sql = str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        return "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))


def measure(engine: Engine, patients: int) -> None:
    who = user_info(engine, "bench_doctor")
    pids = [f"bench{p:027d}" for p in range(patients)]
    totals: list[int] = []

    def read_fhir(pid: str) -> float:
        start = time.perf_counter()
        bundle = fhir.search(engine, who, "Observation", [("patient", pid), ("_count", "20")], BASE)
        totals.append(bundle["total"])
        assert len(bundle["entry"]) == 20, len(bundle["entry"])
        return (time.perf_counter() - start) * 1000

    def read_timeline(pid: str) -> float:
        start = time.perf_counter()
        share.timeline(engine, who, pid)
        return (time.perf_counter() - start) * 1000

    for pid in pids:  # warm: every patient's pages read once by both
        read_timeline(pid)
        read_fhir(pid)
    search, timeline = share_bench.alternate(pids, read_fhir, read_timeline)
    pct = share_bench.pct
    s50, s95, t50, t95 = pct(search, .5), pct(search, .95), pct(timeline, .5), pct(timeline, .95)
    print(f"patients {patients}, records each {share_bench.PER_PATIENT}, Observations each (median) "
          f"{statistics.median(totals):.0f}")
    print(f"fhir search (first page of 20) p50 {s50:7.1f} ms   p95 {s95:7.1f} ms")
    print(f"share timeline                 p50 {t50:7.1f} ms   p95 {t95:7.1f} ms")
    print(f"ratio fhir / timeline          p50 {s50 / t50:7.2f}      p95 {s95 / t95:7.2f}")
    print("EXPLAIN of the search's query:\n" + explain(engine, pids[0]))


def main() -> None:
    share_bench.run(__doc__.split("\n")[0], measure, 2_000_000, 100, DEFAULT_PG)


if __name__ == "__main__":
    main()

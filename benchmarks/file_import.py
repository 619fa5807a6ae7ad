"""Upload-file reading: memory and time of the streaming readers against reading the file whole.

Writes N generated outpatient visits (default 250,000) as a CSV (UTF-8) and as a JSON array,
then, each in its own process (so each peak RSS is its own):

* streamed: ``phip.ingest.readers.read_records`` — what ``phip ingest`` reads through;
* whole (the baseline, measured in the same run): the file read and decoded at once and
  parsed from memory — ``orjson.loads`` for JSON, ``csv.reader`` over the decoded text for CSV,
  as the readers did before they streamed;

and prints, per format, records read, CPU seconds, peak RSS, and the ratios streamed / whole.
Only reading is measured: the pipeline behind it is the same either way
(``benchmarks/ingest_pipeline.py`` measures that).

Usage: python benchmarks/file_import.py [--records 250000]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phip.synth.generator import Generator  # noqa: E402

NOW = datetime(2026, 11, 22, 12, 0)


def write_files(n: int, out: Path) -> tuple[Path, Path]:
    """N visits of ten institutions (renumbered, so every key is distinct) as CSV and JSON."""
    gen = Generator(seed=7)
    orgs = [(f"O{i}", "x") for i in range(10)]
    records: list[dict] = []
    day = date(2026, 10, 1)
    while len(records) < n:
        for _, _, recs in gen.day(orgs, day, visits=1000, admissions=0, datasets=["outpatient_visit"], now=NOW):
            records += recs
        day = day.fromordinal(day.toordinal() + 1)
    records = [{**r, "visit_no": f"V{i:09d}"} for i, r in enumerate(records[:n])]
    fields = sorted({k for r in records[:1000] for k in r})
    csv_path, json_path = out / "visits.csv", out / "visits.json"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    json_path.write_bytes(orjson.dumps(records))
    return csv_path, json_path


def read(mode: str, path: str) -> None:
    """Child process: read the file one way, print records, CPU seconds and peak RSS (KiB)."""
    cpu = time.process_time()
    if mode == "streamed":
        from phip.ingest.readers import read_records
        from phip.standard.catalog import load_standard

        dataset = load_standard().dataset("outpatient_visit")
        n = sum(1 for _ in read_records(Path(path), dataset))
    elif path.endswith(".json"):
        n = len(orjson.loads(Path(path).read_bytes()))
    else:
        n = sum(1 for _ in csv.reader(io.StringIO(Path(path).read_bytes().decode("utf-8")))) - 1
    # VmHWM, not ru_maxrss: after fork and exec, ru_maxrss still counts the parent's pages
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"records": n, "cpu": time.process_time() - cpu, "rss_kib": hwm}))


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        read(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        files = write_files(args.records, Path(tmp))
        print(f"wrote {args.records:,} visits as CSV and JSON ({time.perf_counter() - t0:.0f}s, not timed)")
        for path in files:
            size = path.stat().st_size / 2**20
            whole, streamed = measure("whole", path), measure("streamed", path)
            assert whole["records"] == streamed["records"] == args.records, (whole, streamed)
            print(f"{path.suffix[1:].upper():<5} {size:,.0f} MiB, {args.records:,} records")
            for label, r in (("whole (baseline)", whole), ("streamed", streamed)):
                print(f"  {label:<17} CPU {r['cpu']:6.2f} s   peak RSS {r['rss_kib'] / 1024:7.0f} MiB")
            print(f"  streamed / whole: CPU {streamed['cpu'] / whole['cpu']:.2f}   peak RSS "
                  f"{streamed['rss_kib'] / whole['rss_kib']:.2f}")


if __name__ == "__main__":
    main()

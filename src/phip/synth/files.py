"""Synthetic data files (合成数据文件): some days of one data set of one institution, written as
JSON, CSV or NDJSON for ``phip generate`` and for trying file import."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from phip.standard.catalog import DataSet

from .generator import Generator


def generate_file(out: Path, dataset: DataSet, org: tuple[str, str], *, days: int, visits: int, seed: int,
                  error_rate: float = 0.0, today: date | None = None) -> tuple[int, int]:
    """Write ``days`` days up to yesterday of ``dataset`` for ``org`` (code, name) to ``out``,
    in the format its suffix names (.json, .csv, else NDJSON); returns (records, planted errors)."""
    gen = Generator(seed=seed, error_rate=error_rate)
    today = today or date.today()
    records: list[dict[str, Any]] = []
    for d in range(days, 0, -1):
        for _, _, recs in gen.day([org], today - timedelta(days=d), visits=visits, admissions=max(1, visits // 10),
                                  datasets=[dataset.code]):
            records += recs
    write_records(out, dataset, records)
    return len(records), len(gen.planted)


def write_records(out: Path, dataset: DataSet, records: list[dict[str, Any]]) -> None:
    """Records to a file in the format its suffix names: .json an array, .csv one row each
    (columns in the standard's order), anything else NDJSON."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        out.write_bytes(orjson.dumps(records))
    elif out.suffix == ".csv":
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=[field.name for field in dataset.fields])
            writer.writeheader()
            writer.writerows(records)
    else:
        out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))

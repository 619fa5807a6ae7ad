"""Measure counters (``measure_daily``): kept by the pipeline in the batch's transaction, like
``event_daily``, so report columns such as discharges by discharge day or hypertension visits
come from counters and never from a scan of ``records``.

A corrected record moves its count: the pipeline hands over the old and the new payload of
every updated record, and the delta is (new membership) − (old membership) per day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from phip.datafiles import load_yaml
from phip.standard.catalog import DataSet, load_standard
from phip.store.sql import increment

MEASURES_FILE = Path(__file__).parent / "data" / "measures.yaml"


@dataclass(frozen=True)
class Measure:
    code: str
    label: str
    datasets: tuple[str, ...]
    day_field: str | None
    codes: tuple[tuple[str, tuple[str, ...]], ...]
    values: tuple[tuple[str, tuple[object, ...]], ...] = ()

    def day_of(self, dataset: DataSet, record: Mapping[str, Any] | None) -> date | None:
        """The day this record counts on, or None when it does not count."""
        if record is None:
            return None
        if self.codes:
            for f, prefixes in self.codes:  # a loop, not any(): this runs per record and measure
                v = record.get(f)
                if type(v) is str and v.startswith(prefixes):
                    break
            else:
                return None
        for f, allowed in self.values:
            if record.get(f) not in allowed:
                return None
        value = record.get(self.day_field or dataset.event_time)
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str) and len(value) >= 10:  # a payload read back from JSON
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                return None
        return None


@cache
def load_measures(path: Path = MEASURES_FILE) -> dict[str, Measure]:
    raw = load_yaml(path)["measures"]
    std = load_standard()
    out: dict[str, Measure] = {}
    for code, spec in raw.items():
        for ds in spec["datasets"]:
            names = {f.name for f in std.dataset(ds).fields}
            if spec.get("day_field") and spec["day_field"] not in names:
                raise ValueError(f"measure {code}: {ds} has no field {spec['day_field']}")
            if spec.get("codes") and not names & set(spec["codes"]):
                raise ValueError(f"measure {code}: {ds} has none of the fields {list(spec['codes'])}")
            if set(spec.get("values", {})) - names:
                raise ValueError(f"measure {code}: {ds} lacks the fields {sorted(set(spec['values']) - names)}")
        out[code] = Measure(code, spec["label"], tuple(spec["datasets"]), spec.get("day_field"),
                            tuple((f, tuple(p)) for f, p in spec.get("codes", {}).items()),
                            tuple((f, tuple(v)) for f, v in spec.get("values", {}).items()))
    return out


@cache
def _by_dataset() -> dict[str, tuple[Measure, ...]]:
    index: dict[str, list[Measure]] = {}
    for m in load_measures().values():
        for ds in m.datasets:
            index.setdefault(ds, []).append(m)
    return {k: tuple(v) for k, v in index.items()}


def is_measured(dataset_code: str) -> bool:
    return dataset_code in _by_dataset()


def count_measures(
    conn: Connection, org_code: str, dataset: DataSet,
    new: Iterable[Mapping[str, Any]], changed: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]] = (),
) -> None:
    """Bump ``measure_daily`` for new records and move counts for corrected ones (old, new)."""
    measures = _by_dataset().get(dataset.code)
    if not measures:
        return
    delta: dict[tuple[str, date], int] = {}
    pairs = [(None, r) for r in new]
    pairs += list(changed)
    for m in measures:
        for old, rec in pairs:
            before = None if old is None else m.day_of(dataset, old)  # a new record: nothing before
            after = m.day_of(dataset, rec)
            if before == after:
                continue
            if before is not None:
                delta[(m.code, before)] = delta.get((m.code, before), 0) - 1
            if after is not None:
                delta[(m.code, after)] = delta.get((m.code, after), 0) + 1
    from phip.reports.tables import MeasureDaily

    increment(conn, MeasureDaily.__table__, ("org_code", "measure", "day"), [
        {"org_code": org_code, "measure": code, "day": day, "records": n}
        for (code, day), n in sorted(delta.items()) if n
    ])


class MeasureCounter:
    """The measure counters as a pipeline step (``ingest.writer.RecordCounter``); the
    pipeline is handed one by :func:`phip.runtime.build_pipeline`."""

    def counts(self, dataset_code: str) -> bool:
        return is_measured(dataset_code)

    def count(self, conn: Connection, org_code: str, dataset: DataSet, new: Iterable[Mapping[str, Any]],
              changed: Iterable[tuple[Mapping[str, Any] | None, Mapping[str, Any]]] = ()) -> None:
        count_measures(conn, org_code, dataset, new, changed)


def recount(engine: Engine, code: str) -> int:
    """Rebuild one measure's counters from the stored records, so a measure added later counts
    the history too; one transaction. Run it while nothing is being ingested: a batch committed
    during the scan could be counted twice. Returns the records counted."""
    from sqlalchemy import delete, select

    from phip.reports.tables import MeasureDaily
    from phip.store.models import Record

    measure = load_measures()[code]
    std = load_standard()
    counts: dict[tuple[str, date], int] = {}
    with engine.begin() as conn:
        conn.execute(delete(MeasureDaily).where(MeasureDaily.measure == code))
        rows = conn.execute(select(Record.org_code, Record.dataset, Record.payload)
                            .where(Record.dataset.in_(measure.datasets)).execution_options(yield_per=10_000))
        for org, ds, payload in rows:
            day = measure.day_of(std.dataset(ds), payload)
            if day is not None:
                counts[(org, day)] = counts.get((org, day), 0) + 1
        increment(conn, MeasureDaily.__table__, ("org_code", "measure", "day"), [
            {"org_code": org, "measure": code, "day": day, "records": n} for (org, day), n in sorted(counts.items())])
    return sum(counts.values())

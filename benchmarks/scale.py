"""Does PHIP's cost stay flat as a province's store grows? Today's layout (shared tables, no
partitions) at N stored records (default 10,000,000) against an empty store, on PostgreSQL.

Two databases with the same schema and register (the seed hospitals plus synthetic ones up to
``--hospitals``, registered by a direct insert with valid USCC codes, no API keys):

* big: ``--records`` records loaded by COPY, see "The big store" below;
* empty: a new province: the schema, the register, no person in the EMPI, no record; only what
  makes (b) and (c) compute the same answer as on the big store: the counter rows of the
  reported month and the timeline patient (person, identifiers, records, consent), copied from
  the big store.

Measured, alternating the stores (empty, big, big, empty, empty, big, … ``--rounds`` each):

(a) ingest: 100,000 outpatient visits (``--ingest``) of the generator, 1,000 per batch, through
    ``Pipeline.ingest`` as the push API calls it, batch by batch, each its own transaction;
    one visit in three carries the identity (ID number, health card, patient id, name, birth
    date, sex) of a person the big store already holds, at that person's institution; those
    persons (with identifiers and blocking keys, not their records) are copied into the empty
    store too, so both resolve the same visits to known persons. Records/s and CPU µs per record of this process and of the
    database server (/proc). After each round what it added is deleted (records above the
    round's first id, persons and their identifiers and index keys above the round's first
    time-ordered person id, its batches and findings, its review items) and the counter rows
    from the rounds' first event day on are put back as they were (saved once before the first
    round), then VACUUM ANALYZE of those tables (not timed): every round starts from the same state.
(b) the upload-statistics report (``upload_report``) of one month at institution and city level,
    median of 3 calls per round, and a check that both stores give the same rows;
(c) one patient's sharing timeline (``share.timeline``, a clinician holding a consent) of a
    patient with a few hundred records spread over the institutions, median of 5 reads per round;
(e) the first page (20) of the timeline patient's FHIR Observations (``phip.fhir.search``, as
    ``GET /fhir/R4/Observation?patient=…`` runs it: access, matching rows, mapping, validation,
    audit), median of 5 reads per round;
(d) bytes per stored record: ``records`` with its indexes and TOAST, and all tables, divided by
    the record count, and the database on disk per 10,000,000 records;

then EXPLAIN (ANALYZE, BUFFERS) on the big store of the statements one ingest batch ran to
look up (the heads by natural key, the EMPI identifier and person reads; captured from a
real batch and explained after its round was deleted), and of every statement of the report
and of the timeline. Medians over the rounds are printed, with the ratios big / empty (time
ratios as empty time / big time, so 1.0 is flat and lower is slower, as for the rate).

The big store (built once, ``--reuse`` measures it again): records copied from the generator's
payloads. ``Generator.day`` writes a few days of single hospitals (the mix of data sets of a
day: 200 outpatient visits and 10 stays give about 2,700 records of 70 data sets, a third of
them fee details), each record validated and normalised as the pipeline does; then copy after
copy of those days is written, each copy to one (hospital, day) of the 12 months before the
ingested visits (every hospital, every day, in turn), with per row: the institution, every
date and time shifted to that day, every natural-key value (and so every link between a
visit and its items) suffixed with the copy's number, and the patient replaced by a person of
the store: one person per patient of a copy at the copy's hospital, except one patient in 200
who is one of 100 "frequent" persons seen at many hospitals (the timeline patients). Each row
is stored as the pipeline stores it: canonical JSON, its content hash, its natural key,
version 1, its event time, received that day at 23:30, one batch per (copy, data set).
Loaded with it, consistent with the records: ``persons`` (golden values, matching row and
sources as the resolver writes them for a new person), ``person_identifiers`` (ID number,
health card, insurance number, and the patient id at each institution the person was seen),
``empi_blocks`` (the blocking keys), ``batches`` (one receipt per batch), and the counters
``event_daily``, ``ingest_daily`` and ``measure_daily`` counted from the same rows. Indexes
and constraints are dropped during the COPY and built afterwards, then VACUUM ANALYZE.
Left out compared with a real ingest: ``record_versions`` (every record is at version 1: no
correction was ever sent; ingesting new visits never reads it), ``batch_findings`` and
``rejected_records`` (the generator's clean records get neither), ``empi_reviews``, audit
events, quality findings, the federation outbox and ``reported_figures`` (the report shows
"not reported"). Not measured: concurrency (one writer), a store larger than the machine's
page cache (24 GB of RAM; PostgreSQL's ``shared_buffers`` is the server's, 128 MB here), the
push API's HTTP layer.

Usage:

    python benchmarks/scale.py [--records 10000000] [--rounds 3] [--ingest 100000] [--reuse]
                               [--big postgresql+psycopg://…/phip_bench_scale] [--empty …/phip_bench_scale_empty]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, event, insert, text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("PHIP_DATA_DIR", tempfile.mkdtemp(prefix="phip-bench-scale-"))  # the audit key and anchor
_spec = importlib.util.spec_from_file_location("ingest_bench", HERE / "ingest_pipeline.py")
ingest_bench = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(ingest_bench)  # type: ignore[union-attr]

from phip import fhir, share  # noqa: E402
from phip.accounts import create_user, user_info  # noqa: E402
from phip.empi import golden  # noqa: E402
from phip.ingest import workers  # noqa: E402
from phip.ingest.keys import record_key  # noqa: E402
from phip.orgs.service import list_institutions, seed_institutions  # noqa: E402
from phip.reports.measures import load_measures  # noqa: E402
from phip.reports.period import parse_period  # noqa: E402
from phip.reports.uploads import upload_report  # noqa: E402
from phip.runtime import build_pipeline, tune_gc  # noqa: E402
from phip.share.tables import ShareAuthorization  # noqa: E402
from phip.standard.catalog import DataSet, load_standard  # noqa: E402
from phip.standard.checks import id_check_char  # noqa: E402
from phip.standard.validate import platform_now, validator_for  # noqa: E402
from phip.store import partitions  # noqa: E402
from phip.store.dayranges import pack  # noqa: E402
from phip.store.db import create_database, make_engine, upgrade, wipe  # noqa: E402
from phip.synth.generator import Generator  # noqa: E402

DEFAULT_BIG = "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_scale"
DEFAULT_EMPTY = "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_scale_empty"
FHIR_BASE = "http://bench/fhir/R4"
NOW = ingest_bench.NOW  # receipt time of the ingested visits (2026-11-22 12:00)
FIRST_DAY = date(2025, 10, 1)  # the big store's 12 months: 2025-10-01 … 2026-09-30
DAYS = 365
INGEST_FROM = date(2026, 10, 1)  # the ingested visits' first event day (ingest_pipeline.generate)
REPORT_MONTH = parse_period("2026-06")
TEMPLATE_DAY, TEMPLATE_NOW = date(2026, 6, 1), datetime(2026, 6, 30, 12, 0)
TEMPLATES, VISITS, ADMISSIONS = 6, 200, 10
FREQUENT, FREQUENT_EVERY = 100, 200  # persons seen at many hospitals; one patient slot in 200 is one of them
KNOWN_EVERY = 3  # one ingested visit in three is a person the big store holds
BENCH_USER = "scale_doctor"
PERSON_ROLES = ("patient_id", "id_type", "id_no", "name", "sex", "birth_date", "health_card_no", "insurance_no",
                "phone", "address", "household_address")
COUNTERS = ("event_daily", "ingest_daily", "measure_daily")
#: the big store's months and the ingested visits' (partitions created before the COPY)
STORE_MONTHS = [partitions.add_months(FIRST_DAY, i) for i in range(15)]
#: the key directory of the records a COPY loaded (the pipeline writes it beside each record)
KEY_DIRECTORY = ("INSERT INTO record_keys (record_key, dataset, org_code, record_id, version, content_hash, event_time) "
                 "SELECT r.record_key, r.dataset, r.org_code, r.id, r.version, r.content_hash, r.event_time FROM records r "
                 "WHERE NOT EXISTS (SELECT 1 FROM record_keys k WHERE k.record_id = r.id)")
ROUND_TABLES = ("records", "record_keys", "persons", "person_identifiers", "empi_blocks", "batches", "batch_findings", "empi_reviews",
                *COUNTERS, "institutions")


# -- the register and the people --------------------------------------------------------------


def new_province(engine: Engine, hospitals: int) -> list[tuple[str, str]]:
    """A fresh schema, the seed register topped up to ``hospitals`` hospitals and a clinician
    account; returns the hospitals (code, name)."""
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)
    orgs = ingest_bench.top_up_hospitals(engine, hospitals)
    create_user(engine, BENCH_USER, "scale-password-1", "clinician", org_code=orgs[0][0], department="内科")
    return orgs


def person_id(n: int) -> str:
    """Loaded persons' ids sort below every time-ordered id the pipeline hands out."""
    return f"{n:032d}"


def person_values(n: int) -> dict[str, Any]:
    """The identity of loaded person ``n`` by role of ``DataSet.person`` (a valid, unique ID
    number whose birth date and sex digit agree)."""
    born = date(1930, 1, 1) + timedelta(days=n % 33_000)
    seq = (n // 33_000) % 1000
    body = f"320102{born:%Y%m%d}{seq:03d}"
    names = _NAMES
    return {"patient_id": f"BP{n:09d}", "id_type": "01", "id_no": body + id_check_char(body),
            "name": names[n % len(names)], "sex": "1" if seq % 2 else "2", "birth_date": born,
            "health_card_no": f"HC9{n:014d}", "insurance_no": f"320102{n:010d}", "phone": f"139{n:08d}",
            "address": f"江苏省南京市玄武区中山路{n % 500 + 1}号", "household_address": f"江苏省南京市玄武区中山路{n % 500 + 1}号"}


_NAMES = Generator(seed=3)._names  # the generator's own name pool


def person_row(n: int, org_code: str, at: datetime) -> dict[str, Any]:
    """The ``persons`` row the resolver writes for a new person (``EmpiResolver._create``) and
    its blocking keys."""
    v = person_values(n)
    demo = {"name": v["name"], "sex": v["sex"], "birth_date": v["birth_date"], "id_no": v["id_no"],
            "phone": v["phone"], "address": v["address"]}
    values, sources, _ = golden.survive({}, {}, demo, golden.source_of(org_code, "outpatient_visit", at))
    columns, keys = golden.person_row(values)
    return {"id": person_id(n), "created_at": at, "updated_at": at, "status": "active", "merged_into": None,
            **columns, "sources": sources, "_keys": keys}


# -- the big store -----------------------------------------------------------------------------


@dataclass(slots=True)
class Template:
    """One normalised record of a generated day and what a copy changes in it."""

    record: dict[str, Any]
    shifted: tuple[str, ...]  # date and time fields
    tagged: tuple[str, ...]  # natural-key (and link) fields
    slot: int | None  # the day's patient it belongs to


def template_days(orgs: list[tuple[str, str]]) -> list[list[tuple[DataSet, list[Template]]]]:
    """Days of the generator (each of one hospital), validated and normalised as ingest does."""
    std = load_standard()
    key_fields = {f for ds in std.datasets for f in ds.natural_key}
    days = []
    for t in range(TEMPLATES):
        patients: dict[str, int] = {}
        day: list[tuple[DataSet, list[Template]]] = []
        generated = Generator(seed=1000 + t).day([orgs[t]], TEMPLATE_DAY, visits=VISITS, admissions=ADMISSIONS,
                                                 now=TEMPLATE_NOW)
        for _, code, raws in generated:
            ds = std.dataset(code)
            validator = validator_for(std, ds)
            person_fields = set(ds.person.values()) if ds.person else set()
            rows = []
            for raw in raws:
                rec = validator.validate(raw, TEMPLATE_NOW).record
                if rec is None:
                    continue
                who = rec.get(ds.person.get("id_no") or ds.person.get("patient_id")) if ds.person else None
                slot = patients.setdefault(who, len(patients)) if who else None
                rows.append(Template(
                    rec, tuple(f for f, v in rec.items() if isinstance(v, date) and f not in person_fields),
                    tuple(f for f, v in rec.items() if f in key_fields and isinstance(v, str) and f not in person_fields),
                    slot))
            day.append((ds, rows))
        days.append(day)
    return days


@dataclass
class Loaded:
    """What the record copies need loaded beside them."""

    persons: dict[int, tuple[str, datetime]]  # person -> (first institution, first seen)
    seen_at: set[tuple[int, str]]  # (person, institution): its patient id there
    event_daily: Counter
    ingest_daily: Counter
    measure_daily: Counter
    batches: list[tuple]


def copy_rows(conn: Connection, table: str, columns: Iterable[str], rows: Iterable[tuple]) -> int:
    """COPY rows (tuples in column order) into ``table``; returns how many."""
    n = 0
    cur = conn.connection.dbapi_connection.cursor()
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)
            n += 1
    return n


RECORD_COLUMNS = ("org_code", "dataset", "record_key", "version", "content_hash", "person_id", "event_time",
                  "received_at", "batch_id", "payload")


def _escape(value: str) -> str:
    """COPY text format: a backslash doubled (the JSON and the keys hold no tab or newline)."""
    return value.replace("\\", "\\\\") if "\\" in value else value


def record_lines(n_records: int, days: list[list[tuple[DataSet, list[Template]]]], orgs: list[tuple[str, str]],
                 loaded: Loaded) -> Iterator[str]:
    """COPY lines of ``n_records`` records: copy after copy of the template days, each copy at
    one (hospital, day) of the 12 months; counts what the pipeline would count on the way."""
    measures: dict[str, list] = {}
    for m in load_measures().values():
        for code in m.datasets:
            measures.setdefault(code, []).append(m)
    written, copy_no, next_person = 0, 0, FREQUENT
    while written < n_records:
        org, org_name = orgs[copy_no % len(orgs)]
        day = FIRST_DAY + timedelta(days=(copy_no // len(orgs) * 37 + copy_no) % DAYS)
        delta = day - TEMPLATE_DAY
        tag = f".{copy_no:x}"
        received = datetime.combine(day, datetime.min.time()) + timedelta(hours=23, minutes=30)
        received_text = received.isoformat(sep=" ")
        persons: dict[int, tuple[int, bool]] = {}  # template slot -> (person, first time at this hospital)
        for ds, rows in days[copy_no % len(days)]:
            batch = uuid.uuid4().hex
            event_days: set[date] = set()
            roles = tuple((role, ds.person[role]) for role in PERSON_ROLES if ds.person and role in ds.person)
            keyed_by_person = bool(ds.person and set(ds.natural_key) & set(ds.person.values()))
            count = 0
            for t in rows:
                if written >= n_records:
                    break
                rec = dict(t.record)
                for f in t.shifted:
                    rec[f] = rec[f] + delta
                for f in t.tagged:
                    rec[f] = rec[f] + tag
                if "org_code" in rec:
                    rec["org_code"] = org
                if "org_name" in rec:
                    rec["org_name"] = org_name
                pid = "\\N"
                if t.slot is not None:
                    n, first_here = persons.get(t.slot, (None, False))
                    if n is None:
                        if (copy_no * 7919 + t.slot * 104729) % FREQUENT_EVERY == 0:
                            n = (copy_no * 31 + t.slot) % FREQUENT
                        else:
                            n, next_person = next_person, next_person + 1
                        first_here = (n, org) not in loaded.seen_at
                        persons[t.slot] = (n, first_here)
                        loaded.persons.setdefault(n, (org, received))
                        loaded.seen_at.add((n, org))
                    if keyed_by_person and not first_here:
                        continue  # a frequent person registered here before: no second patient record
                    values = person_values(n)
                    for role, field in roles:
                        rec[field] = values[role]
                    pid = person_id(n)
                payload = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
                event = rec.get(ds.event_time)
                if event is not None and not isinstance(event, datetime):
                    event = datetime(event.year, event.month, event.day)
                if event is not None:
                    event_days.add(event.date())
                    loaded.event_daily[(org, ds.code, event.date())] += 1
                for m in measures.get(ds.code, ()):
                    if (counted := m.day_of(ds, rec)) is not None:
                        loaded.measure_daily[(org, m.code, counted)] += 1
                yield (f"{org}\t{ds.code}\t{_escape(record_key(ds, rec))}\t1\t"
                       f"{hashlib.blake2b(payload, digest_size=16).hexdigest()}\t{pid}\t"
                       f"{event.isoformat(sep=' ') if event else chr(92) + 'N'}\t{received_text}\t{batch}\t"
                       f"{_escape(payload.decode())}\n")
                written += 1
                count += 1
            if count:
                loaded.ingest_daily[(org, ds.code, day)] += count
                loaded.batches.append((batch, org, ds.code, "bench", received, count, count,
                                       orjson.dumps(pack(event_days)).decode()))
        copy_no += 1


def copy_records(conn: Connection, lines: Iterator[str], report: Callable[[int], None]) -> int:
    """COPY the record lines in blocks of about a megabyte."""
    cur = conn.connection.dbapi_connection.cursor()
    n = 0
    with cur.copy(f"COPY records ({', '.join(RECORD_COLUMNS)}) FROM STDIN") as cp:
        block: list[str] = []
        for line in lines:
            block.append(line)
            n += 1
            if len(block) == 1000:
                cp.write("".join(block))
                block.clear()
                if n % 500_000 == 0:
                    report(n)
        if block:
            cp.write("".join(block))
    return n


def load_big(engine: Engine, orgs: list[tuple[str, str]], n_records: int) -> None:
    """The big store (see the module's docstring), indexes built after the COPY."""
    started = time.perf_counter()

    def progress(n: int) -> None:
        print(f"  {n:,} records ({time.perf_counter() - started:.0f} s)", flush=True)

    days = template_days(orgs)
    print(f"  templates: {sum(len(r) for d in days for _, r in d):,} records of {TEMPLATES} generated days", flush=True)
    loaded = Loaded({}, set(), Counter(), Counter(), Counter(), [])
    grown = ("records", "record_keys", "persons", "person_identifiers", "empi_blocks", "batches", *COUNTERS)
    with engine.begin() as conn:
        partitions.ensure_months(conn, STORE_MONTHS)
        rebuild = drop_indexes(conn, grown)
        stored = copy_records(conn, record_lines(n_records, days, orgs, loaded), progress)
        conn.execute(text(KEY_DIRECTORY))
    print(f"  records copied: {stored:,} ({time.perf_counter() - started:.0f} s)", flush=True)
    with engine.begin() as conn:
        persons = [person_row(n, org, at) for n, (org, at) in sorted(loaded.persons.items())]
        copy_rows(conn, "persons", ("id", "created_at", "updated_at", "status", "name", "sex", "birth_date", "id_no",
                                    "phone", "address", "match", "sources"),
                  ((p["id"], p["created_at"], p["updated_at"], "active", p["name"], p["sex"], p["birth_date"],
                    p["id_no"], p["phone"], p["address"], orjson.dumps(p["match"]).decode(),
                    orjson.dumps(p["sources"]).decode()) for p in persons))
        copy_rows(conn, "empi_blocks", ("key", "person_id"),
                  ((k, p["id"]) for p in persons for k in dict.fromkeys(p["_keys"])))
        copy_rows(conn, "person_identifiers", ("value", "kind", "scope", "person_id", "created_at"),
                  identifier_rows(loaded))
        copy_rows(conn, "batches", ("id", "org_code", "dataset", "source", "received_at", "total", "accepted",
                                    "updated", "unchanged", "rejected", "warnings", "event_days"),
                  ((b, o, d, s, r, t, a, 0, 0, 0, 0, e) for b, o, d, s, r, t, a, e in loaded.batches))
        copy_rows(conn, "event_daily", ("org_code", "dataset", "day", "records"),
                  ((*k, n) for k, n in loaded.event_daily.items()))
        copy_rows(conn, "measure_daily", ("org_code", "measure", "day", "records"),
                  ((*k, n) for k, n in loaded.measure_daily.items()))
        copy_rows(conn, "ingest_daily", ("org_code", "dataset", "day", "received", "accepted", "updated", "unchanged",
                                         "rejected", "warnings", "rejected_new"),
                  ((*k, n, n, 0, 0, 0, 0, 0) for k, n in loaded.ingest_daily.items()))
        conn.execute(text("UPDATE institutions SET first_upload_at = :at"), {"at": datetime.combine(FIRST_DAY, datetime.min.time())})
        print(f"  persons {len(persons):,}, batches {len(loaded.batches):,}, counters copied "
              f"({time.perf_counter() - started:.0f} s); building indexes …", flush=True)
        conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
        for statement in rebuild:
            conn.execute(text(statement))
    print(f"  indexes built ({time.perf_counter() - started:.0f} s)", flush=True)
    grant_consents(engine, [person_id(n) for n in range(FREQUENT)])
    vacuum(engine, analyze=True)
    print(f"loaded {stored:,} records in {time.perf_counter() - started:.0f} s", flush=True)


def identifier_rows(loaded: Loaded) -> Iterator[tuple]:
    """The identifiers the resolver registers for each person: the province-wide ones once, the
    patient id at every institution the person was seen."""
    for n, (_, at) in sorted(loaded.persons.items()):
        v = person_values(n)
        for kind, value in (("id_no", v["id_no"]), ("health_card", v["health_card_no"]), ("insurance", v["insurance_no"])):
            yield value, kind, "", person_id(n), at
    for n, org in sorted(loaded.seen_at):
        yield person_values(n)["patient_id"], "patient_id", org, person_id(n), loaded.persons[n][1]


def drop_indexes(conn: Connection, tables: Iterable[str]) -> list[str]:
    """Drop every index and constraint of ``tables`` (foreign keys first); returns the
    statements that build them again, in an order that works."""
    names = list(tables)
    constraints = conn.execute(text("""
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
          FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY(:t) AND c.contype IN ('p', 'u', 'f')
         ORDER BY c.contype = 'f' DESC"""), {"t": names}).all()
    owned = {name for _, name, _, _ in constraints}
    indexes = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t)"),
                           {"t": names}).all()
    for table, name, _, _ in constraints:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        if name not in owned:
            conn.execute(text(f'DROP INDEX "{name}"'))
    keys = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, kind in constraints if kind != "f"]
    foreign = [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d, kind in constraints if kind == "f"]
    # a partitioned table's own index is listed `ON ONLY` it: built again on every partition
    return keys + [d.replace(" ON ONLY ", " ON ") for n, d in indexes if n not in owned] + foreign


def grant_consents(engine: Engine, pids: list[str]) -> None:
    """A consent of each of these persons for every institution (the timeline reads under it)."""
    now = platform_now()
    with engine.begin() as conn:
        conn.execute(insert(ShareAuthorization), [
            {"person_id": pid, "kind": "consent", "granted_by": "bench", "created_at": now - timedelta(days=1),
             "expires_at": now + timedelta(days=3650)} for pid in pids])


def vacuum(engine: Engine, tables: Iterable[str] = (), analyze: bool = False) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        verb = "VACUUM ANALYZE" if analyze else "VACUUM"
        for table in tables or [""]:
            conn.execute(text(f"{verb} {table}"))


def timeline_patient(big: Engine) -> tuple[str, int]:
    """The frequent person with the median number of records, and that number."""
    with big.connect() as conn:
        counts = conn.execute(text("SELECT person_id, count(*) FROM records WHERE person_id < :f GROUP BY 1 ORDER BY 2, 1"),
                              {"f": person_id(FREQUENT)}).all()
    return tuple(counts[len(counts) // 2])  # type: ignore[return-value]


# -- the empty store ---------------------------------------------------------------------------


def prepare_empty(big: Engine, empty: Engine, hospitals: int, patient: str) -> None:
    """A new province, plus the reported month's counters and the timeline patient, copied
    from the big store so that both compute the same report and timeline."""
    new_province(empty, hospitals)
    with empty.begin() as conn:
        partitions.ensure_months(conn, STORE_MONTHS)
    copies = [
        ("persons", "id = :p"), ("person_identifiers", "person_id = :p"), ("empi_blocks", "person_id = :p"),
        ("records", "person_id = :p"),
        *[(c, "day BETWEEN :s AND :e") for c in COUNTERS],
    ]
    params = {"p": patient, "s": REPORT_MONTH.start, "e": REPORT_MONTH.end}
    with big.connect() as src, empty.begin() as dst:
        for table, where in copies:
            result = src.execute(text(f"SELECT * FROM {table} WHERE {where}"), params)
            columns = [c for c in result.keys() if c != "id" or table != "records"]
            rows = [tuple(orjson.dumps(v).decode() if isinstance(v, dict | list) else v
                          for k, v in zip(result.keys(), row, strict=True) if k in columns) for row in result]
            copy_rows(dst, table, columns, rows)
        dst.execute(text(KEY_DIRECTORY))
    grant_consents(empty, [patient])
    vacuum(empty, analyze=True)


# -- measuring ---------------------------------------------------------------------------------


def ingest_batches(big: Engine, orgs: list[tuple[str, str]], n: int) -> tuple[list[tuple[str, list[dict]]], set[int]]:
    """The visits every round ingests: the generator's (``ingest_pipeline.generate``), one in
    three carrying the identity of a person the big store holds at that institution; and
    those persons' numbers (:func:`share_known` gives them to the empty store too)."""
    batches = ingest_bench.generate(n, orgs)
    with big.connect() as conn:
        known: dict[str, list[int]] = {}
        for org, value in conn.execute(text(
                "SELECT scope, value FROM person_identifiers WHERE kind = 'patient_id' AND value LIKE 'BP%' "
                f"AND person_id >= '{person_id(FREQUENT)}' ORDER BY person_id LIMIT 200000")):
            known.setdefault(org, []).append(int(value[2:]))
    ds = load_standard().dataset("outpatient_visit")
    used: set[int] = set()
    for org, records in batches:
        people = known.get(org)
        for i, rec in enumerate(records):
            if people and i % KNOWN_EVERY == 0:
                used.add(people[(i // KNOWN_EVERY) % len(people)])
                values = person_values(people[(i // KNOWN_EVERY) % len(people)])
                for role, field in ds.person.items():
                    value = values[role]
                    rec[field] = value.isoformat() if isinstance(value, date) else value
    return batches, used


def share_known(big: Engine, empty: Engine, numbers: set[int]) -> None:
    """The persons the ingested visits name, with their identifiers and blocking keys, into
    the empty store as well: both stores then find the same third of the visits' persons, and
    the ratio compares stores, not how many persons each must create (without it the big
    store ran ahead, 1.35 at 3M, for that reason)."""
    ids = sorted(person_id(n) for n in numbers)
    with big.connect() as src, empty.begin() as dst:
        for table, key in (("empi_blocks", "person_id"), ("person_identifiers", "person_id"), ("persons", "id")):
            dst.execute(text(f"DELETE FROM {table} WHERE {key} = ANY(:ids)"), {"ids": ids})
        for table, key in (("persons", "id"), ("person_identifiers", "person_id"), ("empi_blocks", "person_id")):
            result = src.execute(text(f"SELECT * FROM {table} WHERE {key} = ANY(:ids)"), {"ids": ids})
            rows = [tuple(orjson.dumps(v).decode() if isinstance(v, dict | list) else v for v in row) for row in result]
            copy_rows(dst, table, list(result.keys()), rows)
    vacuum(empty, ("persons", "person_identifiers", "empi_blocks"), analyze=True)


@dataclass
class Marks:
    """Where a round starts: what it adds lies above these."""

    record_id: int
    person_id: str
    at: datetime


def round_marks(engine: Engine) -> Marks:
    with engine.connect() as conn:
        top = conn.execute(text("SELECT coalesce(max(id), 0) FROM records")).scalar_one()
    return Marks(top, f"{time.time_ns() // 1_000_000:012x}" + "0" * 20, NOW)


def save_counters(engine: Engine) -> dict[str, list[tuple]]:
    """The counter rows a round can touch (its event days and receipt day), as they are."""
    with engine.connect() as conn:
        return {c: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {c} WHERE day >= :d"), {"d": INGEST_FROM})]
                for c in COUNTERS}


def undo_round(engine: Engine, marks: Marks, counters: dict[str, list[tuple]]) -> None:
    """Delete what a round added and put its counters back, then VACUUM (not timed)."""
    with engine.begin() as conn:
        p = {"rid": marks.record_id, "pid": marks.person_id, "at": marks.at, "d": INGEST_FROM}
        for statement in (
            "DELETE FROM records WHERE id > :rid",
            "DELETE FROM record_keys WHERE record_id > :rid",
            "DELETE FROM empi_blocks WHERE person_id >= :pid",
            "DELETE FROM person_identifiers WHERE person_id >= :pid",
            "DELETE FROM empi_reviews WHERE created_at = :at",
            "DELETE FROM persons WHERE id >= :pid",
            "DELETE FROM batch_findings WHERE created_at = :at",
            "DELETE FROM batches WHERE received_at = :at",
            "UPDATE institutions SET first_upload_at = NULL WHERE first_upload_at = :at",
            *[f"DELETE FROM {c} WHERE day >= :d" for c in COUNTERS],
        ):
            conn.execute(text(statement), p)
        for table, rows in counters.items():
            if rows:
                copy_rows(conn, table, list(conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys()), rows)
    # with statistics: this server runs without autovacuum, and a store analysed while it was
    # empty plans its lookups as if it still were (the pipeline plans by keys regardless)
    vacuum(engine, ROUND_TABLES, analyze=True)


def ingest_round(engine: Engine, batches: list[tuple[str, list[dict]]],
                 capture: list[tuple[str, Any]] | None = None) -> tuple[float, float, float]:
    """(records/s, this process's CPU µs/record, the server's CPU µs/record) of one round; the
    SELECT statements of its first batch go to ``capture`` when given."""
    pipeline = build_pipeline(engine)
    for org, _ in batches:
        pipeline.institution_name(org)
    n = 0
    cpu0, server0 = time.process_time(), ingest_bench.server_cpu(engine)
    t0 = time.perf_counter()
    for i, (org, records) in enumerate(batches):
        if capture is not None and i == 0:
            with captured(engine, capture):
                n += pipeline.ingest(org, "outpatient_visit", records, source="bench", now=NOW).accepted
            continue
        n += pipeline.ingest(org, "outpatient_visit", records, source="bench", now=NOW).accepted
    elapsed = time.perf_counter() - t0
    assert n == sum(len(b) for _, b in batches), f"every record must be accepted ({n})"
    return n / elapsed, (time.process_time() - cpu0) / n * 1e6, (ingest_bench.server_cpu(engine) - server0) / n * 1e6


class captured:
    """Collect the SELECT statements ``engine`` runs (text and parameters) while inside."""

    def __init__(self, engine: Engine, into: list[tuple[str, Any]]):
        self.engine, self.into = engine, into

    def _listen(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ARG002
        if statement.lstrip().upper().startswith("SELECT") and "pg_advisory" not in statement:
            self.into.append((statement, parameters))

    def __enter__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._listen)

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._listen)


def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def report_figures(report: Any) -> list[tuple]:
    return [(r.key, r.volume, r.days, r.outpatient, r.discharges, r.lab_exam, r.lab_items) for r in report.rows]


def explain(engine: Engine, title: str, statements: list[tuple[str, Any]]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement, in a transaction rolled back."""
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) on the big store: {title}")
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars().all()
            print("  -- " + " ".join(statement.split())[:160])
            for line in plan:
                print("     " + line)
        conn.rollback()


def sizes(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM records")).scalar_one()
        # records is partitioned by month: its sizes are the sums over its partitions
        tree = "SELECT relid FROM pg_partition_tree('records') WHERE isleaf"
        records = conn.execute(text(f"SELECT sum(pg_total_relation_size(relid))::bigint FROM ({tree}) t")).scalar_one()
        heap = conn.execute(text(f"SELECT sum(pg_table_size(relid))::bigint FROM ({tree}) t")).scalar_one()
        directory = conn.execute(text("SELECT pg_total_relation_size('record_keys')")).scalar_one()
        tables = conn.execute(text("SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c JOIN pg_namespace s "
                                   "ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind = 'r'")).scalar_one()
        database = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        indexes = conn.execute(text(
            "SELECT regexp_replace(indexrelname, '^records_(p[0-9]{6}|default)_', ''), sum(pg_relation_size(indexrelid)) "
            f"FROM pg_stat_user_indexes WHERE relid IN ({tree}) GROUP BY 1 ORDER BY 1")).all()
    print(f"\n(d) bytes per stored record ({n:,} records)")
    print(f"  records (heap + TOAST):            {heap / n:7.0f} B/record")
    for name, size in indexes:
        print(f"    index {name:<28} {size / n:7.0f} B/record")
    print(f"  records with its indexes:          {records / n:7.0f} B/record   {records / n * 1e7 / 2**30:6.1f} GiB per 10M")
    print(f"  key directory record_keys:         {directory / n:7.0f} B/record")
    print(f"  all tables with their indexes:     {tables / n:7.0f} B/record   {tables / n * 1e7 / 2**30:6.1f} GiB per 10M")
    print(f"  database on disk:                  {database / n:7.0f} B/record   {database / n * 1e7 / 2**30:6.1f} GiB per 10M")
    return {"records": records / n, "tables": tables / n}


def measure(big: Engine, empty: Engine, orgs: list[tuple[str, str]], rounds: int, n_ingest: int) -> None:
    tune_gc()
    workers.warm()
    with big.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM records")).scalar_one()
    patient, own = timeline_patient(big)
    print(f"big store: {stored:,} records; timeline patient {patient} with {own} records")
    batches, known = ingest_batches(big, orgs, n_ingest)
    share_known(big, empty, known)
    print(f"ingest set: {sum(len(b) for _, b in batches):,} outpatient visits in {len(batches)} batches, "
          f"{len(known):,} of their persons known to both stores")
    stores = {"empty": empty, "big": big}
    saved = {name: save_counters(engine) for name, engine in stores.items()}
    who = user_info(big, BENCH_USER)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    figures: dict[str, Any] = {}
    ingest_selects: list[tuple[str, Any]] = []
    order = [("empty", "big", "big", "empty")[i % 4] for i in range(2 * rounds)]
    for i, name in enumerate(order):
        engine = stores[name]
        marks = round_marks(engine)
        capture = ingest_selects if name == "big" and not ingest_selects else None
        rate, own_cpu, server_cpu = ingest_round(engine, batches, capture)
        undo_round(engine, marks, saved[name])
        upload_report(engine, REPORT_MONTH, "institution")  # warm the connection and the pages
        inst, report = median_ms(lambda: upload_report(engine, REPORT_MONTH, "institution"), 3)
        city, _ = median_ms(lambda: upload_report(engine, REPORT_MONTH, "city"), 3)
        share.timeline(engine, who, patient)
        tl, shown = median_ms(lambda: share.timeline(engine, who, patient), 5)
        observations = [("patient", patient), ("_count", "20")]
        fhir.search(engine, who, "Observation", observations, FHIR_BASE)
        fh, bundle = median_ms(lambda: fhir.search(engine, who, "Observation", observations, FHIR_BASE), 5)
        figures[name] = (report_figures(report), len(shown["documents"]), bundle.get("total"))
        for key, value in (("ingest", rate), ("cpu_own", own_cpu), ("cpu_server", server_cpu), ("report_institution", inst),
                           ("report_city", city), ("timeline", tl), ("fhir", fh)):
            results[name].setdefault(key, []).append(value)
        print(f"round {i + 1} {name:<5}: ingest {rate:7,.0f} rec/s (CPU µs/record: this process {own_cpu:.0f}, "
              f"server {server_cpu:.0f}); report institution {inst:6.1f} ms, city {city:6.1f} ms; "
              f"timeline {tl:6.1f} ms ({len(shown['documents'])} documents); FHIR Observations {fh:6.1f} ms", flush=True)
    same = figures["big"] == figures["empty"]
    print(f"\nmedians over {rounds} rounds each (big / empty; for times empty / big: 1.0 is flat, lower is slower)")
    for key, label, unit, better in (
        ("ingest", "(a) ingest", "rec/s", "higher"), ("cpu_own", "    CPU this process", "µs/rec", "lower"),
        ("cpu_server", "    CPU server", "µs/rec", "lower"), ("report_institution", "(b) report, institution", "ms", "lower"),
        ("report_city", "    report, city", "ms", "lower"), ("timeline", "(c) timeline", "ms", "lower"),
        ("fhir", "(e) FHIR Observation page", "ms", "lower"),
    ):
        b, e = statistics.median(results["big"][key]), statistics.median(results["empty"][key])
        ratio = b / e if better == "higher" else e / b
        print(f"  {label:<26} big {b:9,.1f}  empty {e:9,.1f} {unit:<7} ratio {ratio:5.2f}   "
              f"(big rounds {', '.join(f'{v:,.1f}' for v in results['big'][key])})")
    print(f"  same report figures and timeline on both stores: {'yes' if same else 'NO'}")
    sizes(big)
    explain(big, "the lookups of one ingest batch (heads by natural key, EMPI)", ingest_selects)
    report_selects: list[tuple[str, Any]] = []
    with captured(big, report_selects):
        upload_report(big, REPORT_MONTH, "institution")
    explain(big, f"the month report ({REPORT_MONTH})", report_selects)
    timeline_selects: list[tuple[str, Any]] = []
    with captured(big, timeline_selects):
        share.timeline(big, who, patient)
    explain(big, "the timeline", timeline_selects)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--hospitals", type=int, default=220)
    ap.add_argument("--ingest", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3, help="ingest rounds per store, alternated")
    ap.add_argument("--big", default=DEFAULT_BIG)
    ap.add_argument("--empty", default=DEFAULT_EMPTY)
    ap.add_argument("--reuse", action="store_true", help="measure the stores built by an earlier run")
    args = ap.parse_args()
    for url in (args.big, args.empty):
        create_database(url)
    big, empty = make_engine(args.big), make_engine(args.empty)
    for engine in (big, empty):  # a store built by an earlier version of the schema: brought up to date
        upgrade(engine)
    if not args.reuse:
        print(f"building the big store: {args.records:,} records …", flush=True)
        orgs = new_province(big, args.hospitals)
        load_big(big, orgs, args.records)
        prepare_empty(big, empty, args.hospitals, timeline_patient(big)[0])
    orgs = [(r.code, r.name) for r in list_institutions(big) if r.kind == "hospital"]
    measure(big, empty, orgs, args.rounds, args.ingest)


if __name__ == "__main__":
    main()

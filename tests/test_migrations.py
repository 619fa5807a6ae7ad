"""Migrations build the schema the models declare, and upgrade a store that holds data.

PostgreSQL only where it matters: the key columns' ``COLLATE "C"`` (migration 0007) exists
there alone."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, select, text

from phip.runtime import build_pipeline
from phip.store.db import alembic_config, create_database, make_engine, upgrade, wipe
from phip.schema import Base
from phip.store.models import PersonIdentifier, Record, RecordKey, RejectedRecord

from .conftest import PG_URL, seed_before_0012

NOW = datetime(2026, 11, 22, 12, 0, 0)


def _collations(engine: Engine) -> dict[tuple[str, str], str | None]:
    with engine.connect() as conn:
        return {(t, c): coll for t, c, coll in conn.execute(text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = 'character varying'"))}


def test_migrated_columns_have_the_collation_the_models_declare(store_engine: Engine):
    if store_engine.dialect.name != "postgresql":
        pytest.skip("collations of key columns are declared for PostgreSQL only")
    # a partition's columns are its table's (records_p202611 …): compare the tables themselves
    stored = {k: v for k, v in _collations(store_engine).items() if k[0] in Base.metadata.tables}
    declared = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if (table.name, column.name) in stored:
                impl = column.type.dialect_impl(store_engine.dialect)
                declared[(table.name, column.name)] = getattr(impl, "collation", None)
    assert {k: v for k, v in declared.items() if v} == {k: v for k, v in stored.items() if v}
    assert declared[("records", "record_key")] == "C" and declared[("persons", "name")] is None


@pytest.fixture()
def pg_scratch() -> Engine:
    url = PG_URL + "_migrations"
    try:
        create_database(url)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    engine = make_engine(url)
    wipe(engine)
    yield engine
    wipe(engine)
    engine.dispose()


def test_key_collation_upgrade_keeps_a_stores_data_and_its_lookups(pg_scratch: Engine, orgs, tmp_path):
    """A store at 0006 with persons, identifiers and records goes to head: every row is kept,
    the foreign key still holds, and lookups by key find the same rows through their indexes."""
    cfg = alembic_config(pg_scratch)
    command.upgrade(cfg, "0006_empi_chain")
    seed_before_0012(pg_scratch, tmp_path)
    from phip.synth.generator import Generator

    records = next(recs for _, ds, recs in Generator(seed=11).day(orgs[:1], NOW.date(), visits=40, admissions=1, now=NOW,
                                                                  datasets=["outpatient_visit"]))
    # Today's pipeline also writes what later migrations add (0008: rejected_records and
    # ingest_daily.rejected_new; 0009: batches.event_days; 0016: record_keys): lend them to the store for this
    # write, and take them back.
    with pg_scratch.begin() as conn:
        RejectedRecord.__table__.create(conn)
        RecordKey.__table__.create(conn)  # 0016: the key directory
        conn.execute(text("ALTER TABLE ingest_daily ADD COLUMN rejected_new bigint NOT NULL DEFAULT 0"))
        conn.execute(text("ALTER TABLE batches ADD COLUMN event_days JSON"))
    receipt = build_pipeline(pg_scratch).ingest(orgs[0][0], "outpatient_visit", records, now=NOW)
    assert receipt.accepted == len(records)
    with pg_scratch.begin() as conn:
        RejectedRecord.__table__.drop(conn)
        RecordKey.__table__.drop(conn)
        conn.execute(text("ALTER TABLE ingest_daily DROP COLUMN rejected_new"))
        conn.execute(text("ALTER TABLE batches DROP COLUMN event_days"))
    with pg_scratch.connect() as conn:
        before = conn.execute(select(Record.record_key, Record.person_id).order_by(Record.record_key)).all()
        identifiers = conn.execute(select(PersonIdentifier.value, PersonIdentifier.person_id).order_by(PersonIdentifier.value)).all()
    upgrade(pg_scratch)
    assert _collations(pg_scratch)[("records", "record_key")] == "C"
    with pg_scratch.connect() as conn:
        assert conn.execute(select(Record.record_key, Record.person_id).order_by(Record.record_key)).all() == before
        assert conn.execute(select(PersonIdentifier.value, PersonIdentifier.person_id)
                            .order_by(PersonIdentifier.value)).all() == identifiers
        fks = inspect(conn).get_foreign_keys("person_identifiers")
        assert [fk["referred_table"] for fk in fks] == ["persons"]
        conn.execute(text("SET enable_seqscan = off"))  # a few rows: show the index can serve, not that it pays
        plan = "\n".join(conn.execute(text("EXPLAIN SELECT id FROM records WHERE record_key = :k"), {"k": before[0][0]}).scalars())
        assert "record_key_dataset_org_code" in plan  # a month's natural-key index (0016 partitions records)
        conn.execute(text("RESET enable_seqscan"))
    # the same batch again changes nothing: keys stored before the upgrade are found after it
    again = build_pipeline(pg_scratch).ingest(orgs[0][0], "outpatient_visit", records, now=NOW)
    assert (again.accepted, again.unchanged) == (0, len(records))
    command.downgrade(alembic_config(pg_scratch), "0006_empi_chain")
    assert _collations(pg_scratch)[("records", "record_key")] is None

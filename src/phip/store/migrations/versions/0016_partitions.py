"""The key directory ``record_keys`` (both back ends) and, on PostgreSQL, monthly partitions of
the tables that grow (``phip.store.partitions``): every row is copied into the partitioned
table in this migration's transaction, so a failure leaves the store as it was.

Months created: those holding rows of each table, and six before to three after today's
(the worker keeps creating them ahead); anything else lands in the DEFAULT partition.

Revision ID: 0016_partitions
Revises: 0015_regional_accounts
Create Date: 2026-12-07
"""
from datetime import date

import sqlalchemy as sa
from alembic import op

from phip.store import partitions

revision = "0016_partitions"
down_revision = "0015_regional_accounts"
branch_labels = None
depends_on = None


def _key(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


#: the primary keys before partitioning, for the downgrade (records kept its natural key unique)
_BEFORE = {
    "records": "id", "record_versions": "record_id, version", "quality_findings": "id", "batch_findings": "id",
    "event_daily": "org_code, dataset, day", "ingest_daily": "org_code, dataset, day", "measure_daily": "org_code, measure, day",
}


def upgrade() -> None:
    op.create_table(
        "record_keys",
        sa.Column("record_key", _key(200), nullable=False),
        sa.Column("dataset", _key(40), nullable=False),
        sa.Column("org_code", _key(32), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("event_time", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("record_key", "dataset", "org_code", name="pk_record_keys"),
    )
    op.execute("INSERT INTO record_keys (record_key, dataset, org_code, record_id, version, content_hash, event_time) "
               "SELECT record_key, dataset, org_code, id, version, content_hash, event_time FROM records")
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    window = partitions.window(date.today())
    for table, column in partitions.PARTITIONED.items():
        held = bind.execute(sa.text(
            f'SELECT DISTINCT CAST(date_trunc(\'month\', "{column}") AS date) FROM "{table}" WHERE "{column}" IS NOT NULL'
        )).scalars().all()
        partitions.partition_table(bind, table, column, [*window, *held])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in partitions.PARTITIONED:
            partitions.unpartition_table(bind, table)
            pk = bind.execute(sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) "
                                      "AND contype = 'p'"), {"t": table}).scalar()
            for name in bind.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t AND indexname "
                                             "LIKE :pk"), {"t": table, "pk": f"pk_{table}%"}).scalars():
                op.execute(f'DROP INDEX IF EXISTS "{name}"')
            if pk:
                op.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{pk}"')
            op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({_BEFORE[table]})')
            plain = _BEFORE[table].replace(", ", "_")  # a key that could not stay one (partitions.partition_table)
            op.execute(f'DROP INDEX IF EXISTS "ix_{table}_{plain}"')
        op.execute('DROP INDEX IF EXISTS "ix_records_record_key_dataset_org_code"')
        op.execute('ALTER TABLE records ADD CONSTRAINT uq_records_natural_key UNIQUE (record_key, dataset, org_code)')
    op.drop_table("record_keys")

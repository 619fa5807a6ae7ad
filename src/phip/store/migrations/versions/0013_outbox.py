"""Province–city integration (省市一体化): the city platform's outbox and the province's city
keys (``api_keys.region_code``).

Revision ID: 0013_outbox
Revises: 0009_backfill_checksum
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_outbox"
down_revision = "0012_register"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("org_code", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=40), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tried_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("region_code", sa.String(length=6), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("region_code")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")

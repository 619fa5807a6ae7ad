"""Archived months (归档): ``archived_months`` and ``record_keys.archived``.

Revision ID: 0017_archive
Revises: 0016_partitions
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0017_archive"
down_revision = "0016_partitions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record_keys") as batch:
        batch.add_column(sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "archived_months",
        sa.Column("table_name", sa.String(40), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "month", name="pk_archived_months"),
    )


def downgrade() -> None:
    op.drop_table("archived_months")
    with op.batch_alter_table("record_keys") as batch:
        batch.drop_column("archived")

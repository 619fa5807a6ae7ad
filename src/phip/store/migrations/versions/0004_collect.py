"""pull collection: sources (lease, schedule), cursors, runs

Revision ID: 0004_collect
Revises: 0003_quality
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_collect"
down_revision = "0003_quality"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "collect_sources",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("org_code", sa.String(length=32), nullable=False),
        sa.Column("lease_holder", sa.String(length=120), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("next_run_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_collect_sources")),
    )
    op.create_table(
        "collect_cursors",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "job", name=op.f("pk_collect_cursors")),
    )
    op.create_table(
        "collect_runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("dataset", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=120), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("unchanged", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("warnings", sa.BigInteger(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("cursor_from", sa.String(length=64), nullable=True),
        sa.Column("cursor_to", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collect_runs")),
    )
    with op.batch_alter_table("collect_runs", schema=None) as batch_op:
        batch_op.create_index("ix_collect_runs_source_job", ["source", "job", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("collect_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_collect_runs_source_job")
    op.drop_table("collect_runs")
    op.drop_table("collect_cursors")
    op.drop_table("collect_sources")

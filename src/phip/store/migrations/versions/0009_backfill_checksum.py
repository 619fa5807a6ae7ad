"""Back-fill and change detection of pull collection (issue 17): the event days each batch
stored or changed (``batches.event_days``) and how far the analysis has covered them
(``quality_runs.received_until``), the mode and chunk counts
of a collection run, and the per-chunk checksums of change-detection jobs (``collect_chunks``).

Revision ID: 0009_backfill_checksum
Revises: 0008_rejections_current
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_backfill_checksum"
down_revision = "0008_rejections_current"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("event_days", sa.JSON(), nullable=True))
    with op.batch_alter_table("quality_runs") as batch:
        batch.add_column(sa.Column("received_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("collect_runs") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("chunks", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("chunks_changed", sa.Integer(), nullable=True))
    op.create_table(
        "collect_chunks",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("lo", sa.String(length=200), nullable=False),
        sa.Column("hi", sa.String(length=200), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.String(length=40), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "job", "lo", name=op.f("pk_collect_chunks")),
    )


def downgrade() -> None:
    op.drop_table("collect_chunks")
    with op.batch_alter_table("collect_runs") as batch:
        batch.drop_column("chunks_changed")
        batch.drop_column("chunks")
        batch.drop_column("mode")
    with op.batch_alter_table("quality_runs") as batch:
        batch.drop_column("received_until")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("event_days")

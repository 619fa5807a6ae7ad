"""EMPI: golden record and linkage state on persons; candidate index, review queue, audit, models

Revision ID: 0005_empi
Revises: 0004_collect
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005_empi"
down_revision = "0004_collect"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Document = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("persons", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=10), server_default="active", nullable=False))
        batch_op.add_column(sa.Column("merged_into", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("sex", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("id_no", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("match", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("sources", sa.JSON(), nullable=True))

    op.create_table(
        "empi_blocks",
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key", "person_id", name=op.f("pk_empi_blocks")),
    )
    op.create_index("ix_empi_blocks_person", "empi_blocks", ["person_id"], unique=False)

    op.create_table(
        "empi_reviews",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("pair_key", sa.String(length=80), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("candidate_id", sa.String(length=32), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=True),
        sa.Column("evidence", Document, nullable=True),
        sa.Column("org_code", sa.String(length=32), nullable=True),
        sa.Column("dataset", sa.String(length=40), nullable=True),
        sa.Column("record_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_empi_reviews")),
        sa.UniqueConstraint("pair_key", name=op.f("uq_empi_reviews_pair_key")),
    )
    op.create_index(op.f("ix_empi_reviews_person_id"), "empi_reviews", ["person_id"], unique=False)
    op.create_index(op.f("ix_empi_reviews_candidate_id"), "empi_reviews", ["candidate_id"], unique=False)
    op.create_index("ix_empi_reviews_status_created", "empi_reviews", ["status", "created_at"], unique=False)

    op.create_table(
        "empi_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("person_id", sa.String(length=32), nullable=True),
        sa.Column("other_id", sa.String(length=32), nullable=True),
        sa.Column("review_id", BigId, nullable=True),
        sa.Column("reverts", BigId, nullable=True),
        sa.Column("reverted_by", BigId, nullable=True),
        sa.Column("detail", Document, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_empi_events")),
    )
    op.create_index(op.f("ix_empi_events_person_id"), "empi_events", ["person_id"], unique=False)
    op.create_index(op.f("ix_empi_events_other_id"), "empi_events", ["other_id"], unique=False)

    op.create_table(
        "empi_models",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("trained_on", sa.String(length=200), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("link_threshold", sa.Float(), nullable=False),
        sa.Column("review_threshold", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("settings", Document, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_empi_models")),
    )


def downgrade() -> None:
    op.drop_table("empi_models")
    op.drop_index(op.f("ix_empi_events_other_id"), table_name="empi_events")
    op.drop_index(op.f("ix_empi_events_person_id"), table_name="empi_events")
    op.drop_table("empi_events")
    op.drop_index("ix_empi_reviews_status_created", table_name="empi_reviews")
    op.drop_index(op.f("ix_empi_reviews_candidate_id"), table_name="empi_reviews")
    op.drop_index(op.f("ix_empi_reviews_person_id"), table_name="empi_reviews")
    op.drop_table("empi_reviews")
    op.drop_index("ix_empi_blocks_person", table_name="empi_blocks")
    op.drop_table("empi_blocks")
    with op.batch_alter_table("persons", schema=None) as batch_op:
        for col in ("sources", "match", "address", "phone", "id_no", "birth_date", "sex", "name",
                    "updated_at", "merged_into", "status"):
            batch_op.drop_column(col)

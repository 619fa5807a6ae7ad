"""One tamper-evident audit trail: audit_events (see phip.audit). Every existing EMPI event
is carried into it (phip.empi.trail.carry), and empi_events.hash, the old SHA-256 chain, goes:
the trail's keyed chain covers those rows now.

Revision ID: 0010_audit_trail
Revises: 0009_backfill_checksum
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_audit_trail"
down_revision = "0009_backfill_checksum"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("org_code", sa.String(length=32), nullable=True),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=True),
        sa.Column("authorization", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_person", "audit_events", ["person_id", "seq"])
    op.create_index("ix_audit_events_username", "audit_events", ["username", "seq"])
    op.create_index("ix_audit_events_org", "audit_events", ["org_code", "seq"])
    op.create_index("ix_audit_events_target", "audit_events", ["target"])
    op.create_index("ix_audit_events_flagged", "audit_events", ["flagged", "seq"])
    _carry_empi_events(op.get_bind())
    with op.batch_alter_table("empi_events", schema=None) as batch_op:
        batch_op.drop_column("hash")


def _carry_empi_events(conn: sa.Connection, page: int = 10_000) -> None:
    from phip.empi.trail import carry

    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    e = sa.table("empi_events", sa.column("id", big), sa.column("action", sa.String()), sa.column("at", sa.DateTime()),
                 sa.column("actor", sa.String()), sa.column("reason", sa.String()), sa.column("person_id", sa.String()),
                 sa.column("other_id", sa.String()), sa.column("review_id", big), sa.column("reverts", big),
                 sa.column("reverted_by", big), sa.column("detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
                 sa.column("hash", sa.String()))
    last = 0
    while rows := conn.execute(sa.select(e).where(e.c.id > last).order_by(e.c.id).limit(page)).mappings().all():
        carry(conn, rows)
        last = rows[-1]["id"]


def downgrade() -> None:
    # the old chain does not come back: its events read as written before it (hash NULL)
    with op.batch_alter_table("empi_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    op.drop_table("audit_events")

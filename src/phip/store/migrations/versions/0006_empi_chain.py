"""EMPI audit trail hash chain: empi_events.hash (see phip.empi.chain)

Revision ID: 0006_empi_chain
Revises: 0005_empi
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_empi_chain"
down_revision = "0005_empi"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # events already written stay unchained (NULL); the chain starts with the next one
    with op.batch_alter_table("empi_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("empi_events", schema=None) as batch_op:
        batch_op.drop_column("hash")

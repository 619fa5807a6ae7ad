"""Regional read-only accounts (区域卫健委只读账户): ``users.region_code``, the city or county
(GB/T 2260) whose institutions a regional reader sees on the operations dashboard.

Revision ID: 0015_regional_accounts
Revises: 0014_findings_by_record
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_regional_accounts"
down_revision = "0014_findings_by_record"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("region_code", sa.String(length=6), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("region_code")

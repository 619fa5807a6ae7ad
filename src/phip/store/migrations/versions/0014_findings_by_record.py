"""Findings by record (``quality_findings.record_key``): supervision on arrival replaces the
findings of the records a batch stored, so it finds them by key, not by scanning an
institution's findings.

Revision ID: 0014_findings_by_record
Revises: 0013_outbox
Create Date: 2026-12-06
"""
from alembic import op

revision = "0014_findings_by_record"
down_revision = "0013_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_quality_findings_record", "quality_findings", ["record_key"])


def downgrade() -> None:
    op.drop_index("ix_quality_findings_record", table_name="quality_findings")

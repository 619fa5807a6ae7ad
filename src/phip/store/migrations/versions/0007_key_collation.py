"""Key columns of the ingest path compared byte by byte on PostgreSQL (COLLATE "C"; see
phip.store.models.key_text). Other databases: nothing to do.

PostgreSQL rebuilds the indexes on these columns (the table rows stay as they are): on a large
store, run it in a maintenance window.

Revision ID: 0007_key_collation
Revises: 0006_empi_chain
Create Date: 2026-12-01
"""
from alembic import op

revision = "0007_key_collation"
down_revision = "0006_empi_chain"
branch_labels = None
depends_on = None

COLUMNS = {
    "persons": [("id", 32)],
    "person_identifiers": [("value", 64), ("kind", 20), ("scope", 32), ("person_id", 32)],
    "records": [("org_code", 32), ("dataset", 40), ("record_key", 200), ("person_id", 32)],
    "empi_blocks": [("key", 96), ("person_id", 32)],
}


def _alter(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in COLUMNS.items():
        changes = ", ".join(f'ALTER COLUMN "{c}" TYPE varchar({n}) COLLATE {collation}' for c, n in columns)
        op.execute(f'ALTER TABLE "{table}" {changes}')


def upgrade() -> None:
    _alter('"C"')


def downgrade() -> None:
    _alter('"default"')

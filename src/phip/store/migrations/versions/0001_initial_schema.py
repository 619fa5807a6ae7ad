"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('batch_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.String(length=32), nullable=False),
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('record_key', sa.String(length=200), nullable=True),
    sa.Column('rejected', sa.Boolean(), nullable=False),
    sa.Column('findings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_findings'))
    )
    with op.batch_alter_table('batch_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_findings_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index('ix_batch_findings_org_created', ['org_code', 'created_at'], unique=False)

    op.create_table('batches',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches'))
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_org_code'), ['org_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_received_at'), ['received_at'], unique=False)

    op.create_table('event_daily',
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_code', 'dataset', 'day', name=op.f('pk_event_daily'))
    )
    op.create_table('ingest_daily',
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('received', sa.BigInteger(), nullable=False),
    sa.Column('accepted', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.BigInteger(), nullable=False),
    sa.Column('unchanged', sa.BigInteger(), nullable=False),
    sa.Column('rejected', sa.BigInteger(), nullable=False),
    sa.Column('warnings', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_code', 'dataset', 'day', name=op.f('pk_ingest_daily'))
    )
    op.create_table('institutions',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('region_name', sa.String(length=50), nullable=False),
    sa.Column('county_code', sa.String(length=6), nullable=True),
    sa.Column('level', sa.String(length=20), nullable=True),
    sa.Column('ownership', sa.String(length=20), nullable=True),
    sa.Column('docking_method', sa.String(length=10), nullable=True),
    sa.Column('network_status', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('contact_name', sa.String(length=50), nullable=True),
    sa.Column('contact_title', sa.String(length=50), nullable=True),
    sa.Column('contact_phone', sa.String(length=20), nullable=True),
    sa.Column('docking_start', sa.Date(), nullable=True),
    sa.Column('first_upload_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_institutions')),
    sa.UniqueConstraint('name', name=op.f('uq_institutions_name'))
    )
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_institutions_region_code'), ['region_code'], unique=False)

    op.create_table('persons',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_persons'))
    )
    op.create_table('record_versions',
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('event_time', sa.DateTime(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('batch_id', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('superseded_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('record_id', 'version', name=op.f('pk_record_versions'))
    )
    op.create_table('records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('record_key', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=True),
    sa.Column('event_time', sa.DateTime(), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('batch_id', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records')),
    sa.UniqueConstraint('record_key', 'dataset', 'org_code', name='uq_records_natural_key')
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index('ix_records_dataset_event', ['dataset', 'event_time'], unique=False)
        batch_op.create_index('ix_records_person', ['person_id'], unique=False)

    op.create_table('person_identifiers',
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_person_identifiers_person_id_persons')),
    sa.PrimaryKeyConstraint('value', 'kind', 'scope', name=op.f('pk_person_identifiers'))
    )
    with op.batch_alter_table('person_identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_identifiers_person_id'), ['person_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('person_identifiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_identifiers_person_id'))

    op.drop_table('person_identifiers')
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_index('ix_records_person')
        batch_op.drop_index('ix_records_dataset_event')

    op.drop_table('records')
    op.drop_table('record_versions')
    op.drop_table('persons')
    with op.batch_alter_table('institutions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_institutions_region_code'))

    op.drop_table('institutions')
    op.drop_table('ingest_daily')
    op.drop_table('event_daily')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_received_at'))
        batch_op.drop_index(batch_op.f('ix_batches_org_code'))

    op.drop_table('batches')
    with op.batch_alter_table('batch_findings', schema=None) as batch_op:
        batch_op.drop_index('ix_batch_findings_org_created')
        batch_op.drop_index(batch_op.f('ix_batch_findings_batch_id'))

    op.drop_table('batch_findings')


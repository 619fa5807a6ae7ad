"""quality reports web

Revision ID: 0003_quality
Revises: 0002
Create Date: 2026-11-22 04:21:34.085429
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_quality'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('measure_daily',
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('measure', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_code', 'measure', 'day', name=op.f('pk_measure_daily'))
    )
    with op.batch_alter_table('measure_daily', schema=None) as batch_op:
        batch_op.create_index('ix_measure_daily_day', ['day'], unique=False)
    with op.batch_alter_table('ingest_daily', schema=None) as batch_op:
        batch_op.create_index('ix_ingest_daily_day', ['day'], unique=False)
    with op.batch_alter_table('event_daily', schema=None) as batch_op:
        batch_op.create_index('ix_event_daily_day', ['day'], unique=False)
    op.create_table('onboarding_analysed',
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('first_analysed_at', sa.DateTime(), nullable=False),
    sa.Column('last_analysed_at', sa.DateTime(), nullable=False),
    sa.Column('last_run_id', sa.String(length=32), nullable=False),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('org_code', name=op.f('pk_onboarding_analysed'))
    )
    op.create_table('quality_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('record_key', sa.String(length=200), nullable=True),
    sa.Column('rule_id', sa.String(length=60), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('dimension', sa.String(length=20), nullable=False),
    sa.Column('severity', sa.String(length=10), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_findings'))
    )
    with op.batch_alter_table('quality_findings', schema=None) as batch_op:
        batch_op.create_index('ix_quality_findings_org_created', ['org_code', 'created_at'], unique=False)
        batch_op.create_index('ix_quality_findings_scope', ['org_code', 'dataset', 'day'], unique=False)

    op.create_table('quality_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=True),
    sa.Column('day_from', sa.Date(), nullable=False),
    sa.Column('day_to', sa.Date(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('findings', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_runs'))
    )
    with op.batch_alter_table('quality_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_runs_org_code'), ['org_code'], unique=False)

    op.create_table('quality_scores',
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('dataset', sa.String(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('dimension', sa.String(length=20), nullable=False),
    sa.Column('checked', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('org_code', 'dataset', 'day', 'dimension', name=op.f('pk_quality_scores'))
    )
    op.create_table('region_contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('title', sa.String(length=50), nullable=True),
    sa.Column('office_phone', sa.String(length=30), nullable=True),
    sa.Column('mobile', sa.String(length=20), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_region_contacts'))
    )
    with op.batch_alter_table('region_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_region_contacts_region_code'), ['region_code'], unique=False)

    op.create_table('reported_figures',
    sa.Column('org_code', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('outpatient_visits', sa.BigInteger(), nullable=True),
    sa.Column('discharges', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('org_code', 'period_start', name=op.f('pk_reported_figures'))
    )
    op.create_table('users',
    sa.Column('username', sa.String(length=50), nullable=False),
    sa.Column('display_name', sa.String(length=50), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('username', name=op.f('pk_users'))
    )
    op.create_table('web_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=50), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['username'], ['users.username'], name=op.f('fk_web_sessions_username_users')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_sessions'))
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_username'), ['username'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_sessions_username'))

    op.drop_table('web_sessions')
    op.drop_table('users')
    op.drop_table('reported_figures')
    with op.batch_alter_table('region_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_region_contacts_region_code'))

    op.drop_table('region_contacts')
    op.drop_table('quality_scores')
    with op.batch_alter_table('quality_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_runs_org_code'))

    op.drop_table('quality_runs')
    with op.batch_alter_table('quality_findings', schema=None) as batch_op:
        batch_op.drop_index('ix_quality_findings_scope')
        batch_op.drop_index('ix_quality_findings_org_created')

    op.drop_table('quality_findings')
    op.drop_table('onboarding_analysed')
    with op.batch_alter_table('event_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_event_daily_day')
    with op.batch_alter_table('ingest_daily', schema=None) as batch_op:
        batch_op.drop_index('ix_ingest_daily_day')
    op.drop_table('measure_daily')

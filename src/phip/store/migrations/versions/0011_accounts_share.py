"""Accounts of every role and sharing (issue 21): clinicians' institution and department and
residents' EMPI person on ``users``; residents' first-use codes (``account_codes``);
authorizations and one-time authorization codes (``share_authorizations``, ``share_codes``);
an index on ``persons.merged_into`` so a patient's merged ids are found without a scan.

Revision ID: 0011_accounts_share
Revises: 0010_audit_trail
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_accounts_share"
down_revision = "0010_audit_trail"
branch_labels = None
depends_on = None


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("org_code", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("department", sa.String(length=50), nullable=True))
        batch.add_column(sa.Column("person_id", sa.String(length=32), nullable=True))
        batch.create_unique_constraint(op.f("uq_users_person_id"), ["person_id"])
    with op.batch_alter_table("persons") as batch:
        batch.create_index(op.f("ix_persons_merged_into"), ["merged_into"], unique=False)
    op.create_table(
        "account_codes",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_codes")),
    )
    op.create_index("ix_account_codes_person", "account_codes", ["person_id", "created_at"], unique=False)
    op.create_table(
        "share_authorizations",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("source_orgs", sa.JSON(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("reader_orgs", sa.JSON(), nullable=True),
        sa.Column("reader_user", sa.String(length=50), nullable=True),
        sa.Column("granted_by", sa.String(length=50), nullable=False),
        sa.Column("reason_code", sa.String(length=20), nullable=True),
        sa.Column("reason_text", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_authorizations")),
    )
    op.create_index("ix_share_authorizations_person", "share_authorizations", ["person_id", "expires_at"], unique=False)
    op.create_table(
        "share_codes",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("code_hash", sa.String(length=100), nullable=False),
        sa.Column("source_orgs", sa.JSON(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by", sa.String(length=50), nullable=True),
        sa.Column("authorization_id", _big_id(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_codes")),
    )
    op.create_index("ix_share_codes_person", "share_codes", ["person_id", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_share_codes_person", table_name="share_codes")
    op.drop_table("share_codes")
    op.drop_index("ix_share_authorizations_person", table_name="share_authorizations")
    op.drop_table("share_authorizations")
    op.drop_index("ix_account_codes_person", table_name="account_codes")
    op.drop_table("account_codes")
    with op.batch_alter_table("persons") as batch:
        batch.drop_index(op.f("ix_persons_merged_into"))
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_person_id"), type_="unique")
        batch.drop_column("person_id")
        batch.drop_column("department")
        batch.drop_column("org_code")

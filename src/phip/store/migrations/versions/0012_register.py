"""Institution register (issue 22): 隶属关系, 机构类别 and the list of placeholder fields on
``institutions``, and the change history ``institution_changes``.

Revision ID: 0012_register
Revises: 0009_backfill_checksum (0011_accounts_share once that branch is merged)
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_register"
down_revision = "0011_accounts_share"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("institutions") as batch:
        batch.add_column(sa.Column("affiliation", sa.String(length=4), nullable=True))
        batch.add_column(sa.Column("category", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("placeholder", sa.String(length=200), nullable=True))
    op.create_table(
        "institution_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("org_code", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(length=50), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("field", sa.String(length=30), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institution_changes")),
    )
    op.create_index("ix_institution_changes_org", "institution_changes", ["org_code", "changed_at"], unique=False)
    # Before this revision hospitals were registered from the demo seed only: mark its made-up
    # values as such (attachment 1 gives only the name and the region) where no reply form has
    # given the docking details yet; 长白山's county code, a city code of 白山, goes.
    inst = sa.table("institutions", sa.column("kind"), sa.column("placeholder"), sa.column("docking_start"),
                    sa.column("county_code"), sa.column("name"))
    op.execute(inst.update().where(inst.c.kind == "hospital", inst.c.placeholder.is_(None), inst.c.docking_start.is_(None))
               .values(placeholder="code;county_code;level;docking_method;network_status"))
    op.execute(inst.update().where(inst.c.name == "长白山中心医院", inst.c.county_code == "220600").values(county_code=None))


def downgrade() -> None:
    op.drop_index("ix_institution_changes_org", table_name="institution_changes")
    op.drop_table("institution_changes")
    with op.batch_alter_table("institutions") as batch:
        batch.drop_column("placeholder")
        batch.drop_column("category")
        batch.drop_column("affiliation")

"""Rejections stored once per source row and content (rejected_records), and the daily count of
new ones (ingest_daily.rejected_new).

A store that already holds rejections in batch_findings gets one current rejection per
(institution, data set, record key — or content hash of the payload when there is no key):
the last one sent, first and last seen, times seen; one whose key was stored as a record
after it was last seen is marked resolved. ingest_daily.rejected_new counts, per receipt day,
the rejections that were new then (first sight of that key, or a changed content). The
receipts' rows in batch_findings are kept as they are.

Revision ID: 0008_rejections_current
Revises: 0007_key_collation
Create Date: 2026-12-06
"""
import hashlib
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_rejections_current"
down_revision = "0007_key_collation"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Document = sa.JSON().with_variant(JSONB(), "postgresql")


def _key_text(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rejected_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("org_code", _key_text(32), nullable=False),
        sa.Column("dataset", _key_text(40), nullable=False),
        sa.Column("reject_key", _key_text(200), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=True),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("findings", Document, nullable=False),
        sa.Column("payload", Document, nullable=True),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("times_seen", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_batch", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_records")),
        sa.UniqueConstraint("reject_key", "dataset", "org_code", name="uq_rejected_records_key"),
    )
    op.create_index("ix_rejected_records_open", "rejected_records", ["org_code", "dataset", "resolved_at"])
    op.create_index("ix_rejected_records_org_seen", "rejected_records", ["org_code", "last_seen"])
    with op.batch_alter_table("ingest_daily") as batch_op:
        batch_op.add_column(sa.Column("rejected_new", sa.BigInteger(), nullable=False, server_default="0"))
    _carry_over()


def _carry_over() -> None:
    """One current rejection per key from the receipts' rejected rows, oldest first."""
    conn = op.get_bind()
    meta = sa.MetaData()
    findings = sa.Table("batch_findings", meta, autoload_with=conn)
    records = sa.Table("records", meta, autoload_with=conn)
    daily = sa.Table("ingest_daily", meta, autoload_with=conn)
    current: dict[tuple[str, str, str], dict[str, Any]] = {}
    new_by_day: dict[tuple[str, str, Any], int] = {}
    rows = conn.execute(
        sa.select(findings.c.org_code, findings.c.dataset, findings.c.record_key, findings.c.findings,
                  findings.c.payload, findings.c.batch_id, findings.c.idx, findings.c.created_at)
        .where(findings.c.rejected.is_(True)).order_by(findings.c.id).execution_options(yield_per=2000))
    for r in rows:
        digest = hashlib.blake2b(orjson.dumps(r.payload, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
        key = (r.org_code, r.dataset, r.record_key[:200] if r.record_key else "#" + digest)
        seen = current.get(key)
        if seen is not None and seen["content_hash"] == digest:
            seen.update(last_seen=r.created_at, times_seen=seen["times_seen"] + 1, batch_id=r.batch_id, idx=r.idx,
                        findings=r.findings)
            continue
        current[key] = {"org_code": key[0], "dataset": key[1], "reject_key": key[2], "record_key": r.record_key,
                        "content_hash": digest, "findings": r.findings, "payload": r.payload, "batch_id": r.batch_id,
                        "idx": r.idx, "first_seen": r.created_at, "last_seen": r.created_at, "times_seen": 1,
                        "resolved_at": None, "resolved_batch": None}
        day = (key[0], key[1], r.created_at.date())
        new_by_day[day] = new_by_day.get(day, 0) + 1
    if not current:
        return
    keyed = [k for k in current if not k[2].startswith("#")]
    for start in range(0, len(keyed), 500):
        chunk = keyed[start:start + 500]
        for org, ds, key, received, batch in conn.execute(
            sa.select(records.c.org_code, records.c.dataset, records.c.record_key, records.c.received_at, records.c.batch_id)
            .where(records.c.record_key.in_([k[2] for k in chunk]))
        ):
            entry = current.get((org, ds, key))
            if entry is not None and received > entry["last_seen"]:
                entry.update(resolved_at=received, resolved_batch=batch)
    table = sa.Table("rejected_records", meta, autoload_with=conn)
    values = list(current.values())
    for start in range(0, len(values), 1000):
        conn.execute(table.insert(), values[start:start + 1000])
    conn.execute(daily.update().where(daily.c.org_code == sa.bindparam("o"), daily.c.dataset == sa.bindparam("d"),
                                      daily.c.day == sa.bindparam("dd")).values(rejected_new=sa.bindparam("n")),
                 [{"o": o, "d": d, "dd": day, "n": n} for (o, d, day), n in new_by_day.items()])


def downgrade() -> None:
    with op.batch_alter_table("ingest_daily") as batch_op:
        batch_op.drop_column("rejected_new")
    op.drop_index("ix_rejected_records_org_seen", table_name="rejected_records")
    op.drop_index("ix_rejected_records_open", table_name="rejected_records")
    op.drop_table("rejected_records")

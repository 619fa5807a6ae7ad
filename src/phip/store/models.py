"""SQLAlchemy tables of the platform store.

Layout choices (see docs/architecture.md):

* ``records`` holds the *current* version of each (institution, data set, natural key); the
  fields are a JSON document, the keys that reports and sharing filter on are real columns.
  A corrected resend copies the old head into ``record_versions`` and then updates the
  head, so the common case (a new record) is one insert and nothing is ever overwritten
  without its history.
* Counters (``ingest_daily`` by receipt day, ``event_daily`` by event day) are maintained by
  the pipeline in the same transaction as the records, so reports never scan ``records``.
* Every batch leaves a receipt (``batches``) and the findings of its records
  (``batch_findings``), which the feedback API and the quality pages read.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON document column: JSONB on PostgreSQL (indexable), JSON text elsewhere.
Document = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit ids on servers, INTEGER on SQLite so that it stays the rowid alias (autoincrement).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def key_text(length: int) -> String:
    """A key column of the ingest path's indexes (codes, person ids, natural keys, identifier
    values and blocking keys): compared byte by byte on PostgreSQL (``COLLATE "C"``).

    These are codes, never sorted for a reader, and every insert compares them a few dozen
    times per index. Under any other collation PostgreSQL 15 calls the C library's strcoll for
    each comparison (``C.UTF-8`` included; only ``C`` and ``POSIX`` skip it), and a
    ``zh_CN.UTF-8`` database orders by pinyin at a far higher cost. Measured on the pipeline
    (50,000 visits, three interleaved pairs, a ``C.UTF-8`` database): 43 µs of server CPU per
    record against 40. Names and addresses keep the database's collation. SQLite and MariaDB
    compare these columns as they did.
    """
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Institution(Base):
    """A connected institution (医疗机构) or platform business system (业务系统)."""

    __tablename__ = "institutions"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)  # 统一社会信用代码
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="hospital")  # hospital | business_system | external_system
    region_code: Mapped[str] = mapped_column(String(6), index=True)  # GB/T 2260 city (prefecture) code
    region_name: Mapped[str] = mapped_column(String(50))
    county_code: Mapped[str | None] = mapped_column(String(6))
    level: Mapped[str | None] = mapped_column(String(20))  # 三级甲等 …
    ownership: Mapped[str | None] = mapped_column(String(20))  # 公立 / 民营
    docking_method: Mapped[str | None] = mapped_column(String(10))  # push (接口对接) | pull (数据采集)
    network_status: Mapped[str] = mapped_column(String(20), default="pending")  # connected | pending
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | closed
    contact_name: Mapped[str | None] = mapped_column(String(50))
    contact_title: Mapped[str | None] = mapped_column(String(50))
    contact_phone: Mapped[str | None] = mapped_column(String(20))
    docking_start: Mapped[date | None] = mapped_column(Date)
    first_upload_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    affiliation: Mapped[str | None] = mapped_column(String(4))  # 隶属关系, GB/T 12404 code (orgs/data/affiliations.csv)
    category: Mapped[str | None] = mapped_column(String(8))  # 机构类别, WS 218 code (orgs/data/categories.csv)
    # fields whose values are demo placeholders, ";"-separated (phip.orgs.register.PLACEHOLDER_FIELDS)
    placeholder: Mapped[str | None] = mapped_column(String(200))


class Person(Base):
    """A person known to the platform; the id is stable. The EMPI keeps the golden record
    (最新可信值, with each field's source in ``sources``) and the matching columns here."""

    __tablename__ = "persons"
    id: Mapped[str] = mapped_column(key_text(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(10), default="active", server_default="active")  # active | merged
    merged_into: Mapped[str | None] = mapped_column(String(32), index=True)  # sharing reads a person's merged ids
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    name: Mapped[str | None] = mapped_column(String(50))
    sex: Mapped[str | None] = mapped_column(String(1))
    birth_date: Mapped[date | None] = mapped_column(Date)
    id_no: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(200))
    match: Mapped[dict | None] = mapped_column(JSON)  # matching row (phip.empi.features.match_row)
    sources: Mapped[dict | None] = mapped_column(JSON)  # field -> {org, dataset, at}


class PersonIdentifier(Base):
    """An identifier of a person; ``scope`` is the institution for institution patient ids, '' otherwise."""

    __tablename__ = "person_identifiers"
    # value leads the key for the same reason as records.record_key (batch `value IN (…)`).
    value: Mapped[str] = mapped_column(key_text(64), primary_key=True)
    kind: Mapped[str] = mapped_column(key_text(20), primary_key=True)  # id_no | health_card | patient_id
    scope: Mapped[str] = mapped_column(key_text(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(key_text(32), ForeignKey("persons.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Record(Base):
    __tablename__ = "records"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_code: Mapped[str] = mapped_column(key_text(32))
    dataset: Mapped[str] = mapped_column(key_text(40))
    record_key: Mapped[str] = mapped_column(key_text(200))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str | None] = mapped_column(key_text(32))
    event_time: Mapped[datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    batch_id: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(Document)

    __table_args__ = (
        # record_key leads: lookups are `record_key IN (…)`, and a leading column is an index
        # condition on every planner, with or without fresh statistics. On PostgreSQL a plain
        # index of each month (the directory ``record_keys`` holds the uniqueness).
        UniqueConstraint("record_key", "dataset", "org_code", name="uq_records_natural_key"),
        Index("ix_records_dataset_event", "dataset", "event_time"),
        Index("ix_records_person", "person_id"),
    )


class RecordKey(Base):
    """The key directory (键目录): one row per stored record, by natural key, with what the
    pipeline compares a resend against (its id, version, content hash and event time).

    The natural key's uniqueness lives here, not in ``records``: on PostgreSQL ``records`` is
    partitioned by event month and a unique index there would have to hold the month (see
    ``phip.store.partitions``). Written in the batch's transaction with the record; on
    SQLite it doubles ``records``' own unique key (what that costs: docs/performance.md), so
    that both back ends run the same pipeline.
    """

    __tablename__ = "record_keys"
    record_key: Mapped[str] = mapped_column(key_text(200), primary_key=True)
    dataset: Mapped[str] = mapped_column(key_text(40), primary_key=True)
    org_code: Mapped[str] = mapped_column(key_text(32), primary_key=True)
    record_id: Mapped[int] = mapped_column(BigId)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(32))
    event_time: Mapped[datetime | None] = mapped_column(DateTime)
    #: the record's month was archived (``phip.store.archive``): its row is in a Parquet file,
    #: no longer in ``records``; a changed resend is refused (RECORD_ARCHIVED), an equal one is unchanged
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ArchivedMonth(Base):
    """A month of one partitioned table exported to Parquet and detached (归档), with what a
    restore checks the file against."""

    __tablename__ = "archived_months"
    table_name: Mapped[str] = mapped_column(String(40), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    path: Mapped[str] = mapped_column(String(500))
    rows: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(DateTime)


class RecordVersion(Base):
    """A superseded version of a record, kept whole."""

    __tablename__ = "record_versions"
    record_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str | None] = mapped_column(String(32))
    event_time: Mapped[datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    batch_id: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(Document)
    superseded_at: Mapped[datetime] = mapped_column(DateTime)


class Batch(Base):
    """One batch through the pipeline; its counts are the receipt (回执)."""

    __tablename__ = "batches"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(32), index=True)
    dataset: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))  # api | file | collect | forward | demo
    source_ref: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    total: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    # event days of the records stored or changed, as ranges (phip.store.dayranges): what the
    # quality analysis must cover after this batch, however old the events
    event_days: Mapped[list | None] = mapped_column(JSON)


class BatchFinding(Base):
    """Findings of one record of a batch; rejected records keep their raw payload for correction."""

    __tablename__ = "batch_findings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(32), index=True)
    org_code: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(40))
    idx: Mapped[int] = mapped_column(Integer)
    record_key: Mapped[str | None] = mapped_column(String(200))
    rejected: Mapped[bool] = mapped_column(Boolean)
    findings: Mapped[list] = mapped_column(Document)
    payload: Mapped[dict | None] = mapped_column(Document)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_batch_findings_org_created", "org_code", "created_at"),)


class IngestDaily(Base):
    """Counter: institution × data set × receipt day."""

    __tablename__ = "ingest_daily"
    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    unchanged: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    warnings: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Rejections new that day: a source row (and content) not rejected before, or rejected
    #: again after it was corrected. ``rejected`` counts every rejection of every receipt, so a
    #: nightly re-read of one bad row adds one there each night and nothing here.
    rejected_new: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class RejectedRecord(Base):
    """The current rejection of one source row (拒收记录): one row per (institution, data set,
    natural key), or per content hash of the raw payload when the key cannot be read.

    Receipts say every time that a batch had a record rejected; this table says it once: a
    re-read of the same row with the same content only moves ``last_seen`` and ``times_seen``,
    a changed content of the same key replaces the row, and a record of that key accepted later
    marks it resolved (``resolved_at``). All of it in the pipeline's transaction of the batch.
    """

    __tablename__ = "rejected_records"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_code: Mapped[str] = mapped_column(key_text(32))
    dataset: Mapped[str] = mapped_column(key_text(40))
    #: the natural key as ``records.record_key`` would hold it, or ``#`` + the content hash
    reject_key: Mapped[str] = mapped_column(key_text(200))
    record_key: Mapped[str | None] = mapped_column(String(200))  # as shown to the hospital (best effort)
    content_hash: Mapped[str] = mapped_column(String(32))  # of the raw payload as sent
    findings: Mapped[list] = mapped_column(Document)
    payload: Mapped[dict | None] = mapped_column(Document)
    batch_id: Mapped[str] = mapped_column(String(32))  # the last batch that carried it
    idx: Mapped[int] = mapped_column(Integer)  # its index in that batch
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_batch: Mapped[str | None] = mapped_column(String(32))  # the batch that brought the correction

    __table_args__ = (
        # reject_key leads, as records.record_key does: batch lookups are `reject_key IN (…)`
        UniqueConstraint("reject_key", "dataset", "org_code", name="uq_rejected_records_key"),
        Index("ix_rejected_records_open", "org_code", "dataset", "resolved_at"),
        Index("ix_rejected_records_org_seen", "org_code", "last_seen"),
    )


class EventDaily(Base):
    """Counter: institution × data set × event day — distinct current records (e.g. visits that day)."""

    __tablename__ = "event_daily"
    org_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger, default=0)



class ApiKey(Base):
    """An institution's credential for the push API. Only the SHA-256 of the key is stored:
    keys are 32 random bytes, so a fast hash is enough and a lookup is one index probe."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_code: Mapped[str] = mapped_column(String(32), ForeignKey("institutions.code"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to tell keys apart in lists
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: set: a city platform's key (省市一体化), which may push records of this region's
    #: institutions (each record keeps its own org_code) and of no other
    region_code: Mapped[str | None] = mapped_column(String(6))

# The other areas declare their tables on this Base in their own `tables` modules; the store
# imports none of them (it sits below every area): phip.schema gathers the whole schema.

"""What the EMPI tests share: valid ID numbers, registration records with chosen person
fields, and persons inserted as if resolved on identifiers only."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from phip.standard.checks import id_check_char
from phip.store import models as m

NOW = datetime(2026, 11, 22, 12, 0, 0)
DATASET = "outpatient_registration"
_serial = itertools.count(1)


def id_number(born: date, seq: int = 123, division: str = "220102") -> str:
    body = f"{division}{born:%Y%m%d}{seq:03d}"
    return body + id_check_char(body)


def registration(org: str, *, patient_id: str, name: str, sex: str = "1", born: date | None = date(1980, 5, 17),
                 id_no: str | None = None, phone: str | None = None, health_card: str | None = None,
                 when: datetime = NOW - timedelta(hours=3)) -> dict:
    """One valid outpatient registration (挂号) record with the given person fields."""
    n = next(_serial)
    rec = {
        "registration_no": f"R{n:08d}", "visit_no": f"MZ{n:08d}", "patient_id": patient_id,
        "name": name, "sex_code": sex, "visit_type_code": "1", "registration_type_code": "1",
        "dept_code": "0304", "dept_name": "内分泌科", "registration_time": when.strftime("%Y-%m-%d %H:%M:%S"),
        "total_fee": 10.0,
    }
    if born:
        rec["birth_date"] = born.isoformat()
    if id_no:
        rec["id_type_code"], rec["id_no"] = "01", id_no
    if phone:
        rec["phone"] = phone
    if health_card:
        rec["health_card_no"] = health_card
    return rec


def ingest(pipeline, org, *records):
    receipt = pipeline.ingest(org, DATASET, list(records), now=NOW)
    assert receipt.rejected == 0, receipt.as_dict()
    return receipt


def person_of(engine, record) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(m.Record.person_id).where(m.Record.record_key == record["registration_no"])).scalar_one()


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.fixture()
def two_orgs(orgs):
    return orgs[0][0], orgs[1][0]


def _insert_people(engine, people):
    """Persons as if resolved on identifiers only (each its own person), with their index keys."""
    from phip.empi.golden import person_row
    from phip.empi.store import insert_persons

    rows, blocks = [], {}
    for pid, values in people.items():
        cols, keys = person_row(values)
        rows.append({"id": pid, "created_at": NOW, "status": "active", "merged_into": None, **cols, "sources": {}})
        blocks[pid] = keys
    with engine.begin() as conn:
        insert_persons(conn, rows, blocks)

"""Finding a patient (患者查找) through the EMPI: by ID number, health card number, or name +
birth date + sex (all three must agree with the golden record). A reader without an
authorization learns that records exist, counted by year, and nothing of their content."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, extract, func, select

from phip.accounts import SessionInfo, require_role
from phip.accounts.trail import audit
from phip.empi.features import block_keys, match_row
from phip.empi.identifiers import normalize_id_number
from phip.empi.store import blocks_to_persons, load_persons
from phip.privacy import mask_id, mask_name
from phip.store.models import PersonIdentifier, Record

from .catalog import load_catalog
from .policy import ShareError, access, golden_id, person_ids

SEX = {"1": "男", "2": "女", "0": "未知", "9": "未说明"}


def _by_identifier(conn: Connection, kind: str, value: str) -> list[str]:
    pi = PersonIdentifier
    found = conn.execute(select(pi.person_id).where(pi.value == value, pi.kind == kind, pi.scope == "")).scalar()
    return [golden_id(conn, found)] if found else []


def _by_demographics(conn: Connection, name: str, birth_date: date, sex: str) -> list[str]:
    keys = block_keys(match_row(name, sex, birth_date, None, None, None))
    candidates = {p for ps in blocks_to_persons(conn, keys).values() for p in ps}
    persons = load_persons(conn, candidates)
    return sorted(pid for pid, p in persons.items() if p["status"] == "active" and p["name"] == name.strip()
                  and p["birth_date"] == birth_date and p["sex"] == sex)


def counts_by_year(conn: Connection, ids: list[str]) -> list[dict[str, int]]:
    """Records of the shared data sets per year of event: what exists, never what it says."""
    year = extract("year", Record.event_time)
    rows = conn.execute(select(year, func.count()).where(
        Record.person_id.in_(ids), Record.dataset.in_(list(load_catalog().category_of))).group_by(year)
        .order_by(year.desc())).all()
    return [{"year": int(y), "records": n} for y, n in rows if y is not None]


def find(engine: Engine, who: SessionInfo, *, id_no: str | None = None, health_card: str | None = None,
         name: str | None = None, birth_date: date | None = None, sex: str | None = None,
         address: str | None = None) -> list[dict[str, Any]]:
    """Patients matching the query, each with masked identity, record counts by year and
    whether the reader holds an authorization now."""
    require_role(who, "clinician")
    with engine.begin() as conn:
        if id_no:
            id18 = normalize_id_number(id_no.strip())
            if id18 is None:
                raise ShareError("BAD_ID_NO", "身份证号码无效（GB 11643 校验未通过）", "id_no")
            pids, query = _by_identifier(conn, "id_no", id18), "id_no"
        elif health_card:
            pids, query = _by_identifier(conn, "health_card", health_card.strip()), "health_card"
        elif name and birth_date and sex:
            if sex not in SEX:
                raise ShareError("BAD_SEX", "性别代码应为 1（男）、2（女）、0 或 9", "sex")
            pids, query = _by_demographics(conn, name, birth_date, sex), "demographics"
        else:
            raise ShareError("BAD_QUERY", "请提供身份证号、居民健康卡号，或姓名加出生日期加性别", None)
        persons = load_persons(conn, pids)
        out = []
        for pid in pids:
            p = persons[pid]
            grants = access(conn, who, pid)
            out.append({"person_id": pid, "name": mask_name(p["name"]), "sex": p["sex"], "sex_label": SEX.get(p["sex"] or "", ""),
                        "birth_date": p["birth_date"].isoformat() if p["birth_date"] else None,
                        "id_no": mask_id(p["id_no"]) if p["id_no"] else None, "authorized": grants.any,
                        "counts": counts_by_year(conn, person_ids(conn, pid))})
            audit(conn, who, "share.find", address=address, person_id=pid, detail={"by": query})
    return out

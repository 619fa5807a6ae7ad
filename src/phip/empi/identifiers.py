"""Identifiers of a person (身份标识) and their strength.

Kinds (``person_identifiers.kind``; scope '' unless stated):

* ``id_no`` — resident ID number (居民身份证号码, GB 11643), 18-digit form; 15-digit numbers are
  upgraded, a number failing the check character is not an identifier at all (the matcher
  still compares it as a string: a typo is evidence). Household-register (户口簿) numbers are
  the same number.
* ``health_card`` — resident health card (电子健康卡), province-wide.
* ``insurance`` — medical insurance number (医保号).
* ``doc`` — passport and other documents; scope = the document type code (id_type 03–99),
  so a passport number never collides with a Taiwan permit number.
* ``patient_id`` — the institution's own patient id; scope = the institution code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from phip.standard.catalog import DataSet, per_dataset
from phip.standard.checks import IdNumberError, parse_id_number

IdentifierKey = tuple[str, str, str]  # (kind, scope, value)

RESIDENT_ID_TYPES = (None, "01", "02")
KIND_LABELS = {
    "id_no": "居民身份证号码", "health_card": "电子健康卡号", "insurance": "医保号",
    "doc": "其他证件号码", "patient_id": "院内患者ID",
}
#: Province-wide identifiers (an exact hit links across institutions).
GLOBAL_KINDS = ("id_no", "health_card", "insurance", "doc")


def normalize_id_number(raw: Any, birth_date: Any = None) -> str | None:
    """The 18-digit form of a valid resident ID number, else None. A 15-digit number gets the
    century its record's ``birth_date`` gives (``checks.id15_century``: 19 unless the record
    says 20 for the same YYMMDD)."""
    if not isinstance(raw, str) or not raw:
        return None
    if birth_date is not None and len(raw.strip()) == 15:
        return _normalized_id(raw, birth_date if isinstance(birth_date, str) else birth_date.isoformat()[:10])
    return _normalized_id(raw)


@lru_cache(maxsize=8192)
def _normalized_id(raw: str, birth_date: str | None = None) -> str | None:
    # cached: resolving one record asks for its identifiers, its golden values and its
    # matching row, each through this function
    try:
        return parse_id_number(raw.strip(), birth_date=birth_date)[0]
    except IdNumberError:
        return None


def other_century(raw: Any, chosen: str) -> str | None:
    """For a 15-digit number, the valid 18-digit form of the other century than ``chosen``
    (None otherwise): another record of the person may carry that one."""
    if not isinstance(raw, str) or len(raw.strip()) != 15 or not raw.strip().isdigit():
        return None
    id15 = raw.strip()
    other = "20" if chosen[6:8] == "19" else "19"
    return _normalized_id(id15, f"{other}{id15[6:8]}-{id15[8:10]}-{id15[10:12]}")


def record_identifiers(org_code: str, dataset: DataSet, record: dict[str, Any]) -> list[IdentifierKey]:
    """The identifiers a record carries, strongest first: the ID number, when there is a valid
    one, always leads (the resolver looks for it there)."""
    id_field, id_type_field, others, pid_field, born_field = _identifier_fields(dataset)
    keys: list[IdentifierKey] = []
    get = record.get
    if id_field and (raw := get(id_field)):
        id_type = get(id_type_field) if id_type_field else None
        if id_type in RESIDENT_ID_TYPES:
            if (id18 := normalize_id_number(raw, get(born_field) if born_field else None)) is not None:
                keys.append(("id_no", "", id18))
        else:
            keys.append(("doc", str(id_type), str(raw).strip().upper()))
    for field, kind in others:
        if value := get(field):
            keys.append((kind, "", str(value).strip()))
    if pid_field and (pid := get(pid_field)):
        keys.append(("patient_id", org_code, str(pid).strip()))
    return keys


@per_dataset
def _identifier_fields(dataset: DataSet) -> tuple[Any, ...]:
    """The record fields behind each identifier kind, once per data set (this runs for every
    record of every batch)."""
    person = dataset.person
    others = tuple((person[role], kind) for role, kind in (("health_card_no", "health_card"), ("insurance_no", "insurance"))
                   if person.get(role))
    return person.get("id_no"), person.get("id_type"), others, person.get("patient_id"), person.get("birth_date")

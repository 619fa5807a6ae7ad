"""The matching row of a person or a record: the columns the model compares and the blocking keys.

The same row is stored on ``persons`` (the golden values), fed to Splink in batch and built
from an incoming record in real time, so a pair is compared the same way everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from phip.standard.catalog import DataSet, per_dataset
from phip.standard.checks import is_valid_id_number, normalize_phone

from .identifiers import RESIDENT_ID_TYPES, normalize_id_number
from .names import name_key

#: Columns of the matching row (all text or None; ``id_valid`` a bool).
MATCH_COLUMNS = ("name_key", "name_py", "surname_py", "given_py", "given_key", "sex", "dob", "id_no", "id_valid", "phone", "address_key")
#: Golden fields (survivorship is per field) and the person role that feeds each.
GOLDEN_FIELDS = ("name", "sex", "birth_date", "id_no", "phone", "address")

_POSTCODE = re.compile(r"(?<!\d)\d{6}(?!\d)")
_PROVINCE = re.compile(r"^(?:[^省市区]{2,3}省|[^省市区]{2,5}自治区|北京市|天津市|上海市|重庆市)")
_CITY = re.compile(r"^[^省市区]{2,4}市")
_SPACES = re.compile(r"[\s,，、]+")


def address_key(address: str | None) -> str | None:
    """Address for comparison: simplified, no spaces or postcode, province and city dropped
    (hospitals differ in whether they write them; the district and street carry the signal)."""
    if not address:
        return None
    from .names import fold  # the same t2s folding as names

    value = _POSTCODE.sub("", unicodedata.normalize("NFKC", address))
    value = _SPACES.sub("", fold(value) if not value.isascii() else value)
    value = _PROVINCE.sub("", value)
    value = _CITY.sub("", value)
    return value or None


def match_row(
    name: str | None, sex: str | None, birth_date: date | None, id_no: str | None,
    phone: str | None, address: str | None,
) -> dict[str, Any]:
    """The comparison columns of one person (values as received; normalised here)."""
    nk = name_key(name) if name else None
    id_clean = id_no.strip().upper() if id_no else None
    valid = bool(id_clean) and is_valid_id_number(id_clean)
    if valid:
        id_clean = normalize_id_number(id_clean)
    elif id_clean and not _looks_like_id(id_clean):
        id_clean = None  # a placeholder ("无", "000000000000000000") is no evidence: compared as missing
    return {
        "name_key": nk.key if nk else None,
        "name_py": nk.py if nk else None,
        "surname_py": (nk.surname_py or None) if nk else None,
        "given_py": (nk.given_py or None) if nk else None,
        "given_key": (nk.given or None) if nk else None,
        "sex": sex if sex in ("1", "2") else None,
        "dob": _yyyymmdd(birth_date) if birth_date else None,
        "id_no": id_clean or None,
        "id_valid": valid if id_clean else None,
        "phone": (normalize_phone(phone) or phone) if phone else None,
        "address_key": address_key(address),
    }


_ID_ATTEMPT = re.compile(r"^\d{14,18}[\dX]?$")


def _looks_like_id(value: str) -> bool:
    """An invalid number worth comparing: an ID number with a typo or cut short (one edit from
    the right one is evidence). Records are now stored with whatever the hospital sent; a
    placeholder compared as "different" would weigh a fixed m of 1e-4 against every person
    with a valid number, and shared placeholders would block all their holders together."""
    return bool(_ID_ATTEMPT.match(value)) and len(set(value)) > 2


def _yyyymmdd(day: date) -> str:
    """``%Y%m%d`` without strftime, which took a fifth of a new person's matching row (isoformat
    pads the year to four digits, as strftime does for every year the platform accepts)."""
    return day.isoformat()[:10].replace("-", "")  # [:10]: a datetime passed as a date


def block_keys(row: dict[str, Any]) -> list[str]:
    """Candidate keys (blocking): a pair is compared only when it shares one.

    surname+birth date catches given-name typos, given name+birth date surname typos,
    full name+birth year a corrupted birth date, the phone everything else.
    """
    keys: list[str] = []
    dob = row.get("dob")
    if dob:
        if row.get("surname_py"):
            keys.append(f"s:{row['surname_py']}:{dob}")
        if row.get("given_py"):
            keys.append(f"g:{row['given_py']}:{dob}")
        if row.get("name_py"):
            keys.append(f"y:{row['name_py']}:{dob[:4]}")
    if row.get("phone"):
        keys.append(f"p:{row['phone']}")
    return [k[:96] for k in keys]


def record_demographics(dataset: DataSet, record: dict[str, Any]) -> dict[str, Any]:
    """The golden-field values a record states (None where the data set has no such field)."""
    name, sex, born_field, id_field, phone, address, id_type, household = _person_fields(dataset)
    get = record.get
    id_no = get(id_field)
    if id_no is not None and id_type is not None and get(id_type) not in RESIDENT_ID_TYPES:
        id_no = None  # a passport number is an identifier, not a resident ID to compare
    born = get(born_field)
    if born is not None and not isinstance(born, date):
        born = None
    if isinstance(id_no, str) and len(id_no.strip()) == 15:
        id_no = normalize_id_number(id_no, born) or id_no  # the century the record's birth date gives
    return {"name": get(name), "sex": get(sex), "birth_date": born, "id_no": id_no, "phone": get(phone),
            "address": get(address) or get(household)}  # where one lives; else the household register's


@per_dataset
def _person_fields(dataset: DataSet) -> tuple[Any, ...]:
    """The record fields behind each golden field, once per data set (this runs for every
    record of every batch). A role the data set lacks reads a key no record has."""
    person = dataset.person
    return (*(person.get(role) or _ABSENT for role in ("name", "sex", "birth_date", "id_no", "phone", "address")),
            person.get("id_type"), person.get("household_address") or _ABSENT)


_ABSENT = "\x00absent"

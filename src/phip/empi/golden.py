"""Golden record (主索引最优记录) and survivorship: per field, the most recent trustworthy value.

A value is trustworthy when it passed its check: a valid ID number; a birth date and sex that
agree with the person's valid ID number; a phone in mainland format; a non-empty name or
address. Among trustworthy values the one observed latest (the record's event time) wins;
each field keeps its source (institution, data set, time), which the golden-record API shows.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from phip.standard.checks import id_birth_date, id_sex, normalize_phone

from .features import GOLDEN_FIELDS, address_key, block_keys, match_row
from .identifiers import normalize_id_number


def trusted(values: dict[str, Any], id_no: str | None) -> dict[str, Any]:
    """The subset of ``values`` (golden fields) that can be trusted, given the person's ID number."""
    out: dict[str, Any] = {}
    own_id = normalize_id_number(values.get("id_no")) if values.get("id_no") else None
    if own_id:
        out["id_no"] = own_id
    anchor = own_id or id_no
    if values.get("name"):
        out["name"] = str(values["name"]).strip()
    sex = values.get("sex")
    if sex in ("1", "2") and (anchor is None or id_sex(anchor) == sex):
        out["sex"] = sex
    born = values.get("birth_date")
    if isinstance(born, date) and (anchor is None or id_birth_date(anchor) == born):
        out["birth_date"] = born
    if values.get("phone") and (phone := normalize_phone(str(values["phone"]))):
        out["phone"] = phone
    if values.get("address"):
        out["address"] = str(values["address"]).strip()
    return out


def _at(source: dict[str, Any] | None) -> str:
    return (source or {}).get("at") or ""


def shortened(field: str, new: Any, old: Any) -> bool:
    """Whether ``new`` is ``old`` written shorter: an address without its district (娜欢大街117号
    for 六枝特区娜欢大街117号). The fuller address stays golden whichever record is newer: a
    golden address cut to its street compared weaker than a twin's full one and joined the
    wrong twin."""
    if field != "address" or not new or not old:
        return False
    short, full = address_key(str(new)), address_key(str(old))
    return bool(short and full and short != full and full.endswith(short))


def survive(
    current: dict[str, Any], sources: dict[str, Any] | None, observed: dict[str, Any], source: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Fold one observation into a golden record; returns (values, sources, changed)."""
    values = {f: current.get(f) for f in GOLDEN_FIELDS}
    srcs = dict(sources or {})
    changed = False
    for field, value in trusted(observed, values.get("id_no")).items():
        if value == values.get(field) or shortened(field, value, values.get(field)):
            continue
        if values.get(field) is None or source["at"] >= _at(srcs.get(field)) \
                or shortened(field, values.get(field), value):  # an older but fuller address
            values[field] = value
            srcs[field] = source
            changed = True
    if changed and values.get("id_no"):
        # a newly learned ID number outranks stated birth date and sex that contradict it
        for field, derived in (("birth_date", id_birth_date(values["id_no"])), ("sex", id_sex(values["id_no"]))):
            if values.get(field) != derived:
                values[field] = derived
                srcs[field] = {**srcs.get("id_no", source), "derived": "id_no"}
    return values, srcs, changed


def combine(a: tuple[dict[str, Any], dict[str, Any]], b: tuple[dict[str, Any], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Golden record of two persons merged: per field the later-observed value (a wins ties)."""
    values, srcs = dict(a[0]), dict(a[1] or {})
    for field in GOLDEN_FIELDS:
        other = b[0].get(field)
        if other is None or shortened(field, other, values.get(field)):
            continue
        if values.get(field) is None or _at((b[1] or {}).get(field)) > _at(srcs.get(field)) \
                or shortened(field, values.get(field), other):
            values[field] = other
            if (b[1] or {}).get(field):
                srcs[field] = b[1][field]
    return values, srcs


def person_row(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Columns of ``persons`` for golden values (matching row included) and its blocking keys."""
    row = match_row(values.get("name"), values.get("sex"), values.get("birth_date"), values.get("id_no"),
                    values.get("phone"), values.get("address"))
    return {**{f: values.get(f) for f in GOLDEN_FIELDS}, "match": row}, block_keys(row)


def source_of(org_code: str | None, dataset: str | None, at: datetime | date | None) -> dict[str, Any]:
    stamp = at.isoformat(sep=" ") if isinstance(at, datetime) else (at.isoformat() if at else "")
    return {"org": org_code, "dataset": dataset, "at": stamp}

"""The institution register (机构登记): add, change, close and re-open institutions, every
change kept as history (``institution_changes``: who, when, old, new).

Values are checked against the code tables of :mod:`phip.orgs.codes` before anything is
written; a change names the fields it sets, and a field set by a person is no longer a
demo placeholder (``institutions.placeholder`` loses it).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from phip.errors import PhipError
from phip.standard.checks import uscc_problem
from phip.standard.validate import platform_now
from phip.store.models import Institution

from . import codes
from .tables import InstitutionChange

KINDS = {"hospital": "医疗机构", "internet_hospital": "互联网医院", "business_system": "业务系统", "external_system": "外部系统"}
METHOD_WORDS = {"push": "push", "接口对接": "push", "接口": "push", "pull": "pull", "数据采集": "pull", "采集": "pull"}
OWNERSHIPS = ("公立", "民营")
METHOD_LABELS = {"push": "接口对接", "pull": "数据采集"}
STATUS_LABELS = {"active": "在用", "closed": "关停"}
#: What each ``institution_changes.action`` is called on the page and in the CLI.
ACTIONS = {"add": "登记", "update": "修改", "close": "关停", "reopen": "重新启用", "import": "导入", "reply": "回执"}
#: What a register row holds (what `add`, `update` and the import set); the rest of the
#: institutions row is onboarding state kept elsewhere.
FIELDS = ("code", "name", "kind", "region_code", "county_code", "level", "category", "affiliation", "ownership",
          "docking_method", "placeholder")
FIELD_LABELS = {"code": "机构代码", "name": "机构名称", "kind": "类型", "region_code": "地区代码", "county_code": "县区代码",
                "level": "医院等级", "category": "机构类别", "affiliation": "隶属关系", "ownership": "经济类型",
                "docking_method": "对接方式", "placeholder": "示例值字段", "status": "状态", "region_name": "地区名称",
                "network_status": "网络联通（人工设置）", "contact_name": "对接负责人", "contact_title": "职务",
                "contact_phone": "手机号", "docking_start": "对接开始时间"}
#: Fields that may be listed in ``placeholder`` (values made up for the demo, not given by a source).
PLACEHOLDER_FIELDS = ("code", "region_code", "county_code", "level", "category", "affiliation", "ownership",
                      "docking_method", "network_status")
_SYSTEM_CODE = re.compile(r"^[A-Z0-9]{2,32}$")


class RegisterError(PhipError, ValueError):
    """A register value refused; the message says which field and what is allowed (Chinese)."""


@dataclass
class Change:
    """What one operation did: the institution and the (field, old, new) it changed."""

    code: str
    action: str
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)


def placeholders(row: Mapping[str, Any]) -> set[str]:
    """The fields of a register row whose values are demo placeholders."""
    return {p for p in (row.get("placeholder") or "").split(";") if p}


def shown(field: str, value: Any) -> str:
    """A stored value as people write it (A100 → 综合医院, push → 接口对接): the export's cells,
    the page's columns and history lines use one wording, so an export reads like the page."""
    if value is None:
        return ""
    table = {"kind": KINDS, "category": codes.categories(), "affiliation": codes.affiliations(),
             "docking_method": METHOD_LABELS, "status": STATUS_LABELS}.get(field, {})
    return table.get(str(value), str(value))


def check(values: dict[str, Any], *, where: str = "") -> dict[str, Any]:
    """Normalise and check register values (those present); returns the values to store.

    ``where`` prefixes messages (``第3行``) for sheet imports."""
    out: dict[str, Any] = {}

    def fail(code: str, fld: str, message: str) -> RegisterError:
        return RegisterError(code, f"{where}{message}", fld)

    kind = values.get("kind") or "hospital"
    if "kind" in values:
        if kind not in KINDS:
            kind = next((k for k, label in KINDS.items() if label == kind), kind)
        if kind not in KINDS:
            raise fail("BAD_KIND", "kind", f"类型“{values['kind']}”无效，可选：" + "、".join(KINDS.values()))
        out["kind"] = kind
    if "code" in values:
        code = str(values["code"] or "").strip().upper()
        if kind == "hospital" and uscc_problem(code):
            raise fail("BAD_CODE", "code", f"机构代码“{code}”不是有效的统一社会信用代码（18位，末位为校验码）")
        if kind != "hospital" and not _SYSTEM_CODE.match(code):
            raise fail("BAD_CODE", "code", f"系统代码“{code}”应为2～32位大写字母或数字")
        out["code"] = code
    if "name" in values:
        name = " ".join(str(values["name"] or "").split())
        if not name or len(name) > 100:
            raise fail("BAD_NAME", "name", "机构名称不能为空，且不超过100字")
        out["name"] = name
    if "region_code" in values:
        region = codes.regions().get(str(values["region_code"] or "").strip())
        if region is None or not region.region:
            raise fail("BAD_REGION", "region_code", f"地区代码“{values['region_code']}”不是吉林省的市（州）级区划代码"
                       "（GB/T 2260，如 220100 长春市；另有 220581 梅河口市、229900 长白山保护开发区）")
        out["region_code"], out["region_name"] = region.code, (region.name if region.level != "province" else "省直")
    if values.get("county_code") not in (None, ""):
        county = codes.regions().get(str(values["county_code"]).strip())
        region_code = out.get("region_code") or values.get("_region_code")
        if county is None or county.level != "county":
            raise fail("BAD_COUNTY", "county_code", f"县区代码“{values['county_code']}”不是吉林省的县级区划代码（GB/T 2260）")
        if region_code and county.code != region_code and county.parent != region_code:
            raise fail("BAD_COUNTY", "county_code", f"县区代码{county.code}（{county.name}）不属于地区{region_code}")
        out["county_code"] = county.code
    elif "county_code" in values:
        out["county_code"] = None
    for key, table, label, code in (("level", codes.grades(), "医院等级", "BAD_GRADE"),
                                    ("category", codes.categories(), "机构类别", "BAD_CATEGORY"),
                                    ("affiliation", codes.affiliations(), "隶属关系", "BAD_AFFILIATION")):
        if key not in values:
            continue
        text = str(values[key] or "").strip()
        if not text:
            out[key] = None
            continue
        found = codes.lookup(table, text)
        if found is None:
            raise fail(code, key, f"{label}“{text}”不在代码表中，可选：" + "、".join(table.values()))
        out[key] = table[found] if key == "level" else found  # the grade is stored as its label (三级甲等)
    if "ownership" in values:
        text = str(values["ownership"] or "").strip()
        if text and text not in OWNERSHIPS:
            raise fail("BAD_OWNERSHIP", "ownership", f"经济类型“{text}”应为“公立”或“民营”")
        out["ownership"] = text or None
    if "docking_method" in values:
        text = str(values["docking_method"] or "").strip()
        if text and text not in METHOD_WORDS:
            raise fail("BAD_METHOD", "docking_method", f"对接方式“{text}”应为“接口对接”或“数据采集”")
        out["docking_method"] = METHOD_WORDS.get(text) if text else None
    if "placeholder" in values:
        given = [p.strip() for p in re.split(r"[;；,，\s]+", str(values["placeholder"] or "")) if p.strip()]
        bad = [p for p in given if p not in PLACEHOLDER_FIELDS]
        if bad:
            raise fail("BAD_PLACEHOLDER", "placeholder", f"示例值字段“{'、'.join(bad)}”无效，可选：{'、'.join(PLACEHOLDER_FIELDS)}")
        out["placeholder"] = ";".join(p for p in PLACEHOLDER_FIELDS if p in given) or None
    return out


def _current(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(select(Institution.__table__).where(Institution.code == code)).first()
    return None if row is None else dict(row._mapping)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _record(conn: Connection, change: Change, by: str, now: datetime) -> None:
    if change.fields:
        conn.execute(insert(InstitutionChange), [
            {"org_code": change.code, "changed_at": now, "changed_by": by[:50], "action": change.action, "field": f,
             "old_value": _text(old), "new_value": _text(new)} for f, old, new in change.fields])


def _name_taken(conn: Connection, name: str, code: str) -> bool:
    return conn.execute(select(Institution.code).where(Institution.name == name, Institution.code != code)).first() is not None


def add_in(conn: Connection, values: dict[str, Any], by: str, now: datetime, action: str = "add") -> Change:
    """Register a new institution on an open transaction (the import adds many in one)."""
    for required, label in (("code", "机构代码"), ("name", "机构名称"), ("region_code", "地区代码")):
        if required not in values:
            raise RegisterError("MISSING_FIELD", f"登记新机构须给出{label}", required)
    if _current(conn, values["code"]) is not None:
        raise RegisterError("DUPLICATE_ORG", f"机构代码{values['code']}已登记；修改请用 phip orgs update", "code")
    if _name_taken(conn, values["name"], values["code"]):
        raise RegisterError("DUPLICATE_NAME", f"机构名称“{values['name']}”已被另一机构使用", "name")
    row = {"kind": "hospital", "status": "active", "network_status": "pending", "created_at": now, **values}
    conn.execute(insert(Institution).values(**row))
    change = Change(values["code"], action, [(f, None, row[f]) for f in (*FIELDS, "region_name", "status") if row.get(f) is not None])
    _record(conn, change, by, now)
    return change


def update_in(conn: Connection, code: str, values: dict[str, Any], by: str, now: datetime, action: str = "update") -> Change:
    """Change the given fields of a registered institution; unchanged values write nothing."""
    current = _current(conn, code)
    if current is None:
        raise RegisterError("UNKNOWN_ORG", f"机构“{code}”未登记", "code")
    if "county_code" in values and values["county_code"] and "region_code" not in values:
        county = codes.regions().get(values["county_code"])
        if county and county.code != current["region_code"] and county.parent != current["region_code"]:
            raise RegisterError("BAD_COUNTY", f"县区代码{county.code}（{county.name}）不属于地区{current['region_code']}",
                                "county_code")
    if "name" in values and _name_taken(conn, values["name"], code):
        raise RegisterError("DUPLICATE_NAME", f"机构名称“{values['name']}”已被另一机构使用", "name")
    new = dict(values)
    if "placeholder" not in values:  # a value a person sets is no longer a placeholder
        kept = placeholders(current) - set(values)
        new["placeholder"] = ";".join(p for p in PLACEHOLDER_FIELDS if p in kept) or None
    changed = {k: v for k, v in new.items() if current.get(k) != v}
    change = Change(code, action, [(k, current.get(k), v) for k, v in changed.items()])
    if changed:
        conn.execute(update(Institution).where(Institution.code == code).values(**changed))
        _record(conn, change, by, now)
    return change


def add_institution(engine: Engine, values: dict[str, Any], by: str) -> Change:
    checked = check({"kind": values.get("kind") or "hospital", **values})
    with engine.begin() as conn:
        return add_in(conn, checked, by, platform_now())


def update_institution(engine: Engine, code: str, values: dict[str, Any], by: str) -> Change:
    with engine.begin() as conn:
        current = _current(conn, code)
        if current is None:
            raise RegisterError("UNKNOWN_ORG", f"机构“{code}”未登记", "code")
        checked = check({**values, "_region_code": values.get("region_code") or current["region_code"],
                         **({"kind": current["kind"]} if "code" in values and "kind" not in values else {})})
        checked.pop("_region_code", None)
        return update_in(conn, code, checked, by, platform_now())


def set_status(engine: Engine, code: str, status: str, by: str) -> Change:
    """Close (关停: no longer counted, kept with its data) or re-open an institution."""
    action = {"closed": "close", "active": "reopen"}[status]
    with engine.begin() as conn:
        current = _current(conn, code)
        if current is None:
            raise RegisterError("UNKNOWN_ORG", f"机构“{code}”未登记", "code")
        if current["status"] == status:
            word = "已关停" if status == "closed" else "在用，无需重新启用"
            raise RegisterError("ALREADY_CLOSED" if status == "closed" else "NOT_CLOSED", f"{current['name']}{word}", "status")
        return update_in(conn, code, {"status": status}, by, platform_now(), action)


def update_network(engine: Engine, code: str, status: str, by: str) -> Change:
    """The operators' network setting (网络联通), used where no data proves the link."""
    with engine.begin() as conn:
        return update_in(conn, code, {"network_status": status}, by, platform_now())


def registered(engine: Engine, only: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Register rows (every ``institutions`` column) by kind, region and name, the export's
    order; ``only``: just these codes (a regional reader's institutions)."""
    stmt = select(Institution.__table__).order_by(Institution.kind, Institution.region_code, Institution.name)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
    return rows if only is None else [r for r in rows if r["code"] in only]


def institution(engine: Engine, code: str) -> dict[str, Any] | None:
    """One register row by its code, or None."""
    with engine.connect() as conn:
        return _current(conn, code)


def history(engine: Engine, code: str | None = None, limit: int = 200) -> list[InstitutionChange]:
    stmt = select(InstitutionChange).order_by(InstitutionChange.changed_at.desc(), InstitutionChange.id.desc()).limit(limit)
    if code:
        stmt = stmt.where(InstitutionChange.org_code == code)
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        rows = list(session.scalars(stmt))
        session.expunge_all()
    return rows

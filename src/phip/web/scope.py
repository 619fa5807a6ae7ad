"""Who reads the operations dashboard and how much of the province (辖区): an operator reads it
all; a regional reader (区域卫健委, role ``regional``) only the institutions of its city or
county, read-only. Every /ops/ route takes a :class:`Viewer` and hands ``within`` to the
services, so the filter lives in the queries, never in a template."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from phip import accounts
from phip.orgs.codes import regions
from phip.orgs.service import region_orgs

READERS = ("operator", "regional")  # roles that read /ops/ pages and exports
WRITERS = ("operator",)  # roles that change anything there


@dataclass(frozen=True)
class Viewer:
    me: accounts.SessionInfo
    within: frozenset[str] | None  # institution codes the reader may see; None: the whole province
    area: str  # 全省, or the region's name for the titles and the weekly sentence

    @property
    def regional(self) -> bool:
        return self.within is not None


def area_name(code: str) -> str:
    """长春市, or 长春市朝阳区 for a county (its city named first, as letters address it)."""
    table = regions()
    region = table.get(code)
    if region is None:
        return code
    parent = table.get(region.parent)
    return f"{parent.name}{region.name}" if region.level == "county" and parent and parent.level == "city" else region.name


def viewer_of(engine: Engine, me: accounts.SessionInfo) -> Viewer:
    if me.role != "regional":
        return Viewer(me, None, "全省")
    # an account without a code reads nothing rather than everything
    code = me.region_code or ""
    return Viewer(me, region_orgs(engine, code) if code else frozenset(), area_name(code) if code else "本辖区")

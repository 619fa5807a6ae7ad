"""The national code tables the register checks against, kept as CSV data (orgs/data):

- ``regions.csv``: GB/T 2260 codes of Jilin (province, cities/prefectures, counties/districts),
  plus 长白山保护开发区, a management zone with no GB/T 2260 code, under the platform's own
  code 229900 flagged ``gb2260=0``; ``region=1`` marks the codes a register row may use as its
  region (市（州）-level grouping: the cities, the zone, province-managed 梅河口, the province);
- ``grades.csv``: 医院等级 (level and class, as the health statistics returns code them);
- ``categories.csv``: 机构类别 (WS 218-2002, the subset a provincial register needs, plus
  Z100/Z200 of the platform's own for business and external systems);
- ``affiliations.csv``: 隶属关系 (GB/T 12404).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # province | city | county | zone
    parent: str
    gb2260: bool
    region: bool
    note: str


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@cache
def regions() -> dict[str, Region]:
    return {r["code"]: Region(r["code"], r["name"], r["level"], r["parent"], r["gb2260"] == "1", r["region"] == "1",
                              r["note"]) for r in _rows("regions.csv")}


@cache
def tiles() -> dict[str, tuple[int, int]]:
    """Region code → (column, row) of its tile on the province's tile map (分区示意图): each
    city keeps its neighbours' sides, without a map outline (none can be vendored offline)."""
    return {r["code"]: (int(r["col"]), int(r["row"])) for r in _rows("region_tiles.csv")}


@cache
def grades() -> dict[str, str]:
    """Code → label (31 → 三级甲等)."""
    return {r["code"]: r["label"] for r in _rows("grades.csv")}


@cache
def categories() -> dict[str, str]:
    return {r["code"]: r["label"] for r in _rows("categories.csv")}


@cache
def affiliations() -> dict[str, str]:
    """Code → short label (20 → 省属)."""
    return {r["code"]: r["label"] for r in _rows("affiliations.csv")}


def lookup(table: dict[str, str], text: str) -> str | None:
    """The code for a code or a label as typed (``20`` or ``省属``); None when neither."""
    text = text.strip()
    if text in table:
        return text
    return next((code for code, label in table.items() if label == text), None)


def region_by_name(text: str) -> Region | None:
    """A region-level code by its name as people write it: 长春、长春市、延边州 …"""
    text = text.strip().rstrip("：:").strip()
    if not text:
        return None
    if text in regions():
        return regions()[text]
    exact = [r for r in regions().values() if r.region and r.name == text]
    hits = exact or [r for r in regions().values()
                     if r.region and r.level != "province" and r.name.startswith(text.rstrip("市州"))]
    return hits[0] if len(hits) == 1 else None

"""Primary-care institutions (基层医疗卫生机构): the community and township health centres that
keep residents' health records (基本公共卫生), known by their 机构类别 (WS 218, orgs/data/categories.csv)."""

from __future__ import annotations

#: 社区卫生服务中心, 社区卫生服务站, 街道卫生院, 乡镇卫生院
PRIMARY_CARE_CATEGORIES: tuple[str, ...] = ("B100", "B200", "C100", "C200")


def is_primary_care(category: str | None) -> bool:
    return category in PRIMARY_CARE_CATEGORIES

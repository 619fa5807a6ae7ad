"""Primary-care institutions (基层医疗卫生机构): the community health centres and township
health centres that keep residents' health records (基本公共卫生). The register marks them by
``level``, which for them names the kind of institution rather than a hospital grade."""

from __future__ import annotations

PRIMARY_CARE_LEVELS: tuple[str, ...] = ("社区卫生服务中心", "社区卫生服务站", "乡镇卫生院", "村卫生室")


def is_primary_care(level: str | None) -> bool:
    return level in PRIMARY_CARE_LEVELS

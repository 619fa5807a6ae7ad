"""Masking of personal identifiers for pages, exports and logs (脱敏).

ID numbers keep the region (6) and the last 4 characters; phones keep the first 3 and last 4.
A role that may read them unmasked is named in ``UNMASKED_ROLES``; operators are not in it.
"""

from __future__ import annotations

UNMASKED_ROLES: frozenset[str] = frozenset()


def mask_id(value: object, role: str = "operator") -> str:
    text = "" if value is None else str(value)
    if role in UNMASKED_ROLES or not text:
        return text
    if len(text) <= 6:
        return "*" * len(text)
    return text[:6] + "*" * max(len(text) - 10, 2) + text[-4:]


def mask_phone(value: object, role: str = "operator") -> str:
    text = "" if value is None else str(value)
    if role in UNMASKED_ROLES or not text:
        return text
    if len(text) < 7:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]

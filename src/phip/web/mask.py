"""Masking of personal identifiers for pages, exports and logs (脱敏).

ID numbers keep the region (6) and the last 4 characters; phones keep the first 3 and last 4.
A role that may read them unmasked is named in ``UNMASKED_ROLES``; operators are not in it.
"""

from __future__ import annotations

import re

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


#: An ID number (18 or 15 digits) or a mobile number inside any text: masked wherever it stands,
#: for values of unknown meaning (a rejected record's fields as sent, an unreadable line).
_ID_IN_TEXT = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")
_PHONE_IN_TEXT = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def mask_text(value: object, role: str = "operator") -> str:
    """A text with every ID-number-shaped and phone-shaped run masked (as :func:`mask_id`,
    :func:`mask_phone`): a rejected record is shown as sent, and what was sent in the wrong
    field or on an unreadable line must not come out whole."""
    text = "" if value is None else str(value)
    if role in UNMASKED_ROLES or not text:
        return text
    text = _ID_IN_TEXT.sub(lambda m: mask_id(m.group(0), role), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0), role), text)

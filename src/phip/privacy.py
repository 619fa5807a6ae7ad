"""Masking of personal identifiers (脱敏): the one rule per identifier kind that pages,
exports, the API and logs all use.

ID numbers keep the region (6) and the last 4 characters; phones, health cards and insurance
numbers keep the first 3 and last 4; other identity documents (passports …) the first 2 and
last 2; a name keeps its first and, from three characters on, its last character (张*, 张*丰).

Who reads them whole (decision, issue 19): no role of the dashboard or the operator API.
``UNMASKED_ROLES`` is the one place a role is given that right (with its name in
``phip.accounts.ROLES``); operators (运维人员) see every identifier and name masked on pages,
in exports, in EMPI answers and in logs. Whole values stay in the database, for the matching.
"""

from __future__ import annotations

import re
import unicodedata

UNMASKED_ROLES: frozenset[str] = frozenset()


def mask_id(value: object, role: str = "operator") -> str:
    text = "" if value is None else str(value)
    if role in UNMASKED_ROLES or not text:
        return text
    if len(text) <= 6:
        return "*" * len(text)
    return text[:6] + "*" * max(len(text) - 10, 2) + text[-4:]


def _head_tail(value: object, role: str, head: int, tail: int) -> str:
    text = "" if value is None else str(value)
    if role in UNMASKED_ROLES or not text:
        return text
    if len(text) < head + tail:
        return "*" * len(text)
    return text[:head] + "*" * (len(text) - head - tail) + text[-tail:]


def mask_phone(value: object, role: str = "operator") -> str:
    return _head_tail(value, role, 3, 4)


def mask_health_card(value: object, role: str = "operator") -> str:
    return _head_tail(value, role, 3, 4)


def mask_insurance(value: object, role: str = "operator") -> str:
    return _head_tail(value, role, 3, 4)


def mask_document(value: object, role: str = "operator") -> str:
    """Another identity document (passport, officer's card …): E12345678 → E1*****78."""
    return _head_tail(value, role, 2, 2)


def mask_name(value: object, role: str = "operator") -> str:
    """张三 → 张*, 张三丰 → 张*丰, 欧阳娜娜 → 欧**娜: enough to tell two candidates apart on a
    review, not enough to name the person."""
    text = "" if value is None else str(value).strip()
    if role in UNMASKED_ROLES or not text:
        return text
    if len(text) <= 2:
        return text[0] + "*" * (len(text) - 1) if len(text) == 2 else "*"
    return text[0] + "*" * (len(text) - 2) + text[-1]


def mask_address(value: object, role: str = "operator") -> str:
    """吉林省长春市朝阳区红旗街88号 → 吉林省长春市朝阳区****: the administrative divisions (up to the
    last 省/市/区/县 of the first 12 characters, else the first 3) and nothing of the street."""
    text = "" if value is None else str(value).strip()
    if role in UNMASKED_ROLES or not text:
        return text
    head = ""
    for m in re.finditer(r"省|自治区|市|州|盟|区|县|旗", text[:12]):
        head = text[:m.end()]
    return (head or text[:3]) + "****"


def may_unmask(role: str | None) -> bool:
    """True for a role that reads identifiers and names whole (none of today's roles)."""
    return role in UNMASKED_ROLES


#: The rule of each identifier kind, by the kind names the EMPI stores (person_identifiers.kind)
#: and the golden record's field names.
MASKS = {"id_no": mask_id, "phone": mask_phone, "health_card": mask_health_card, "insurance": mask_insurance,
         "doc": mask_document, "name": mask_name}

#: The same rules by the person roles a data set declares (phip.standard.catalog.PersonRole):
#: the field of a record that holds the value.
PERSON_FIELD_MASKS = {"id_no": mask_id, "phone": mask_phone, "health_card_no": mask_health_card,
                      "insurance_no": mask_insurance, "name": mask_name}


def mask_kind(kind: str, value: str | None, role: str = "operator") -> str | None:
    """``value`` masked by the rule of its kind; None and empty stay as they are, and a kind
    that is no personal identifier (a patient id, a code) is returned unchanged."""
    rule = MASKS.get(kind)
    return value if not value or rule is None else rule(value, role)


#: An ID number (18 or 15 digits) or a mobile number inside any text: masked wherever it stands,
#: for values of unknown meaning (a rejected record's fields as sent, an unreadable line).
#: Written in groups too (220102 19620314 0422, 139-1234-5678), as people write them.
_ID_IN_TEXT = re.compile(r"(?<![0-9])(?:[0-9]{6}[ -]?[0-9]{8}[ -]?[0-9]{3}[0-9Xx]|[0-9]{15})(?![0-9Xx])")
_PHONE_IN_TEXT = re.compile(r"(?<![0-9])1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])")


def mask_text(value: object, role: str = "operator") -> str:
    """A text with every ID-number-shaped and phone-shaped run masked (as :func:`mask_id`,
    :func:`mask_phone`): a rejected record is shown as sent, and what was sent in the wrong
    field or on an unreadable line must not come out whole."""
    text = "" if value is None else str(value)
    if role in UNMASKED_ROLES or not text:
        return text
    masked = _mask_runs(text, role)
    if masked.isascii():  # NFKC changes nothing in ASCII
        return masked
    # full-width digits (２２０１…) make an ID number too: if any is left, the text is shown
    # in its NFKC form, masked
    wide = unicodedata.normalize("NFKC", masked)
    return masked if _mask_runs(wide, role) == wide else _mask_runs(unicodedata.normalize("NFKC", text), role)


def _mask_runs(text: str, role: str) -> str:
    text = _ID_IN_TEXT.sub(lambda m: mask_id(m.group(0), role), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0), role), text)

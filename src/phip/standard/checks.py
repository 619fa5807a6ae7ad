"""Identifier checks of the national standards and the text normaliser.

Pure functions, no I/O, so they can be property-tested and reused by the EMPI and the
quality rules. Algorithms:

* GB 11643-1999 resident ID number (公民身份号码): ISO 7064 MOD 11-2 check character;
  15-digit numbers issued before 1999 are upgraded by inserting the century ``19`` and
  appending the computed check character.
* GB 32100-2015 unified social credit code (统一社会信用代码): 31-symbol alphabet,
  weights 3^(i-1) mod 31.
* Mainland phone numbers: 11-digit mobiles (1[3-9]x) and fixed lines with an area code.
"""

from __future__ import annotations

import re
import time
from datetime import date
from functools import lru_cache
from typing import Any
from operator import mul

from phip.errors import PhipError

# --- normaliser -------------------------------------------------------------------------

# Full-width digits and Latin letters (U+FF10–FF19, FF21–FF3A, FF41–FF5A) fold to ASCII;
# punctuation is left alone on purpose: clinical text uses full-width commas and colons.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))}
_WHITESPACE = " \t\r\n\u3000\u00a0\ufeff"


_HAS_FULLWIDTH = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]").search


def normalize_text(value: str) -> str:
    """Fold full-width digits/letters to ASCII and strip surrounding (also ideographic) spaces."""
    if not value.isascii() and _HAS_FULLWIDTH(value):
        value = value.translate(_FULLWIDTH)
    return value.strip(_WHITESPACE)


def replace_nul(value: Any) -> Any:
    """``value`` with every U+0000 (in strings, keys included, at any depth) shown as U+FFFD.

    PostgreSQL cannot store U+0000 in text or jsonb, so input that carries one (a C string
    copied with its terminator, a binary column read as text) would fail a whole batch at
    the database. The validator rejects such a value (``NUL_CHARACTER``); what is kept of
    rejected input for the hospital to see (payload, key, messages) goes through here."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {replace_nul(k): replace_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [replace_nul(v) for v in value]
    return value


#: No record of the standard nests deeper than a few levels; a value nested deeper than this is
#: kept for feedback only as a note, since walking it recursively (serialising, repr,
#: replace_nul) would hit Python's recursion limit and fail the whole batch.
MAX_NESTING = 32


def nested_too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests lists or objects more than ``limit`` levels deep (iterative, so
    it cannot itself overflow the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return False


# --- GB 11643 resident ID number --------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID18 = re.compile(r"^\d{17}[\dX]$")
_ID15 = re.compile(r"^\d{15}$")
PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)


def id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    return _ID_CHECK[sum(map(mul, map(int, first17), _ID_WEIGHTS)) % 11]


def id15_century(id15: str, birth_date: date | str | None = None) -> str:
    """The century of a 15-digit ID number's YYMMDD: "19" (the numbers were issued before 1999),
    unless the record's own birth date is 20YYMMDD for the same YYMMDD (a number typed without
    its century, or a system that stored the old form for a child): then "20"."""
    if isinstance(birth_date, str):
        text = birth_date.strip()[:10].replace("-", "")
    elif isinstance(birth_date, date):
        text = birth_date.isoformat()[:10].replace("-", "")
    else:
        return "19"
    return "20" if len(text) == 8 and text[:2] == "20" and text[2:] == id15[6:12] else "19"


def upgrade_id15(id15: str, birth_date: date | str | None = None) -> str:
    """Upgrade a 15-digit ID number (YYMMDD) to its 18-digit form; the century is 19 unless the
    record's birth date says 20 for the same YYMMDD (:func:`id15_century`)."""
    body = id15[:6] + id15_century(id15, birth_date) + id15[6:]
    return body + id_check_char(body)


@lru_cache(maxsize=65536)
def id_birth_date(id18: str) -> date | None:
    """The birth date an ID number states (None when it is no date). Cached: a new person's
    number is read by validation, by survivorship and again for the derived birth date."""
    try:
        return date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return None


def id_sex(id18: str) -> str:
    """GB/T 2261.1 sex code implied by the 17th digit (odd male, even female)."""
    return "1" if id18[16] in "13579" else "2"


class IdNumberError(PhipError, ValueError):
    """An ID number that is not a valid GB 11643 number; ``code`` says which check failed."""


def parse_id_number(raw: str, today: date | None = None, birth_date: date | str | None = None) -> tuple[str, bool]:
    """Validate a resident ID number; return (18-digit form, was_upgraded).

    ``birth_date`` (the record's) only matters for a 15-digit number: it chooses the century
    (:func:`id15_century`). Raises IdNumberError with a stable code and a Chinese message when
    the number is not a valid GB 11643 number. Results are cached: the same patients recur
    across records.
    """
    century = id15_century(raw.strip(), birth_date) if birth_date is not None and len(raw.strip()) == 15 else "19"
    if today is None:
        result = _parse_id_cached(raw, _today(), century)
        if isinstance(result, IdNumberError):
            raise result
        return result
    return _parse_id(raw, today, century)


_TODAY: list[Any] = [0.0, date.min]


def _today() -> date:
    """Today's date, read from the clock at most once a minute (parse_id_number runs several
    times per record; date.today() cost 2 µs per record of the pipeline's ~60)."""
    now = time.monotonic()
    if now - _TODAY[0] > 60:
        _TODAY[0], _TODAY[1] = now, date.today()
    return _TODAY[1]


@lru_cache(maxsize=65536)
def _parse_id_cached(raw: str, today: date, century: str = "19") -> tuple[str, bool] | IdNumberError:
    try:
        return _parse_id(raw, today, century)
    except IdNumberError as exc:
        return exc


def _parse_id(raw: str, today: date, century: str = "19") -> tuple[str, bool]:
    value = raw.upper()
    upgraded = False
    if _ID15.match(value):
        body = value[:6] + century + value[6:]
        value = body + id_check_char(body)
        upgraded = True
    elif not _ID18.match(value):
        raise IdNumberError("ID_NO_FORMAT", f"身份证号码应为18位（末位可为X）或15位数字，实际为“{len(value)}位”")
    if value[:2] not in PROVINCE_CODES:
        raise IdNumberError("ID_NO_REGION", f"身份证号码前两位“{value[:2]}”不是有效的省级行政区划代码")
    born = id_birth_date(value)
    if born is None or born.year < 1900 or born > today:
        raise IdNumberError("ID_NO_BIRTH", f"身份证号码中的出生日期“{value[6:14]}”无效")
    if not upgraded and id_check_char(value[:17]) != value[17]:
        raise IdNumberError("ID_NO_CHECKSUM", "身份证号码校验位错误（GB 11643）")
    return value, upgraded


def id_number_problems(raw: str, today: date | None = None) -> tuple[IdNumberError, ...]:
    """Every GB 11643 check ``raw`` fails, in order (format, region, birth date, check
    character); empty for a valid number. A number is kept as sent whatever it fails, so its
    finding must name all of it at once: a month 56 is a birth-date error even when the
    region is wrong too, and a hospital fixes the number in one round, not one per check."""
    return _problems_cached(raw, today or _today())


@lru_cache(maxsize=65536)
def _problems_cached(raw: str, today: date) -> tuple[IdNumberError, ...]:
    value = raw.upper()
    problems: list[IdNumberError] = []
    is18, is15 = bool(_ID18.match(value)), bool(_ID15.match(value))
    if not (is18 or is15):
        problems.append(IdNumberError("ID_NO_FORMAT", f"身份证号码应为18位（末位可为X）或15位数字，实际为“{len(value)}位”"))
    if len(value) >= 2 and value[:2].isdigit() and value[:2] not in PROVINCE_CODES:
        problems.append(IdNumberError("ID_NO_REGION", f"身份证号码前两位“{value[:2]}”不是有效的省级行政区划代码"))
    digits = ("19" + value[6:12]) if is15 else value[6:14]
    if len(digits) == 8 and digits.isdigit():
        born = id_birth_date(f"{'0' * 6}{digits}")
        if born is None or born.year < 1900 or born > today:
            problems.append(IdNumberError("ID_NO_BIRTH", f"身份证号码中的出生日期“{digits}”无效"))
    if is18 and id_check_char(value[:17]) != value[17]:
        problems.append(IdNumberError("ID_NO_CHECKSUM", "身份证号码校验位错误（GB 11643）"))
    return tuple(problems)


def stated_sex_and_birth(value: str) -> tuple[str | None, date | None]:
    """What the digits of a number say of sex and birth date, where they can be read, valid
    number or not: an ID number that fails its check character still tells whether the record
    disagrees with itself."""
    value = value.upper()
    if _ID15.match(value):
        value = value[:6] + "19" + value[6:]
    sex = id_sex(value) if len(value) >= 17 and value[16].isdigit() else None
    born = id_birth_date(value) if len(value) >= 14 and value[6:14].isdigit() else None
    return sex, born


@lru_cache(maxsize=65536)
def is_valid_id_number(raw: str) -> bool:
    try:
        parse_id_number(raw)
    except IdNumberError:
        return False
    return True


# --- GB 32100 unified social credit code -------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


def uscc_check_char(first17: str) -> str:
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


@lru_cache(maxsize=4096)
def uscc_problem(raw: str) -> str | None:
    """None when ``raw`` is a valid USCC, else a stable problem code (USCC_FORMAT / USCC_CHECKSUM)."""
    value = raw.upper()
    if not _USCC.match(value):
        return "USCC_FORMAT"
    if uscc_check_char(value[:17]) != value[17]:
        return "USCC_CHECKSUM"
    return None


# --- phone numbers ------------------------------------------------------------------------

_MOBILE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$")
_FIXED = re.compile(r"^(?:(?:\+?86)?0\d{2,3})?[2-9]\d{6,7}$")
_PHONE_SEPARATORS = str.maketrans("", "", " -()（）")


def normalize_phone(raw: str) -> str | None:
    """Return the phone stripped of separators when it is a mainland mobile or fixed line."""
    value = raw.translate(_PHONE_SEPARATORS)
    if _MOBILE.match(value) or _FIXED.match(value):
        return value
    return None

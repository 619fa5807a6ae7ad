"""Name normalisation for matching (姓名标准化): traditional → simplified, pinyin with surname readings.

Why OpenCC: it is the maintained reference converter (BYVoid/OpenCC, the dictionaries every
Chinese input method and Wikipedia use), ships binary wheels with its dictionaries inside (works
offline) and converts a name in about a microsecond. Character tables such as hanziconv or zhconv
are unmaintained since 2016/2021 and miss variants OpenCC covers (e.g. 鍾→钟, 於→于).

Why a surname table: pypinyin reads a character by its most common reading, which is wrong for
many surnames (单 dān instead of shàn, 曾 céng instead of zēng, 解, 仇, 查, 区, 朴, 盖 …) and has
no surname mode. The table (``data/surnames.csv``, compound surnames first) is data, so a
province adds readings without touching code. Both sides of a comparison go through the same
conversion, so matching is consistent either way; the table matters for display and for
matching against romanised names (passports, 外籍).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from phip.standard.checks import normalize_text

SURNAMES_CSV = Path(__file__).parent / "data" / "surnames.csv"
_DROP = re.compile(r"[\s·•・．.\-_,，'`]+")


@cache
def _converter():  # noqa: ANN202 - opencc and pypinyin load their tables (0.4 s): only when a name is read
    import opencc

    return opencc.OpenCC("t2s.json")


@cache
def surname_readings() -> dict[str, tuple[str, ...]]:
    """Surname → its syllables with tone marks, from the data table."""
    with SURNAMES_CSV.open(encoding="utf-8") as f:
        return {row["surname"]: tuple(row["pinyin"].split()) for row in csv.DictReader(f)}


@cache
def _compound_surnames() -> tuple[tuple[int, frozenset[str]], ...]:
    """Compound surnames by length, longest first: a name is tested with one set lookup per
    length (testing it against every compound took half of a new name's matching key)."""
    by_length: dict[int, set[str]] = {}
    for s in surname_readings():
        if len(s) > 1:
            by_length.setdefault(len(s), set()).add(s)
    return tuple((n, frozenset(by_length[n])) for n in sorted(by_length, reverse=True))


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Matching form of a name: simplified characters, ASCII folded, separators and spaces gone,
    Latin letters lower-case (张 三 / 張三 / ＺＨＡＮＧ → 张三 / 张三 / zhang)."""
    value = normalize_text(unicodedata.normalize("NFKC", text))
    if not value.isascii():
        value = _converter().convert(value)
    return _DROP.sub("", value).lower()


def split_name(key: str) -> tuple[str, str]:
    """(surname, given name) of a folded name; compound surnames (欧阳, 尉迟 …) are recognised.
    Romanised names (no Han characters) have no reliable surname: all of it is the given name."""
    if not key or key.isascii():
        return "", key
    if len(key) > 2:
        for length, compounds in _compound_surnames():
            if key[:length] in compounds:
                return key[:length], key[length:]
    return key[0], key[1:]


@lru_cache(maxsize=65536)
def _char_syllable(char: str, tones: bool) -> str:
    from pypinyin import Style, lazy_pinyin  # once per character: the cache above holds the answer

    return lazy_pinyin(char, style=Style.TONE if tones else Style.NORMAL, errors="default")[0]


def _syllables(text: str, tones: bool) -> list[str]:
    out: list[str] = []
    ascii_run = ""
    for ch in text:
        if ch.isascii():
            ascii_run += ch
            continue
        if ascii_run:
            out.append(ascii_run)
            ascii_run = ""
        out.append(_char_syllable(ch, tones))
    if ascii_run:
        out.append(ascii_run)
    return out


def surname_pinyin(surname: str, tones: bool = False) -> list[str]:
    reading = surname_readings().get(surname)
    if reading is None:
        return _syllables(surname, tones)
    if tones:
        return list(reading)
    return [_strip_tones(s) for s in reading]


@lru_cache(maxsize=4096)
def _strip_tones(syllable: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", syllable) if not unicodedata.combining(c)).replace("ü", "v")


def name_pinyin(name: str, tones: bool = True) -> str:
    """Display pinyin with surname readings: 单田芳 → shàn tián fāng, 尉迟恭 → yù chí gōng."""
    surname, given = split_name(fold(name))
    return " ".join(surname_pinyin(surname, tones) + _syllables(given, tones))


@dataclass(frozen=True, slots=True)
class NameKey:
    """Everything the matcher compares about a name."""

    key: str  # folded characters
    surname: str
    given: str
    py: str  # toneless pinyin, no separators (homophones and traditional forms meet here)
    surname_py: str
    given_py: str


@lru_cache(maxsize=200_000)
def name_key(name: str) -> NameKey | None:
    key = fold(name)
    if not key:
        return None
    surname, given = split_name(key)
    s_py = "".join(surname_pinyin(surname))
    g_py = "".join(_syllables(given, False))
    return NameKey(key, surname, given, s_py + g_py, s_py, g_py)

"""Synthetic Chinese person register with known truth (合成人口登记数据), for training and benchmarks.

Entities get a surname (Faker zh_CN weights, plus polyphonic surnames 单 曾 解 仇 查 区 朴 盖
and compound ones), a one- or two-character given name, sex, birth date, a valid 18-digit ID
number, a mobile phone and an address. About 10% of the rows are duplicates of an entity,
each with at least one realistic corruption: homophone characters, traditional characters,
typos, dropped or swapped characters, missing / 15-digit / mistyped ID numbers, missing,
mistyped, digit-swapped or changed phones, day/month swaps, other address formats and moves.
Hard negatives: twins (same surname, birth date, address and phone; different given name,
often sharing a character, and their own ID numbers) and namesakes born the same day.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import opencc
from faker.providers.address.zh_CN import Provider as AddressProvider
from faker.providers.person.zh_CN import Provider as PersonProvider
from pypinyin import Style, lazy_pinyin

from phip.standard.checks import id_check_char

GIVEN_CHARS = (
    "伟强磊洋勇军杰涛超明刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林欢阳建国峰亮成兵东彬海文博志军晨"
    "芳娜敏静丽艳娟霞秀英华慧巧美娅丹玲桂萍红玉兰梅琳婷雪颖倩琴云莉瑶怡佳欣悦雨涵梓萱子轩诗琪思彤"
    "嘉俊豪鸿振家荣庆春秋冬晓光天立新永德福祥瑞安康乐宏远正清华一鸣航宇泽睿哲铭昊然皓轩浩然子墨"
)
EXTRA_SURNAMES = {"单": 0.05, "曾": 0.6, "解": 0.05, "仇": 0.03, "查": 0.03, "区": 0.02, "朴": 0.03, "盖": 0.02,
                  "欧阳": 0.05, "尉迟": 0.005, "诸葛": 0.01, "司马": 0.01}
DIVISIONS = ("220102", "220103", "220104", "220105", "220106", "220112", "220113", "220122", "220182", "220183",
             "220202", "220203", "220204", "220211", "110101", "110105", "310101", "310104", "440103", "510104")


@dataclass
class SynthRow:
    rec_id: int
    entity: int
    name: str
    sex: str | None
    birth_date: date | None
    id_no: str | None
    phone: str | None
    address: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"rec_id": self.rec_id, "entity": self.entity, "name": self.name, "sex": self.sex,
                "birth_date": self.birth_date, "id_no": self.id_no, "phone": self.phone, "address": self.address}


class Register:
    def __init__(self, seed: int = 7, numbered_after: int = 0):
        """``numbered_after``: persons of a division and birth date are numbered from this + 1,
        so two registers numbering from far apart never give the same valid ID number."""
        self.rng = random.Random(seed)
        names = dict(PersonProvider.last_names)
        names.update(EXTRA_SURNAMES)
        self.surnames = list(names)
        self.surname_weights = list(names.values())
        self.s2t = opencc.OpenCC("s2t.json")
        by_sound: dict[str, list[str]] = defaultdict(list)
        # sorted: a set's order follows PYTHONHASHSEED, and the groups' order feeds rng.choice
        for ch in sorted(set(GIVEN_CHARS + "".join(s for s in self.surnames if len(s) == 1))):
            by_sound[lazy_pinyin(ch, style=Style.NORMAL)[0]].append(ch)
        self.homophones = {ch: [o for o in group if o != ch] for group in by_sound.values() for ch in group}
        self.homophones = {k: v for k, v in self.homophones.items() if v}
        self.provinces = [p for p in AddressProvider.provinces]
        self.cities = list(AddressProvider.cities)
        self.districts = list(AddressProvider.districts)
        self.streets = [self.rng.choice(GIVEN_CHARS) + self.rng.choice(GIVEN_CHARS) + self.rng.choice(("路", "街", "大街", "大道"))
                        for _ in range(400)]
        self._seq: dict[str, int] = defaultdict(lambda: numbered_after)

    # -- entity attributes ---------------------------------------------------------------------------

    def given(self) -> str:
        rng = self.rng
        return "".join(rng.choice(GIVEN_CHARS) for _ in range(1 if rng.random() < 0.25 else 2))

    def id_number(self, division: str, born: date, sex: str) -> str:
        stem = f"{division}{born:%Y%m%d}"
        self._seq[stem] += 1
        n = self._seq[stem]
        # sequence: 2 digits of order + a sex digit (odd male, even female)
        seq = (n % 100) * 10 + (2 * self.rng.randrange(5) + (1 if sex == "1" else 0))
        body = f"{stem}{seq:03d}"
        return body + id_check_char(body)

    def phone(self) -> str:
        return f"1{self.rng.choice('35789')}{self.rng.randrange(10**9):09d}"

    def address(self) -> tuple[str, str, str, str]:
        rng = self.rng
        return (rng.choice(self.provinces), rng.choice(self.cities) + "市", rng.choice(self.districts) + "区",
                f"{rng.choice(self.streets)}{rng.randrange(1, 300)}号{rng.randrange(1, 30)}栋{rng.randrange(1, 6)}单元")

    @staticmethod
    def format_address(parts: tuple[str, str, str, str], style: int, postcode: str) -> str:
        prov, city, dist, street = parts
        if style == 0:
            return f"{prov}{city}{dist}{street}"
        if style == 1:
            return f"{city}{dist}{street}"
        if style == 2:
            return f"{prov} {city} {dist} {street}"
        return f"{postcode} {dist}{street.replace('栋', '幢')}"

    def entity(self, eid: int) -> dict[str, Any]:
        rng = self.rng
        sex = rng.choice("12")
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 93 * 365))
        division = rng.choice(DIVISIONS)
        return {
            "entity": eid, "surname": rng.choices(self.surnames, self.surname_weights)[0], "given": self.given(),
            "sex": sex, "birth_date": born, "division": division, "id_no": self.id_number(division, born, sex),
            "phone": self.phone() if rng.random() > 0.03 else None, "address": self.address(),
            "postcode": f"{rng.randrange(100000, 860000):06d}",
        }

    # -- corruption -------------------------------------------------------------------------------------

    def corrupt_name(self, surname: str, given: str) -> str:
        rng = self.rng
        name = surname + given
        roll = rng.random()
        if roll < 0.35:  # homophone character (同音字)
            spots = [i for i, ch in enumerate(name) if ch in self.homophones]
            if spots:
                i = rng.choice(spots)
                return name[:i] + rng.choice(self.homophones[name[i]]) + name[i + 1:]
        elif roll < 0.60:  # traditional characters (繁体)
            converted = self.s2t.convert(name)
            if converted != name:
                return converted
        elif roll < 0.75 and len(given) > 1:  # given-name characters swapped
            return surname + given[::-1]
        elif roll < 0.85 and len(given) > 1:  # dropped character
            i = rng.randrange(len(given))
            return surname + given[:i] + given[i + 1:]
        i = rng.randrange(len(name))  # typo: another character
        return name[:i] + rng.choice(GIVEN_CHARS) + name[i + 1:]

    def corrupt_id(self, id_no: str) -> str | None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return None
        if roll < 0.25 and id_no[6:8] == "19":
            return id_no[:6] + id_no[8:17]  # old 15-digit form
        if roll < 0.35:
            i = rng.randrange(17)
            return id_no[:i] + str((int(id_no[i]) + rng.randrange(1, 10)) % 10) + id_no[i + 1:]
        if roll < 0.40:
            i = rng.randrange(16)
            return id_no[:i] + id_no[i + 1] + id_no[i] + id_no[i + 2:]
        return id_no

    def corrupt_phone(self, phone: str | None) -> str | None:
        rng = self.rng
        if phone is None:
            return None
        roll = rng.random()
        if roll < 0.25:
            return None
        if roll < 0.35:
            i = rng.randrange(3, 11)
            return phone[:i] + str((int(phone[i]) + rng.randrange(1, 10)) % 10) + phone[i + 1:]
        if roll < 0.45:
            i = rng.randrange(3, 10)
            return phone[:i] + phone[i + 1] + phone[i] + phone[i + 2:]
        if roll < 0.55:
            return self.phone()
        return phone

    def corrupt_dob(self, born: date) -> date:
        rng = self.rng
        if rng.random() < 0.5 and born.day <= 12 and born.day != born.month:
            return date(born.year, born.day, born.month)
        return born + timedelta(days=rng.choice((-1, 1)))

    def duplicate(self, e: dict[str, Any], rec_id: int) -> SynthRow:
        rng = self.rng
        changed = False
        name = e["surname"] + e["given"]
        if rng.random() < 0.5:
            name, changed = self.corrupt_name(e["surname"], e["given"]), True
        id_no = self.corrupt_id(e["id_no"])
        phone = self.corrupt_phone(e["phone"])
        born = e["birth_date"]
        if rng.random() < 0.05:
            born, changed = self.corrupt_dob(born), True
        parts, style = e["address"], 0
        roll = rng.random()
        if roll < 0.10:
            parts, changed = self.address(), True
        elif roll < 0.50:
            style = rng.randrange(1, 4)
        changed |= id_no != e["id_no"] or phone != e["phone"] or style != 0
        sex = e["sex"] if rng.random() > 0.01 else None
        if not changed:  # every duplicate carries at least one corruption
            name = self.corrupt_name(e["surname"], e["given"])
        return SynthRow(rec_id, e["entity"], name, sex, born, id_no, phone, self.format_address(parts, style, e["postcode"]))

    def original(self, e: dict[str, Any], rec_id: int) -> SynthRow:
        return SynthRow(rec_id, e["entity"], e["surname"] + e["given"], e["sex"], e["birth_date"], e["id_no"],
                        e["phone"], self.format_address(e["address"], 0, e["postcode"]))

    # -- the register ---------------------------------------------------------------------------------

    def rows(self, n: int, duplicate_share: float = 0.10, hard_share: float = 0.02) -> list[SynthRow]:
        """n rows: entities (a share of them twins or same-day namesakes) and duplicates of them."""
        rng = self.rng
        n_entities = round(n * (1 - duplicate_share))
        entities: list[dict[str, Any]] = []
        while len(entities) < n_entities:
            e = self.entity(len(entities))
            entities.append(e)
            roll = rng.random()
            if roll < hard_share / 2 and len(entities) < n_entities:  # twin (双胞胎)
                twin = dict(e, entity=len(entities), sex=rng.choice("12"))
                given = e["given"]
                twin["given"] = (given[0] + rng.choice(GIVEN_CHARS)) if len(given) == 2 and rng.random() < 0.7 else self.given()
                if twin["given"] == given:
                    twin["given"] = self.given() + "一"
                twin["id_no"] = self.id_number(e["division"], e["birth_date"], twin["sex"])
                entities.append(twin)
            elif roll < hard_share and len(entities) < n_entities:  # namesake born the same day (同名同生日)
                other = self.entity(len(entities))
                other.update(surname=e["surname"], given=e["given"], birth_date=e["birth_date"])
                other["id_no"] = self.id_number(other["division"], e["birth_date"], other["sex"])
                entities.append(other)
        out = [self.original(e, i) for i, e in enumerate(entities)]
        while len(out) < n:
            out.append(self.duplicate(rng.choice(entities), len(out)))
        rng.shuffle(out)
        return out


def true_pairs(rows: list[SynthRow]) -> int:
    sizes: dict[int, int] = defaultdict(int)
    for r in rows:
        sizes[r.entity] += 1
    return sum(s * (s - 1) // 2 for s in sizes.values())

"""The harder synthetic person set (较难测试集, issue 18): patient master records (患者基本信息,
``patient_info``) of one Chinese population as ~40 institutions send them, with the truth.

Why a second generator: :mod:`phip.empi.synth` makes matching rows for training; this one makes
what hospitals actually upload, so a benchmark can load it through the ingest pipeline the way
a user would and see every record that validation turns away. The cases are the ones real
registers are full of:

* no ID number at all (newborns, elderly people, visitors) and ID numbers left out on one
  record; truncated ID numbers (field cut, Excel); 15-digit old-style numbers (born 19xx);
* twins: same surname, birth date and address, usually the same phone, different given names
  (often sharing a character) and different valid ID numbers;
* namesakes born the same day: same full name and birth date, different people;
* homophone surnames and given names (same toneless pinyin; polyphonic surnames read as
  surnames: 单 shàn, 曾 zēng … from ``data/surnames.csv``, and only given-name characters with
  one reading are swapped), traditional characters (繁体), one other character;
* day and month swapped in the birth date, two adjacent phone digits swapped, missing or new
  phones, moved and shortened addresses.

Reproducible from the seed (no set or hash order reaches the random stream).
:data:`TUNING_SEED` is the seed to develop against; :data:`HELD_OUT_SEED` is the one figures are
reported on and that nothing is tuned on.
"""

from __future__ import annotations

import csv
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from faker.providers.person.zh_CN import Provider as PersonProvider
from pypinyin import Style, lazy_pinyin, pinyin

from phip.orgs.service import SEED as INSTITUTIONS_CSV

from .synth import GIVEN_CHARS, Register

#: Seed to develop and tune against.
TUNING_SEED = 18
#: Held-out seed: benchmark figures are reported on it; never tune on it.
HELD_OUT_SEED = 1807

#: Every case tag a record can carry (see :class:`HardRecord`).
CASES = (
    "no_id_person", "id_missing", "id_truncated", "id_15", "homophone_surname", "homophone_given",
    "traditional", "name_typo", "dob_swapped", "phone_swapped", "phone_missing", "phone_new",
    "address_moved", "address_short", "twin", "namesake", "same_org_again",
)
#: The cases whose record carries no usable resident ID number.
NO_USABLE_ID = frozenset({"no_id_person", "id_missing", "id_truncated"})

#: Given-name characters a clerk may write for one heard (玮 for 伟, 琳 for 霖 …), beside
#: synth's pool and Faker's given names.
HOMOPHONE_POOL = "玮炜薇维卫蔚钢港岗罡垒蕾韬滔焘瑜渝钰昱煜毓琦淇祺麒岚澜兰蓝婕洁杰捷颖莹盈滢萍苹屏彬滨冰媛源圆琳霖临麟辉晖徽慧惠蕙卉凯恺锴铠楷"
#: Surnames (with Faker-like weights) that sound like a polyphonic surname read as a surname:
#: 山 and 善 are shàn like 单 (which pypinyin alone reads dān).
EXTRA_HOMOPHONE_SURNAMES = {"山": 0.01, "善": 0.005}
_FIRST_BIRTH = date(1930, 1, 1)
SURNAMES_CSV = Path(__file__).parent / "data" / "surnames.csv"
#: The platform's clock of the synthetic world: no record is created after it.
WORLD_NOW = datetime(2026, 11, 1, 12, 0, 0)
_LAST_BIRTH = WORLD_NOW.date() - timedelta(days=30)
_BIRTH_DAYS = (_LAST_BIRTH - _FIRST_BIRTH).days


def toneless(syllables: str) -> str:
    """``shàn`` → ``shan``, ``lǘ`` → ``lv`` (pypinyin's NORMAL style spells ü as v)."""
    text = unicodedata.normalize("NFD", syllables.replace("ü", "v").replace("ǖ", "v").replace("ǘ", "v")
                                 .replace("ǚ", "v").replace("ǜ", "v"))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).replace(" ", "")


def institutions(count: int = 40) -> list[tuple[str, str]]:
    """The first ``count`` seed institutions by code (code, name): fixed, whatever the seed."""
    with INSTITUTIONS_CSV.open(encoding="utf-8", newline="") as f:
        rows = sorted((r["code"], r["name"]) for r in csv.DictReader(f))
    return rows[:count]


@dataclass(slots=True)
class HardRecord:
    """One patient_info record as an institution sends it, with its truth."""

    org_code: str
    patient_id: str
    entity: int  # the true person
    cases: tuple[str, ...]
    record: dict[str, Any]  # the standard's field names; dates as text, as JSON carries them


@dataclass
class HardSet:
    records: list[HardRecord]
    twins: list[tuple[int, int]] = field(default_factory=list)  # entity pairs
    namesakes: list[tuple[int, int]] = field(default_factory=list)
    #: entity → its true attributes (surname, given, sex, born, id_no, has_id, phone, address parts)
    people: dict[int, dict[str, Any]] = field(default_factory=dict)

    def case_counts(self) -> Counter[str]:
        return Counter(c for r in self.records for c in r.cases)

    def true_pairs(self) -> int:
        sizes = Counter(r.entity for r in self.records)
        return sum(s * (s - 1) // 2 for s in sizes.values())

    def persons(self) -> int:
        return len({r.entity for r in self.records})


class HardRegister(Register):
    """Entities and their patient_info records; rates are per extra record of a person."""

    def __init__(self, seed: int = TUNING_SEED, n_institutions: int = 40):
        super().__init__(seed)
        for surname, weight in EXTRA_HOMOPHONE_SURNAMES.items():
            if surname not in self.surnames:
                self.surnames.append(surname)
                self.surname_weights.append(weight)
        self.orgs = institutions(n_institutions)
        readings = _surname_readings()
        self.surname_py = {s: readings.get(s) or "".join(lazy_pinyin(s, style=Style.NORMAL)) for s in self.surnames}
        by_sound: dict[str, list[str]] = defaultdict(list)
        for s in self.surnames:  # list order: deterministic
            if len(s) == 1:
                by_sound[self.surname_py[s]].append(s)
        self.surname_homophones = {s: [o for o in group if o != s] for group in by_sound.values() for s in group if len(group) > 1}
        # given-name characters with exactly one reading: a homophone of a polyphone is a guess
        chars = list(dict.fromkeys(GIVEN_CHARS + "".join(PersonProvider.first_names) + HOMOPHONE_POOL))
        single = [c for c in chars if len({toneless(p) for p in pinyin(c, heteronym=True)[0]}) == 1]
        sounds: dict[str, list[str]] = defaultdict(list)
        for c in single:
            sounds[lazy_pinyin(c, style=Style.NORMAL)[0]].append(c)
        self.given_homophones = {c: [o for o in group if o != c] for group in sounds.values() for c in group if len(group) > 1}
        self._local: dict[str, int] = defaultdict(int)

    # -- entities ----------------------------------------------------------------------------------

    def person(self, eid: int) -> dict[str, Any]:
        rng = self.rng
        e = self.entity(eid)
        # born 1930 up to a month ago (synth.Register stops at 2022: no newborns there)
        e["born"] = e["birth_date"] = _FIRST_BIRTH + timedelta(days=rng.randrange(_BIRTH_DAYS))
        e["id_no"] = self.id_number(e["division"], e["born"], e["sex"])
        # newborns mostly have no ID number yet; some adults never give one (visitors, the elderly)
        e["has_id"] = not ((e["born"].year >= 2025 and rng.random() < 0.5) or rng.random() < 0.005)
        e["home_org"] = rng.randrange(len(self.orgs))
        e["orgs"] = {e["home_org"]}
        return e

    def twin_of(self, e: dict[str, Any], eid: int) -> dict[str, Any]:
        rng = self.rng
        twin = dict(e, entity=eid, sex=rng.choice("12"), orgs=set(e["orgs"]))
        given = e["given"]
        while True:
            twin["given"] = (given[0] + rng.choice(GIVEN_CHARS)) if len(given) == 2 and rng.random() < 0.6 else self.given()
            if twin["given"] != given:
                break
        twin["id_no"] = self.id_number(e["division"], e["born"], twin["sex"])
        if rng.random() < 0.3:  # a phone of its own; most twins share the family's
            twin["phone"] = self.phone()
        return twin

    def namesake_of(self, e: dict[str, Any], eid: int) -> dict[str, Any]:
        other = self.person(eid)
        other.update(surname=e["surname"], given=e["given"], sex=e["sex"], born=e["born"], birth_date=e["born"])
        other["id_no"] = self.id_number(other["division"], e["born"], e["sex"])
        return other

    # -- corruption ---------------------------------------------------------------------------------

    def name_variant(self, surname: str, given: str) -> tuple[str, str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.30 and surname in self.surname_homophones:
            return rng.choice(self.surname_homophones[surname]) + given, "homophone_surname"
        if roll < 0.60:
            spots = [i for i, ch in enumerate(given) if ch in self.given_homophones]
            if spots:
                i = rng.choice(spots)
                return surname + given[:i] + rng.choice(self.given_homophones[given[i]]) + given[i + 1:], "homophone_given"
        if roll < 0.85:
            converted = self.s2t.convert(surname + given)
            if converted != surname + given:
                return converted, "traditional"
        i = rng.randrange(len(given))
        other = rng.choice([c for c in GIVEN_CHARS if c != given[i]])
        return surname + given[:i] + other + given[i + 1:], "name_typo"

    def id_variant(self, e: dict[str, Any]) -> tuple[str | None, str | None]:
        rng = self.rng
        id_no = e["id_no"]
        roll = rng.random()
        if roll < 0.10:
            return None, "id_missing"
        if roll < 0.14:  # cut short: never to 15 (that would read as an old-style number)
            return id_no[: rng.choice((6, 10, 12, 14, 16, 17))], "id_truncated"
        if roll < 0.26 and e["born"].year < 2000:
            return id_no[:6] + id_no[8:17], "id_15"  # GB 11643's upgrade gives back the 18-digit form
        return id_no, None

    def phone_variant(self, phone: str | None) -> tuple[str | None, str | None]:
        rng = self.rng
        if phone is None:
            return None, None
        roll = rng.random()
        if roll < 0.20:
            return None, "phone_missing"
        if roll < 0.28:
            i = rng.randrange(3, 10)
            if phone[i] != phone[i + 1]:
                return phone[:i] + phone[i + 1] + phone[i] + phone[i + 2:], "phone_swapped"
        if roll < 0.32:
            return self.phone(), "phone_new"
        return phone, None

    def address_variant(self, e: dict[str, Any]) -> tuple[tuple[str, str, str, str], int, str | None]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            return self.address(), 0, "address_moved"
        if roll < 0.38:
            return e["address"], rng.choice((1, 4, 5)), "address_short"
        return e["address"], 0, None

    # -- records ------------------------------------------------------------------------------------

    def record(self, e: dict[str, Any], first: bool, org: int | None = None) -> HardRecord:
        rng = self.rng
        cases: list[str] = []
        surname, given, born = e["surname"], e["given"], e["born"]
        name, id_no, phone = surname + given, e["id_no"], e["phone"]
        parts, style = e["address"], 0
        if e.get("twin"):
            cases.append("twin")
        if e.get("namesake"):
            cases.append("namesake")
        if not first:
            changed = []
            if rng.random() < 0.5:
                name, case = self.name_variant(surname, given)
                changed.append(case)
            if rng.random() < 0.04 and born.day <= 12 and born.day != born.month \
                    and date(born.year, born.day, born.month) < _LAST_BIRTH:
                born = date(born.year, born.day, born.month)
                changed.append("dob_swapped")
            if e["has_id"]:
                id_no, case = self.id_variant(e)
                changed.append(case)
            phone, case = self.phone_variant(phone)
            changed.append(case)
            parts, style, case = self.address_variant(e)
            changed.append(case)
            changed = [c for c in changed if c]
            if not changed:  # every further record differs somehow, as real ones do
                name, case = self.name_variant(surname, given)
                changed.append(case)
            cases += changed
        if not e["has_id"]:
            id_no = None
            cases.append("no_id_person")
        if phone is None and "phone_missing" not in cases:
            cases.append("phone_missing")
        if org is None:  # a first record at the home institution, further ones elsewhere
            others = [i for i in range(len(self.orgs)) if i not in e["orgs"]] or list(range(len(self.orgs)))
            org = e["home_org"] if first else rng.choice(others)
        e["orgs"].add(org)
        code, org_name = self.orgs[org]
        self._local[code] += 1
        patient_id = f"{code[-4:]}{self._local[code]:07d}"
        created = self.created(born)
        rec: dict[str, Any] = {
            "org_code": code, "org_name": org_name, "patient_id": patient_id,
            "outpatient_no": f"MZ{self._local[code]:08d}", "name": name, "sex_code": e["sex"],
            "birth_date": born.isoformat(), "id_type_code": "01",
            "ethnicity_code": "01", "nationality_code": "CHN",
            "create_time": created.isoformat(sep=" "),
            "update_time": (created + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))).isoformat(sep=" "),
        }
        if id_no is not None:
            rec["id_no"] = id_no
        elif rng.random() < 0.5:
            rec["id_no"] = ""  # an empty column, as a CSV export sends it
        if phone is not None:
            rec["phone"] = phone
        rec["current_address"] = self.format_address(parts, style, e["postcode"])
        if style == 0 and rng.random() < 0.5:
            rec.update(current_province=parts[0], current_city=parts[1], current_county=parts[2])
        return HardRecord(code, patient_id, e["entity"], tuple(cases), rec)

    @staticmethod
    def format_address(parts: tuple[str, str, str, str], style: int, postcode: str) -> str:
        if style == 4:  # district and street only
            return f"{parts[2]}{parts[3]}"
        if style == 5:  # street, house and flat only (written at a counter in the same town)
            return parts[3]
        return Register.format_address(parts, style, postcode)

    def created(self, born: date) -> datetime:
        start = max(datetime(2015, 1, 1), datetime.combine(born, datetime.min.time()) + timedelta(days=1))
        span = int((WORLD_NOW - start).total_seconds()) - 60 * 60 * 24 * 31
        return start + timedelta(seconds=self.rng.randrange(max(span, 1)))

    # -- the set ---------------------------------------------------------------------------------------

    def build(self, n: int, extra_share: float = 0.12, twin_share: float = 0.004, namesake_share: float = 0.004) -> HardSet:
        """About ``n`` records: ``1 - extra_share`` of them a person's first record, the rest
        further records of a person (at other institutions, or again at the same one); twins
        and same-day namesakes are planted in pairs among the persons."""
        rng = self.rng
        n_persons = round(n * (1 - extra_share))
        persons: list[dict[str, Any]] = []
        twins: list[tuple[int, int]] = []
        namesakes: list[tuple[int, int]] = []
        while len(persons) < n_persons:
            e = self.person(len(persons))
            persons.append(e)
            roll = rng.random()
            if len(persons) >= n_persons:
                break
            if roll < twin_share / 2:
                t = self.twin_of(e, len(persons))
                e["twin"] = t["twin"] = True
                twins.append((e["entity"], t["entity"]))
                persons.append(t)
            elif roll < (twin_share + namesake_share) / 2:
                o = self.namesake_of(e, len(persons))
                e["namesake"] = o["namesake"] = True
                namesakes.append((e["entity"], o["entity"]))
                persons.append(o)
        records = [self.record(e, True) for e in persons]
        # hard negatives get further records more often: that is where matching can go wrong
        hard = [e for e in persons if e.get("twin") or e.get("namesake") or not e["has_id"]]
        while len(records) < n:
            e = rng.choice(hard) if hard and rng.random() < 0.1 else rng.choice(persons)
            if rng.random() < 0.03:  # registered again at the same hospital (a new local patient id)
                r = self.record(e, False, org=e["home_org"])
                r = HardRecord(r.org_code, r.patient_id, r.entity, (*r.cases, "same_org_again"), r.record)
            else:
                r = self.record(e, False)
            records.append(r)
        rng.shuffle(records)
        keep = ("surname", "given", "sex", "born", "id_no", "has_id", "phone", "address", "postcode")
        return HardSet(records, twins, namesakes, {e["entity"]: {k: e[k] for k in keep} for e in persons})


def _surname_readings() -> dict[str, str]:
    """Surname → toneless pinyin as a surname (单 shan, 曾 zeng …), from the EMPI's table."""
    with SURNAMES_CSV.open(encoding="utf-8", newline="") as f:
        return {r["surname"]: toneless(r["pinyin"]) for r in csv.DictReader(f)}


def hard_set(n: int, seed: int = TUNING_SEED) -> HardSet:
    """The harder set of about ``n`` records from ``seed`` (see :data:`HELD_OUT_SEED`)."""
    return HardRegister(seed).build(n)


__all__ = ["CASES", "HELD_OUT_SEED", "NO_USABLE_ID", "TUNING_SEED", "HardRecord", "HardRegister", "HardSet", "hard_set",
           "institutions"]

"""The pipeline's person resolver (实时患者识别): exact on identifiers, guarded, else probabilistic.

Per batch, with a handful of set-based queries whatever the batch size:

1. one lookup of every identifier the batch carries (``value IN (…)``) and one read of the
   persons found (their golden name and birth date for the guard);
2. a record with a valid ID number that is known links to its person — unless the name or
   birth date is incompatible with that person: then the record goes to a provisional person,
   a review item (``id_conflict``) is queued and the record carries the warning
   ``EMPI_ID_CONFLICT``; never a silent link;
3. a record whose other identifiers (health card, insurance, passport, the institution's own
   patient id) are known links to that person; a new valid ID number creates a person;
4. the rest (no strong key) are matched probabilistically: one ``key IN (…)`` on the
   candidate index, one read of the candidates, Fellegi–Sunter scoring in Python with the
   stored model: link above the upper threshold, review item between the two, new person below;
5. new persons, their index keys and identifiers are written with bulk inserts; persons whose
   golden values changed (a newer trustworthy value) are updated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, select

from phip.ingest.identity import Resolution, new_person_id
from phip.ingest.keys import record_key
from phip.standard.catalog import DataSet
from phip.standard.validate import Finding, finding
from phip.store.sql import insert_ignoring_conflicts

from . import golden, identity_guard
from .features import block_keys, match_row, record_demographics
from .identifiers import IdentifierKey, other_century, record_identifiers
from .model import COMPARISONS, Model, default_model
from .review_queue import pair_key
from .store import (
    blocks_to_persons, insert_identifiers, insert_persons, load_person_details, load_persons, lock_shared, lookup_identifiers,
    update_persons,
)
from .tables import EmpiModel, EmpiReview

_NAME = next(i for i, c in enumerate(COMPARISONS) if c.name == "name")
_DOB = next(i for i, c in enumerate(COMPARISONS) if c.name == "dob")
_MODEL_TTL = 60.0


def guard(model: Model, record_row: dict[str, Any], person_row: dict[str, Any]) -> list[str]:
    """The fields on which a record contradicts the person its ID number names ([] = compatible).
    Compatible means any name level but "different" (typos, homophones, traditional forms pass)
    and a birth date that is equal, missing or one keystroke away. A given name that differs
    outright is still compatible when the surname, the sex and the whole birth date agree: a
    one-character given name typed with another character (张伟 as 张炜 is a homophone, 张伟 as
    张传 is not) sent 593 of 100,000 records of the harder set to review and kept them apart;
    someone else's number with the same surname, sex and birthday is a same-sex twin's."""
    problems = []
    if record_row.get("name_key") and person_row.get("name_key"):
        if model.level_of(_NAME, record_row, person_row) == len(COMPARISONS[_NAME].levels) - 1 \
                and not _same_family_same_day(record_row, person_row):
            problems.append("name")
    if record_row.get("dob") and person_row.get("dob"):
        if model.level_of(_DOB, record_row, person_row) > 2:
            problems.append("birth_date")
    return problems


def _same_family_same_day(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a.get("surname_py") and a.get("surname_py") == b.get("surname_py")
                and a.get("dob") and a.get("dob") == b.get("dob")
                and (a.get("sex") is None or b.get("sex") is None or a.get("sex") == b.get("sex")))


class EmpiResolver:
    """Default resolver of the ingest pipeline (satisfies ``ingest.identity.PersonResolver``)."""

    def __init__(self, model: Model | None = None):
        self._fixed = model
        self._model: Model | None = model
        self._loaded_at = 0.0

    def model(self, conn: Connection) -> Model:
        if self._fixed is not None:
            return self._fixed
        if self._model is None or time.monotonic() - self._loaded_at > _MODEL_TTL:
            self._model = load_active_model(conn)
            self._loaded_at = time.monotonic()
        return self._model

    def reload(self) -> None:
        self._loaded_at = 0.0

    def resolve(
        self, conn: Connection, org_code: str, dataset: DataSet, records: Sequence[dict[str, Any]], now: datetime
    ) -> Resolution:
        if not dataset.person:
            return Resolution([None] * len(records))
        lock_shared(conn)
        return _Batch(self.model(conn), conn, org_code, dataset, records, now).run()


class _Batch:
    def __init__(self, model: Model, conn: Connection, org_code: str, dataset: DataSet,
                 records: Sequence[dict[str, Any]], now: datetime):
        self.model, self.conn, self.org, self.dataset, self.records, self.now = model, conn, org_code, dataset, records, now
        self.result: list[str | None] = [None] * len(records)
        self.findings: dict[int, list[Finding]] = {}
        self.known: dict[IdentifierKey, str] = {}
        self.persons: dict[str, dict[str, Any]] = {}  # golden rows of every person touched
        self.new_persons: dict[str, dict[str, Any]] = {}
        self.new_blocks: dict[str, list[str]] = {}
        self.changed: set[str] = set()
        self.new_ids: dict[IdentifierKey, str] = {}
        self.reviews: list[dict[str, Any]] = []
        self.batch_index: dict[str, list[str]] = {}  # blocking key -> new persons of this batch
        self._demo: list[dict[str, Any] | None] = [None] * len(records)
        self._same: list[str | None] = [None] * len(records)  # see _touched
        self._claims: list[frozenset[identity_guard.Claim]] = []
        self.holds: dict[str, set[identity_guard.Claim]] = {}  # identity guard: what a person holds

    # -- steps --------------------------------------------------------------------------------

    def run(self) -> Resolution:
        per_record = [record_identifiers(self.org, self.dataset, r) for r in self.records]
        alternatives = self._other_centuries(per_record)
        self.known = lookup_identifiers(self.conn, {k for keys in per_record for k in keys} | set(alternatives.values()))
        for i, alt in alternatives.items():
            if per_record[i][0] not in self.known and alt in self.known:
                # a 15-digit number whose other century another record of the person carries
                per_record[i][0] = alt
                self._demographics(i)["id_no"] = alt[2]
        # Light rows first: most records of a known person state nothing new about them, and
        # the JSON columns are most of the read. Persons a record may change or contradict
        # get their full rows in one more query.
        self.persons = load_persons(self.conn, set(self.known.values()), light=True) if self.known else {}
        self._complete(self._touched(per_record))
        self._claims = [identity_guard.claims(keys) for keys in per_record]
        self._load_holds(self._guarded_targets(per_record))
        deferred: list[int] = []
        same, changed = self._same, self.changed
        for i, keys in enumerate(per_record):
            holder = same[i]
            if holder is not None and holder not in changed:
                self.result[i] = holder  # what _exact would conclude, without its steps
            elif not self._exact(i, keys):
                deferred.append(i)
        if deferred:
            self._probabilistic(deferred, per_record)
        self._write()
        return Resolution(self.result, self.findings)

    def _other_centuries(self, per_record: list[list[IdentifierKey]]) -> dict[int, IdentifierKey]:
        """Records stating a 15-digit ID number: the key of its other century's 18-digit form."""
        field = self.dataset.person.get("id_no")
        out: dict[int, IdentifierKey] = {}
        if not field:
            return out
        for i, keys in enumerate(per_record):
            raw = self.records[i].get(field)
            if keys and keys[0][0] == "id_no" and isinstance(raw, str) and len(raw.strip()) == 15:
                if alt := other_century(raw, keys[0][2]):
                    out[i] = ("id_no", "", alt)
        return out

    def _touched(self, per_record: list[list[IdentifierKey]]) -> set[str]:
        """Known persons whose stored values some record of the batch differs from (the ID
        number guard or survivorship will read their matching row or field sources).

        Also notes, in ``_same``, the records that need no resolving at all, most of a
        stream of repeat visits: every identifier they carry is known and names one person,
        and they state nothing about that person that differs from the stored values. The
        exact path would link them and change nothing; the loop in :meth:`run` links them
        directly, unless an earlier record of the batch has changed that person."""
        touched: set[str] = set()
        known, persons, same = self.known, self.persons, self._same
        for i, keys in enumerate(per_record):
            holder = None
            unanimous = True
            for key in keys:
                pid = known.get(key)
                if pid is None or (holder is not None and pid != holder):
                    unanimous = False
                if holder is None:
                    holder = pid
            if holder is None:
                continue
            person = persons.get(holder)
            if person is None:
                continue
            for f, v in self._demographics(i).items():  # a loop, not any(): no generator per record
                if v is not None and v != person.get(f):
                    touched.add(holder)
                    break
            else:
                if unanimous:
                    same[i] = holder
        return touched

    def _guarded_targets(self, per_record: list[list[IdentifierKey]]) -> set[str]:
        """Known persons a record with a guarded identifier (valid ID number, health card) may be
        linked to, unless all its guarded identifiers are already registered to that one person
        (then nothing new joins it: the usual repeat visit needs no read)."""
        known, out = self.known, set()
        for keys, claims in zip(per_record, self._claims, strict=True):
            if not claims:
                continue
            pids = {known[k] for k in keys if k in known}
            if len(pids) == 1 and all(known.get(c) in pids for c in claims):
                continue
            out |= pids
        return out

    def _load_holds(self, pids: set[str] | list[str]) -> None:
        wanted = [p for p in pids if p not in self.holds and p not in self.new_persons]
        if wanted:
            self.holds.update(identity_guard.held(self.conn, wanted))

    def _clash(self, i: int, pid: str) -> list[str]:
        """The guarded kinds on which record i and person pid disagree ([] = it may join)."""
        claims = self._claims[i]
        if not claims:
            return []
        known = self.known
        if all(known.get(c) == pid for c in claims):
            return []  # all registered to the person already: the record brings nothing new
        if pid not in self.holds:
            self._load_holds([pid])
        return identity_guard.clash(self.holds.get(pid, ()), claims)

    def _complete(self, pids: set[str] | list[str]) -> None:
        """Read the JSON columns of persons loaded light."""
        wanted = [p for p in pids if p in self.persons and "match" not in self.persons[p]]
        if wanted:
            for pid, details in load_person_details(self.conn, wanted).items():
                self.persons[pid].update(details)

    def _demographics(self, i: int) -> dict[str, Any]:
        """The record's golden-field values, read once (the exact path, survivorship and the
        probabilistic path all look at them)."""
        demo = self._demo[i]
        if demo is None:
            demo = self._demo[i] = record_demographics(self.dataset, self.records[i])
        return demo

    def _exact(self, i: int, keys: list[IdentifierKey]) -> bool:
        """Resolve record i on its identifiers; False when it needs probabilistic matching."""
        id_key = keys[0] if keys and keys[0][0] == "id_no" else None  # strongest first: an ID number leads
        if id_key is not None and id_key in self.known:
            holder = self.known[id_key]
            demo = self._demographics(i)
            person = self.persons[holder]
            cards = [k for k in self._clash(i, holder) if k != "id_no"]  # e.g. another health card
            if not cards and demo["name"] in (None, person["name"]) and demo["birth_date"] in (None, person["birth_date"]):
                self._link(i, holder, keys)  # the common case: exactly what the person is known as
                return True
            row = match_row(demo["name"], demo["sex"], demo["birth_date"], None, None, None)
            problems = guard(self.model, row, self._person(holder)["match"] or {}) + cards
            if not problems:
                self._link(i, holder, keys)
                return True
            self._conflict(i, holder, problems)
            others = [k for k in keys if k != id_key]
            target = next((self.known[k] for k in others if k in self.known and self.known[k] != holder), None)
            if target is None or self._clash(i, target):
                target = self._create(i, demo_without_id(demo))
            self._link(i, target, others, observe=False)
            self.reviews.append(self._review("id_conflict", target, holder, i))
            return True
        person_id = next((self.known[k] for k in keys if k in self.known), None)
        if person_id is not None:
            if not self._clash(i, person_id):
                self._link(i, person_id, keys)
                return True
            # the person this record's patient id (or card) names holds another ID number or card:
            # never joined; a new person with the record's own identifiers, and a reviewer looks
            target = self._create(i, self._demographics(i) if id_key else demo_without_id(self._demographics(i)))
            self._link(i, target, keys, observe=False)
            self.reviews.append(self._review("id_conflict", target, person_id, i))
            return True
        if id_key is not None:  # a valid ID number seen for the first time: a new person, no guessing
            self._link(i, self._create(i, self._demographics(i)), keys, observe=False)
            return True
        return False

    def _probabilistic(self, deferred: list[int], per_record: list[list[IdentifierKey]]) -> None:
        rows: dict[int, dict[str, Any]] = {}
        for i in deferred:
            demo = self._demographics(i)
            rows[i] = match_row(demo["name"], demo["sex"], demo["birth_date"], demo["id_no"], demo["phone"], demo["address"])
        stored = blocks_to_persons(self.conn, {k for row in rows.values() for k in block_keys(row)})
        candidates = {p for ps in stored.values() for p in ps}
        missing = candidates - self.persons.keys()
        if missing:
            self.persons.update(load_persons(self.conn, missing))
        self._complete(candidates)
        guarded = [i for i in deferred if self._claims[i]]
        if guarded:  # candidates a record with a health card could join: what they hold
            self._load_holds({p for i in guarded for key in block_keys(rows[i]) for p in stored.get(key, ())})
        for i in deferred:
            keys = per_record[i]
            person_id = next((self.known[k] for k in keys if k in self.known), None)
            if person_id is not None and not self._clash(i, person_id):
                self._link(i, person_id, keys)  # an earlier record of this batch registered the identifier
                continue
            row = rows[i]
            if not row["name_key"]:
                # nothing to match on: an institution patient id alone still makes a person
                if keys:
                    self._link(i, self._create(i, self._demographics(i)), keys, observe=False)
                continue
            best, best_p, best_w = None, 0.0, 0.0
            seen: set[str] = set()
            for key in block_keys(row):
                for pid in [*stored.get(key, ()), *self.batch_index.get(key, ())]:
                    person = self.persons.get(pid)
                    if pid in seen or person is None or person["status"] != "active" or not person["match"]:
                        continue
                    seen.add(pid)
                    if self._clash(i, pid):
                        continue  # never a candidate: it holds another ID number or card
                    weight, prob = self.model.score(row, person["match"])
                    if prob > best_p:
                        best, best_p, best_w = pid, prob, weight
            if best is not None and best_p >= self.model.link_threshold:
                self._link(i, best, keys)
                continue
            person_id = self._create(i, self._demographics(i))
            self._link(i, person_id, keys, observe=False)
            if best is not None and best_p >= self.model.review_threshold:
                self.reviews.append(self._review("possible_match", person_id, best, i, row, best_p, best_w))

    # -- helpers ---------------------------------------------------------------------------------

    def _person(self, pid: str) -> dict[str, Any]:
        """A person's full row (completed here when it was loaded light and not foreseen)."""
        person = self.persons[pid]
        if "match" not in person:
            self._complete([pid])
        return person

    def _event_time(self, i: int) -> date | datetime | None:
        value = self.records[i].get(self.dataset.event_time)
        return value if isinstance(value, date) else None

    def _source(self, i: int) -> dict[str, Any]:
        return golden.source_of(self.org, self.dataset.code, self._event_time(i) or self.now)

    def _create(self, i: int, demo: dict[str, Any]) -> str:
        pid = new_person_id()
        values, sources, _ = golden.survive({}, {}, demo, self._source(i))
        columns, keys = golden.person_row(values)
        person = {"id": pid, "created_at": self.now, "updated_at": self.now, "status": "active",
                  "merged_into": None, **columns, "sources": sources}
        self.persons[pid] = person
        self.new_persons[pid] = person
        self.holds[pid] = set()
        self.new_blocks[pid] = keys
        for key in keys:
            self.batch_index.setdefault(key, []).append(pid)
        return pid

    def _link(self, i: int, pid: str, keys: list[IdentifierKey], observe: bool = True) -> None:
        self.result[i] = pid
        if self._claims[i] and pid in self.holds:
            self.holds[pid] |= self._claims[i]  # the record's, even a number registered to another
        for key in keys:
            if key not in self.known:
                self.known[key] = pid
                self.new_ids[key] = pid
        if observe:
            self._observe(i, pid)

    def _observe(self, i: int, pid: str) -> None:
        """Survivorship: fold the record's demographics into the person's golden record."""
        person = self.persons.get(pid)
        if person is None:
            return
        for f, v in self._demographics(i).items():  # a loop, not all(): no generator per record
            if v is not None and v != person.get(f):
                break
        else:
            return  # nothing new: the usual repeat visit
        demo = self._demographics(i)
        person = self._person(pid)
        values, sources, changed = golden.survive(person, person.get("sources"), demo, self._source(i))
        if not changed:
            return
        columns, keys = golden.person_row(values)
        person.update(columns, sources=sources)
        if pid in self.new_persons:
            self.new_blocks[pid] = keys
        else:
            self.changed.add(pid)
            self.new_blocks[pid] = keys

    def _conflict(self, i: int, holder: str, problems: list[str]) -> None:
        what = "和".join({"name": "姓名", "birth_date": "出生日期", "health_card": "健康卡号"}[p] for p in problems)
        label = next((f.label for f in self.dataset.fields if f.name == self.dataset.person.get("id_no")), "身份证件号码")
        self.findings.setdefault(i, []).append(
            finding("EMPI_ID_CONFLICT", self.dataset.person.get("id_no"), label=label, what=what))

    def _review(self, kind: str, person_id: str, candidate_id: str, i: int, row: dict[str, Any] | None = None,
                prob: float | None = None, weight: float | None = None) -> dict[str, Any]:
        """A review item; the evidence compares the record's full matching row (ID number, phone
        and address included, whatever made the pair) with the candidate's golden one."""
        other = self._person(candidate_id)["match"] or {}
        if row is None:
            demo = self._demographics(i)
            row = match_row(demo["name"], demo["sex"], demo["birth_date"], demo["id_no"], demo["phone"], demo["address"])
        if weight is None:
            weight, prob = self.model.score(row, other)
        return {
            "kind": kind, "status": "pending", "pair_key": pair_key(kind, person_id, candidate_id),
            "person_id": person_id, "candidate_id": candidate_id, "probability": prob, "weight": weight,
            "evidence": [e.as_dict() for e in self.model.evidence(row, other)], "org_code": self.org,
            "dataset": self.dataset.code, "record_key": record_key(self.dataset, self.records[i])[:200],
            "created_at": self.now,
        }

    def _write(self) -> None:
        conn = self.conn
        if self.new_persons:
            insert_persons(conn, list(self.new_persons.values()), {p: self.new_blocks[p] for p in self.new_persons})
        if self.changed:
            cols = ("name", "sex", "birth_date", "id_no", "phone", "address", "match", "sources")
            update_persons(conn, [{"pid": p, **{c: self.persons[p][c] for c in cols}} for p in sorted(self.changed)],
                           {p: self.new_blocks[p] for p in self.changed}, self.now)
        moved = insert_identifiers(conn, self.new_ids, self.now)
        if moved:
            # another batch registered some identifiers a moment ago: the stored mapping wins
            remap = {self.new_ids[k]: p for k, p in moved.items()}
            self.result = [remap.get(p, p) if p else p for p in self.result]
        if self.reviews:
            unique = {r["pair_key"]: r for r in self.reviews}
            conn.execute(insert_ignoring_conflicts(conn, EmpiReview.__table__), list(unique.values()))


def demo_without_id(demo: dict[str, Any]) -> dict[str, Any]:
    return {**demo, "id_no": None}


def load_active_model(conn: Connection) -> Model:
    m = EmpiModel.__table__
    row = conn.execute(
        select(m.c.settings, m.c.link_threshold, m.c.review_threshold).where(m.c.active.is_(True)).order_by(m.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return default_model()
    return Model(row.settings, row.link_threshold, row.review_threshold)

"""Synthetic, internally consistent hospital data for every data set of the standard.

The generator is driven by the standard itself: a field is filled from the *context* when
its name is a shared one (the patient's ``id_no``, the encounter's ``visit_no`` …) and from
its type, value domain and ``gen`` hint otherwise. So a field added to the standard is
generated without touching this module, and every record a clean run produces passes
validation (a test checks that for all 72 data sets).

Consistency: patients have valid GB 11643 ID numbers whose birth date and sex digit agree
with the record; outpatient visits and inpatient stays point to their patients; encounter
records (prescriptions, fees, orders, lab and exam reports, EMR and nursing documents) point
to their encounter through ``visit_no``; paired times are in order. Output is reproducible
from a seed.

Resident health records (category ``public_health``: basic information, management enrolment,
hypertension and diabetes follow-ups) are not hospital activity: :meth:`Generator.day` leaves
them out and :meth:`Generator.public_health` writes a primary-care institution's residents
over a span of days, with several follow-ups a year per managed patient and some below four.

``error_rate`` plants known errors; each planted error is reported as a :class:`Planted`
(data set, index, expected finding code), so tests can check that each is found.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from faker import Faker

from phip.standard.catalog import DataSet, FieldSpec, Standard, load_standard
from phip.standard.checks import id_check_char, uscc_check_char

from . import vocab

ENCOUNTER_OUT = {"outpatient", "prescription", "fee", "lab_exam"}
ENCOUNTER_IN = {"inpatient", "emr", "surgery", "obstetrics", "nursing", "consent"}
#: data sets generated once per encounter with several items (min, max items).
ITEMS = {
    "western_prescription": (1, 4), "tcm_prescription": (4, 8), "fee_detail": (2, 6), "lab_report": (3, 8),
    "outpatient_order": (1, 3), "inpatient_order": (3, 8), "vital_signs": (2, 4), "progress_note": (1, 3),
    "general_nursing": (1, 3), "intake_output": (1, 2), "treatment_record": (1, 2),
}
#: share of outpatient visits that carry records of each data set.
OUT_SHARE = {
    "outpatient_registration": 1.0, "western_prescription": 0.6, "tcm_prescription": 0.1, "fee_detail": 1.0,
    "lab_report": 0.3, "exam_report": 0.15, "outpatient_order": 0.4, "emergency_observation": 0.03,
    "appointment": 0.4, "health_checkup": 0.02,
}
#: inpatient data sets every discharged stay carries (quality checks expect these companions).
IN_SHARE = {"front_page": 1.0, "discharge_summary": 1.0}
PUBLIC_HEALTH = "public_health"
#: chronic diseases under management: (disease code, follow-up data set, share of residents).
MANAGED = (("1", "hypertension_followup", 0.3), ("2", "diabetes_followup", 0.12))
CHRONIC_DRUGS = {
    "hypertension_followup": ("苯磺酸氨氯地平片 5mg 每日一次", "厄贝沙坦片 150mg 每日一次", "硝苯地平控释片 30mg 每日一次"),
    "diabetes_followup": ("盐酸二甲双胍片 0.5g 每日三次", "格列美脲片 2mg 每日一次", "阿卡波糖片 50mg 每日三次"),
}


@dataclass
class Patient:
    org_code: str
    patient_id: str
    name: str
    sex_code: str
    birth_date: date
    id_no: str
    phone: str
    address: str
    division: str
    health_card_no: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Encounter:
    visit_no: str
    patient: Patient
    kind: str  # out | in
    start: datetime
    end: datetime
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Planted:
    dataset: str
    index: int
    code: str
    field: str | None
    key: str | None = None  # natural key of the planted record (quality plants)
    #: Whether validation must reject the record (its key or event time is hit) or store it
    #: with a warning (any other field; docs/standard.md).
    rejected: bool = False


class Generator:
    def __init__(self, seed: int = 1, standard: Standard | None = None, error_rate: float = 0.0):
        self.standard = standard or load_standard()
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.error_rate = error_rate
        self.planted: list[Planted] = []
        self._aside: set[int] = set()  # ids of records drawn from a side stream (never planted, keeps seeds stable)
        self._counters: dict[str, int] = {}
        self._names = [self.fake.name() for _ in range(400)]
        self._addresses = [(self.fake.province(), self.fake.city_name(), self.fake.district(), self.fake.street_address()) for _ in range(200)]
        self._companies = [self.fake.company() for _ in range(50)]
        self._doctors = [(f"D{1000 + i}", self.fake.name()) for i in range(40)]

    # -- building blocks ----------------------------------------------------------------

    def serial(self, prefix: str) -> str:
        n = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = n
        return f"{prefix}{n:08d}"

    def phone(self) -> str:
        return f"1{self.rng.choice('3578')}{self.rng.randrange(10**9):09d}"

    def id_number(self, division: str, born: date, sex: str) -> str:
        seq = self.rng.randrange(0, 100) * 10 + (self.rng.choice((1, 3, 5, 7, 9)) if sex == "1" else self.rng.choice((0, 2, 4, 6, 8)))
        body = f"{division}{born:%Y%m%d}{seq:03d}"
        return body + id_check_char(body)

    def patient(self, org_code: str, county: str = "220102") -> Patient:
        rng = self.rng
        sex = rng.choice(("1", "2"))
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 93 * 365))
        name = self.fake.name_male() if sex == "1" else self.fake.name_female()
        province, city, district, street = rng.choice(self._addresses)
        pid = self.serial("P")
        p = Patient(
            org_code, pid, name, sex, born, self.id_number(county, born, sex), self.phone(),
            f"{province}{city}{district}{street}", county, f"HC{rng.randrange(10**15):015d}",
        )
        p.fields = {
            "patient_id": pid, "name": name, "sex_code": sex, "birth_date": born, "id_type_code": "01",
            "id_no": p.id_no, "phone": p.phone, "health_card_no": p.health_card_no, "ethnicity_code": rng.choice(("01",) * 8 + ("10", "11", "03")),
            "nationality_code": "CHN", "marital_status_code": rng.choice(("10", "20", "20", "20", "30", "40")),
            "occupation_code": rng.choice(("13", "17", "24", "27", "31", "80", "90")),
            "current_province": province, "current_city": city, "current_county": district,
            "current_address": p.address, "household_address": p.address, "current_division_code": county,
            "household_division_code": county, "birthplace_division_code": county,
            "postcode": f"{rng.randrange(130000, 139999)}", "contact_name": rng.choice(self._names),
            "contact_relation_code": rng.choice(("1", "2", "3", "5")), "contact_phone": self.phone(),
            "insurance_type_code": rng.choice(("1", "2", "3")), "insurance_no": f"{county}{rng.randrange(10**10):010d}",
            "outpatient_no": f"MZ{pid[1:]}", "inpatient_no": f"ZY{pid[1:]}",
        }
        return p

    def encounter(self, patient: Patient, kind: str, day: date, now: datetime) -> Encounter:
        rng = self.rng
        dept_code, dept_name, category = rng.choice(vocab.DEPARTMENTS)
        doctor_id, doctor_name = rng.choice(self._doctors)
        nurse_id, nurse_name = rng.choice(self._doctors)
        start = datetime.combine(day, time(7, 30)) + timedelta(minutes=rng.randrange(0, 10 * 60))
        if kind == "out":
            end = start + timedelta(minutes=rng.randrange(5, 40))
        else:
            end = start + timedelta(days=rng.randrange(2, 12), minutes=rng.randrange(0, 600))
        latest = now - timedelta(minutes=1)
        if end > latest:  # an encounter still going on today: keep every time in the past
            span = end - start
            end = latest
            start = max(datetime.combine(day, time(0, 1)), end - span)
            room = int((end - start).total_seconds() // 60)
            if room > 2 and start == datetime.combine(day, time(0, 1)):  # spread clamped starts: no twin admissions
                aside = random.Random(f"{patient.patient_id}/{self._counters.get('ZY', 0)}")  # main stream untouched
                start += timedelta(minutes=aside.randrange(0, room - 1))
        dx_code, dx_name = rng.choice(vocab.DIAGNOSES)
        visit_no = self.serial("MZ" if kind == "out" else "ZY")
        age = (start.date() - patient.birth_date).days // 365
        e = Encounter(visit_no, patient, kind, start, end)
        e.fields = {
            "visit_no": visit_no, "visit_type_code": ("2" if dept_code == "2000" else "1") if kind == "out" else "3",
            "dept_code": dept_code, "dept_name": dept_name, "dept_category_code": category,
            "doctor_id": doctor_id, "doctor_name": doctor_name, "nurse_id": nurse_id, "nurse_name": nurse_name,
            "diagnosis_code": dx_code, "diagnosis_name": dx_name, "age_years": age,
            "payment_method_code": rng.choice(("01", "02", "03", "07")),
            "registration_time": start - timedelta(minutes=rng.randrange(5, 90)), "visit_time": start,
            "visit_end_time": end, "admission_time": start, "discharge_time": end,
            "ward_name": f"{dept_name}病区", "bed_no": f"{rng.randrange(1, 60):02d}",
            "room_no": f"{rng.randrange(1, 30):02d}", "chief_complaint": rng.choice(vocab.COMPLAINTS),
        }
        return e

    # -- records --------------------------------------------------------------------------

    def records(self, dataset: DataSet, org: tuple[str, str], context: dict[str, Any], n_items: int = 1) -> list[dict[str, Any]]:
        """Records of one data set for one context (a patient, an encounter or the institution)."""
        key = dataset.natural_key
        parent = {k: None for k in key[:-1]} if n_items > 1 else {}
        base_time: datetime = context.get("_time") or datetime.now()
        out = []
        for item in range(1, n_items + 1):
            rec: dict[str, Any] = {"org_code": org[0], "org_name": org[1]}
            pair = self._pair_values(dataset)
            for f in dataset.fields:
                if f.name in rec:
                    continue
                if f.name in context:
                    rec[f.name] = context[f.name]
                elif f.name in pair:
                    rec[f.name] = pair[f.name]
                elif f.name in parent:
                    if parent[f.name] is None:
                        parent[f.name] = self._value(dataset, f, base_time, item, unique=True)
                    rec[f.name] = parent[f.name]
                elif f.name in key:
                    rec[f.name] = item if f.type == "int" and n_items > 1 else self._value(dataset, f, base_time, item, unique=True)
                else:
                    if not f.required and self.rng.random() < 0.1:
                        continue  # optional fields are sometimes empty, as in real feeds
                    rec[f.name] = self._value(dataset, f, base_time, item)
            self._order_times(dataset, rec, base_time)
            out.append({k: _json(v) for k, v in rec.items() if v is not None})
        return out

    def _pair_values(self, dataset: DataSet) -> dict[str, Any]:
        """Code/name twins (diagnosis_code + diagnosis_name, drug, lab item) must agree."""
        rng = self.rng
        values: dict[str, Any] = {}
        for f in dataset.fields:
            if f.type != "code" or not f.name.endswith("_code"):
                continue
            twin = f.name[: -len("_code")] + "_name"
            if f.domain == "icd10":
                values[f.name], values[twin] = rng.choice(vocab.DIAGNOSES)
            elif f.domain == "icd9cm3":
                values[f.name], values[twin] = rng.choice(vocab.OPERATIONS)
            elif f.domain == "tcm_disease":
                values[f.name], values[twin] = rng.choice(vocab.TCM_DIAGNOSES)
        names = {f.name for f in dataset.fields}
        if "drug_name" in names:
            if dataset.code == "tcm_prescription":
                herb, unit = rng.choice(vocab.HERBS)
                values.update(drug_name=herb, dose_unit=unit, quantity_unit=unit)
            else:
                drug, spec, unit, form = rng.choice(vocab.DRUGS)
                values.update(drug_name=drug, drug_spec=spec, dose_unit=unit, dosage_form_code=form)
        lab = rng.choice(vocab.LAB_ITEMS)
        code, item_name, unit, lo, hi = lab
        result = round(rng.uniform(lo * 0.7, hi * 1.3 if hi else 1), 2)
        flag = "N" if lo <= result <= hi else ("H" if result > hi else "L")
        values.update(
            item_local_code=code, item_name=item_name, result_unit=unit, unit=unit, result_value=str(result),
            reference_range=f"{lo}-{hi}", abnormal_flag_code=flag, result_numeric=result,
        )
        modality, exam = rng.choice(vocab.EXAM_ITEMS)
        values.update(exam_modality_code=modality, exam_item_name=exam, modality_code=modality)
        return {k: v for k, v in values.items() if k in names}

    def _value(self, dataset: DataSet, f: FieldSpec, base: datetime, item: int, unique: bool = False) -> Any:
        rng = self.rng
        t = f.type
        if unique and t == "string":
            return self.serial(_prefix(f.name))[-(f.length or 32):]
        if t == "code":
            domain = self.standard.domain(f.domain or "")
            if domain.kind == "code_system":
                if f.domain == "division":
                    return "220102"
                pool = {"icd10": vocab.DIAGNOSES, "icd9cm3": vocab.OPERATIONS, "tcm_disease": vocab.TCM_DIAGNOSES}[f.domain or "icd10"]
                return rng.choice(pool)[0]
            codes = [c.code for c in domain.codes if len(c.code) <= (f.length or 99)]
            return rng.choice(codes or [domain.codes[0].code])
        if t == "int":
            lo = int(f.min) if f.min is not None else 0
            hi = int(f.max) if f.max is not None else max(lo + 10, 10)
            return rng.randint(lo, min(hi, lo + 100))
        if t == "decimal":
            lo = f.min if f.min is not None else 0.0
            hi = f.max if f.max is not None else lo + 500
            hi = min(hi, lo + 500, 10 ** ((f.length or 12) - (f.scale or 2)) - 1)
            return round(rng.uniform(lo, hi), min(f.scale if f.scale is not None else 2, 2))
        if t == "bool":
            return rng.random() < 0.2
        if t == "date":
            if f.name == "birth_date":
                return date(1950, 1, 1) + timedelta(days=rng.randrange(0, 60 * 365))
            if f.allow_future:
                return (base + timedelta(days=rng.randrange(30, 700))).date()
            return base.date()
        if t == "datetime":
            if f.allow_future:
                return base + timedelta(days=rng.randrange(1, 14), minutes=rng.randrange(0, 600))
            return base
        return self._text(f)

    def _text(self, f: FieldSpec) -> str:
        rng = self.rng
        hint, name, length = f.gen, f.name, f.length or 50
        if f.check == "phone" or hint == "phone":
            value = self.phone()
        elif f.check == "id_no":
            value = self.id_number("220102", date(1980, 1, 1), "1")
        elif f.check == "uscc":
            body = f"9122010{rng.randrange(10**10):010d}"
            value = body + uscc_check_char(body)
        elif hint == "name" or name.endswith("_name") and any(w in f.label for w in ("姓名", "签名", "医师", "护士", "者")):
            value = rng.choice(self._names)
        elif hint == "address":
            value = "".join(rng.choice(self._addresses))
        elif hint in ("province", "city", "district"):
            value = rng.choice(self._addresses)[("province", "city", "district").index(hint)]
        elif hint == "company":
            value = rng.choice(self._companies)
        elif hint == "postcode":
            value = f"{rng.randrange(130000, 139999)}"
        elif hint == "health_card":
            value = f"HC{rng.randrange(10**15):015d}"
        elif hint == "complaint":
            value = rng.choice(vocab.COMPLAINTS)
        elif hint == "drug":
            value = rng.choice(vocab.DRUGS)[0]
        elif hint == "lab_item":
            value = rng.choice(vocab.LAB_ITEMS)[1]
        elif hint == "exam_item":
            value = rng.choice(vocab.EXAM_ITEMS)[1]
        elif hint == "dept":
            value = rng.choice(vocab.DEPARTMENTS)[1]
        elif f.type == "text" or hint == "text":
            value = "".join(rng.sample(vocab.NARRATIVE, k=min(3, len(vocab.NARRATIVE))))
        elif f.pattern:
            value = "0" * min(length, 6)
        elif name.endswith(("_no", "_id", "_local_code", "_code")):
            value = self.serial(_prefix(name))
        else:
            value = f"{f.label[:10]}{rng.randrange(1, 100)}"
        return value[:length]

    @staticmethod
    def _order_times(dataset: DataSet, rec: dict[str, Any], base: datetime) -> None:
        """Spread datetime fields after the base time and put every declared pair in order."""
        for _ in range(3):
            for earlier, later in dataset.time_order:
                a, b = rec.get(earlier), rec.get(later)
                if a is None or b is None:
                    continue
                a_cmp = a if isinstance(a, datetime) else datetime.combine(a, time())
                b_cmp = b if isinstance(b, datetime) else datetime.combine(b, time(23, 59))
                if b_cmp < a_cmp:
                    rec[later] = a if isinstance(b, type(a)) else (a.date() if isinstance(a, datetime) else datetime.combine(a, time()))

    # -- a province ------------------------------------------------------------------------

    def day(
        self, orgs: list[tuple[str, str]], day: date, *, visits: int = 40, admissions: int = 4,
        now: datetime | None = None, datasets: list[str] | None = None, patients: dict[str, list[Patient]] | None = None,
    ) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        """Yield (org_code, data set code, records) for one day of activity of each institution."""
        now = now or datetime.now()
        std = self.standard
        chosen = [std.dataset(d) for d in datasets] if datasets else list(std.datasets)
        # residents' records come from public_health(); internet-hospital data from phip.synth.internet
        chosen = [d for d in chosen if d.category not in (PUBLIC_HEALTH, "internet_hospital")]
        pool = patients if patients is not None else {}
        for org in orgs:
            self._aside.clear()  # ids are only meaningful while this org-day's records live
            batches: dict[str, list[dict[str, Any]]] = {}
            people = pool.setdefault(org[0], [])
            new_people: list[Patient] = []
            encounters: list[Encounter] = []
            for kind, count in (("out", visits), ("in", admissions)):
                for _ in range(count):
                    if not people or self.rng.random() < 0.35:
                        p = self.patient(org[0])
                        people.append(p)
                        new_people.append(p)
                    else:
                        p = self.rng.choice(people)
                    encounters.append(self.encounter(p, kind, day, now))
            for ds in chosen:
                recs = batches.setdefault(ds.code, [])
                if ds.code == "patient_info":
                    registered = min(datetime.combine(day, time(7, 0)), now)  # today before 07:00: not in the future
                    for p in new_people:
                        ctx = {**p.fields, "_time": registered, "create_time": registered, "update_time": registered}
                        recs += self.records(ds, org, ctx)
                elif ds.code == "outpatient_visit" or ds.code == "inpatient_visit":
                    kind = "out" if ds.code == "outpatient_visit" else "in"
                    for e in encounters:
                        if e.kind == kind:
                            recs += self.records(ds, org, self._ctx(e))
                elif ds.person and ds.category in ENCOUNTER_OUT | ENCOUNTER_IN:
                    kind = "out" if ds.category in ENCOUNTER_OUT else "in"
                    share = OUT_SHARE.get(ds.code, 0.5 if kind == "in" else 0.2)
                    for e in encounters:
                        if e.kind != kind and not (ds.code in ITEMS and ds.category in ("prescription", "fee", "lab_exam")):
                            continue
                        if self.rng.random() > share:
                            if ds.code in IN_SHARE:  # a companion every stay has: drawn aside, the main stream stays as it was
                                main, self.rng = self.rng, random.Random(f"{ds.code}/{e.visit_no}")
                                try:
                                    extra = self.records(ds, org, self._ctx(e))
                                    self._aside.update(id(r) for r in extra)
                                    recs += extra
                                finally:
                                    self.rng = main
                            continue
                        lo, hi = ITEMS.get(ds.code, (1, 1))
                        recs += self.records(ds, org, self._ctx(e), self.rng.randint(lo, hi))
                else:
                    ctx = {"_time": datetime.combine(day, time(23, 0)) if day < now.date() else now - timedelta(minutes=5),
                           "stat_date": day}
                    for _ in range(self.rng.randint(2, 5)):
                        recs += self.records(ds, org, ctx)
            harmonise(batches)
            for code, recs in batches.items():
                if recs:
                    if self.error_rate:
                        self.plant(std.dataset(code), recs)
                    yield org[0], code, recs

    def public_health(
        self, org: tuple[str, str], start: date, end: date, *, residents: int = 40, now: datetime | None = None,
    ) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
        """Yield (org_code, data set code, records) of a primary-care institution's resident health
        records between ``start`` and ``end``: one basic-information record per resident, an
        enrolment per managed disease, and follow-ups every two to three months from the
        enrolment, some missed (so some patients have fewer than four a year) and an extra one two
        weeks after an unsatisfactory control, as the service specification asks."""
        now = now or datetime.now()
        end = min(end, now.date())
        std = self.standard
        rng = self.rng
        batches: dict[str, list[dict[str, Any]]] = {}
        span = max(0, (end - start).days)
        for _ in range(residents):
            p = self.patient(org[0])
            record_no = f"{p.division}{self.serial('JK')[2:]}{rng.randrange(100):02d}"[:17]
            built = start + timedelta(days=rng.randrange(0, span + 1)) if rng.random() < 0.3 else start - timedelta(days=rng.randrange(1, 2000))
            built = max(built, p.birth_date + timedelta(days=1))
            person = {**p.fields, "health_record_no": record_no}
            diseases = [(code, ds) for code, ds, share in MANAGED if rng.random() < share]
            touched = datetime.combine(max(built, start), time(9, 0)) + timedelta(minutes=rng.randrange(0, 480))
            profile = {**person, "_time": min(touched, now - timedelta(minutes=1)), "build_date": built,
                       "resident_type_code": rng.choice("1112"), "hypertension_flag": any(c == "1" for c, _ in diseases),
                       "diabetes_flag": any(c == "2" for c, _ in diseases),
                       "disease_history": "、".join(("高血压", "2型糖尿病")[int(c) - 1] for c, _ in diseases) or "无"}
            batches.setdefault("resident_profile", []).extend(self.records(std.dataset("resident_profile"), org, profile))
            for code, ds_code in diseases:
                enrolled = max(built, start - timedelta(days=rng.randrange(0, 1500))) if rng.random() < 0.8 else \
                    start + timedelta(days=rng.randrange(0, span + 1))
                diagnosed = max(p.birth_date + timedelta(days=1), enrolled - timedelta(days=rng.randrange(0, 400)))
                enrolment = {**person, "_time": datetime.combine(min(enrolled, end), time(10, 0)), "disease_code": code,
                             "enrol_date": enrolled, "diagnosis_date": diagnosed}
                recs = self.records(std.dataset("chronic_disease_enrolment"), org, enrolment)
                for r in recs:  # still under management
                    r.pop("end_date", None)
                    r.pop("end_reason_code", None)
                batches.setdefault("chronic_disease_enrolment", []).extend(recs)
                batches.setdefault(ds_code, []).extend(self._followups(std.dataset(ds_code), org, person, max(enrolled, start), end, now))
        for code, recs in batches.items():
            if recs:
                if self.error_rate:
                    self.plant(std.dataset(code), recs)
                yield org[0], code, recs

    def _followups(self, ds: DataSet, org: tuple[str, str], person: dict[str, Any], first: date, end: date,
                   now: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        diabetes = ds.code == "diabetes_followup"
        miss = rng.choice((0.0, 0.0, 0.0, 0.15, 0.3, 0.6))  # how often this patient misses a follow-up
        weight = round(rng.uniform(50, 95), 1)
        height = rng.uniform(1.5, 1.85)
        out: list[dict[str, Any]] = []
        day = first + timedelta(days=rng.randrange(0, 40))
        while day <= end:
            if rng.random() >= miss:
                at = min(datetime.combine(day, time(8, 30)) + timedelta(minutes=rng.randrange(0, 480)), now - timedelta(minutes=1))
                systolic, diastolic = rng.randint(112, 172), rng.randint(68, 104)
                glucose = round(rng.uniform(5.0, 11.5), 1)
                poor = (glucose >= 7.0) if diabetes else (systolic >= 140 or diastolic >= 90)
                cls = rng.choice("34") if rng.random() < 0.05 else ("2" if poor else "1")
                weight = round(weight + rng.uniform(-1, 1), 1)
                ctx = {**person, "_time": at, "followup_date": day, "followup_method_code": rng.choice("11123"),
                       "systolic_bp": systolic, "diastolic_bp": diastolic, "heart_rate": rng.randint(58, 96),
                       "weight_kg": weight, "target_weight_kg": round(22.5 * height * height, 1),
                       "bmi": round(weight / (height * height), 1), "fasting_glucose": glucose,
                       "hba1c": round(rng.uniform(5.6, 9.5), 1), "hba1c_date": day,
                       "followup_class_code": cls, "adverse_reaction_flag": cls == "3",
                       "medication_adherence_code": rng.choice("1112"), "symptoms": rng.choice(("无症状", "头痛头晕", "多饮多食多尿", "视力模糊")),
                       "next_followup_date": day + timedelta(days=14 if cls == "2" else 90),
                       "salt_intake": rng.choice(("轻", "中", "重")), "smoking_per_day": rng.choice((0, 0, 0, 5, 10, 20)),
                       "drinking_per_day": rng.choice((0, 0, 1, 2)), "exercise_per_week": rng.randint(0, 7),
                       "exercise_minutes": rng.choice((0, 20, 30, 60)), "other_signs": "无", "auxiliary_exam": None,
                       "medication": rng.choice(CHRONIC_DRUGS[ds.code]), "adverse_reaction": "头晕乏力" if cls == "3" else None,
                       "referral_flag": cls == "4", "referral_reason": "出现并发症" if cls == "4" else None,
                       "referral_org_name": None, "insulin": None}
                recs = self.records(ds, org, ctx)
                out += recs
                if cls == "2" and rng.random() < 0.5:  # an unsatisfactory control is seen again in two weeks
                    day += timedelta(days=14)
                    continue
            day += timedelta(days=rng.randint(60, 100))
        return out

    def _ctx(self, e: Encounter) -> dict[str, Any]:
        return {**e.patient.fields, **e.fields, "_time": e.start if e.kind == "out" else e.start + (e.end - e.start) / 2}

    # -- planted errors -------------------------------------------------------------------------

    def plant_quality(self, batches: dict[str, list[dict[str, Any]]]) -> list[Planted]:
        """Plant one error of each quality kind in an institution-day's records (in place).

        Every planted record still passes validation (quality never rejects); each Planted
        names the finding code the quality run must report for it. Needs at least 7
        outpatient visits with fee items, 4 discharged stays and one prescription.
        """
        std = self.standard
        planted: list[Planted] = []
        visits, stays = batches["outpatient_visit"], batches["inpatient_visit"]
        out_ds = std.dataset("outpatient_visit")
        fee_visits = {f["visit_no"] for f in batches.get("fee_detail", [])}
        free = [i for i, v in enumerate(visits) if v["visit_no"] in fee_visits and "total_fee" in v]

        def mark(ds: str, index: int, code: str, fld: str | None) -> None:
            rec = batches[ds][index]
            planted.append(Planted(ds, index, code, fld, "|".join(str(rec[k]) for k in std.dataset(ds).natural_key)))

        i = free.pop(0)  # completeness: an expected field left empty
        visits[i].pop("birth_date", None)
        mark("outpatient_visit", i, "QC_EXPECTED_MISSING", "birth_date")
        i = free.pop(0)  # validity: an invalid optional ID number (validation keeps it with a warning)
        v = visits[i]["id_no"]
        visits[i]["id_no"] = v[:-1] + next(c for c in "0123456789X" if c != v[-1])
        mark("outpatient_visit", i, "QC_ID_INVALID", "id_no")
        i = free.pop(0)  # consistency: total fee differs from the sum of the fee items
        visits[i]["total_fee"] = round(float(visits[i]["total_fee"]) + 10.0, 2)
        mark("outpatient_visit", i, "QC_SUM_MISMATCH", "total_fee")
        i = free.pop(0)  # timeliness: the visit happened 5 days before it was sent
        _shift(visits[i], out_ds, timedelta(days=-5))
        mark("outpatient_visit", i, "QC_LATE_UPLOAD", None)
        i = free.pop(0)  # uniqueness: the same visit sent again under a new key
        copy = {**visits[i], "visit_no": self.serial("MZD")}
        visits.append(copy)
        mark("outpatient_visit", len(visits) - 1, "QC_DUPLICATE_EVENT", None)
        i = free.pop(0)  # linkage: a foreign visitor known only by a passport and a fresh patient id
        born = date(1950, 1, 1) + timedelta(days=self.rng.randrange(18000))
        visits[i].update(patient_id=self.serial("PX"), id_type_code="03", id_no=f"E{self.rng.randrange(10**8):08d}",
                         name="".join(self.rng.choice("ABCDEFGHKLMNPRSTW") for _ in range(6)), birth_date=born.isoformat())
        for name in ("health_card_no", "phone", "address"):  # nothing the EMPI could match on
            visits[i].pop(name, None)
        mark("outpatient_visit", i, "QC_NOT_LINKED", None)
        rx = batches["western_prescription"]  # consistency: a prescription whose visit was never sent
        rx[0]["visit_no"] = self.serial("MZX")
        mark("western_prescription", 0, "QC_REFERENCE_MISSING", "visit_no")

        stays_left = list(range(len(stays)))
        i = stays_left.pop(0)  # validity: a phone number that is no phone number
        stays[i]["phone"] = "12345"
        mark("inpatient_visit", i, "QC_PHONE_INVALID", "phone")
        i = stays_left.pop(0)  # consistency: sex code contradicts the ID number
        stays[i]["sex_code"] = "2" if stays[i]["sex_code"] == "1" else "1"
        mark("inpatient_visit", i, "QC_ID_SEX_MISMATCH", "id_no")
        i = stays_left.pop(0)  # completeness: a discharge without its front page
        gone = stays[i]["visit_no"]
        for ds in ("front_page", "tcm_front_page"):
            batches[ds] = [r for r in batches.get(ds, []) if r["visit_no"] != gone]
        mark("inpatient_visit", i, "QC_COMPANION_MISSING", "visit_no")
        i = stays_left.pop(0)  # consistency: a front page whose discharge precedes the admission
        target = stays[i]["visit_no"]
        fp_ds = std.dataset("front_page")
        j = next(k for k, r in enumerate(batches["front_page"]) if r["visit_no"] == target)
        fp = batches["front_page"][j]
        admitted = datetime.fromisoformat(str(stays[i]["admission_time"]))
        _shift(fp, fp_ds, admitted - timedelta(hours=2) - datetime.fromisoformat(str(fp["discharge_time"])))
        mark("front_page", j, "QC_CROSS_TIME_ORDER", "discharge_time")
        return planted

    def plant(self, dataset: DataSet, records: list[dict[str, Any]]) -> None:
        """Corrupt some records in place, remembering what validation must find."""
        for index, rec in enumerate(records):
            if id(rec) in self._aside or self.rng.random() >= self.error_rate:
                continue
            code, fld = self._corrupt(dataset, rec)
            structural = fld in dataset.natural_key or fld == dataset.event_time
            self.planted.append(Planted(dataset.code, index, code, fld, rejected=structural and code != "TIME_ORDER"))

    def _corrupt(self, dataset: DataSet, rec: dict[str, Any]) -> tuple[str, str | None]:
        rng = self.rng
        options = ["REQUIRED", "BAD_DATETIME"]
        coded = [f for f in dataset.fields if f.type == "code" and self.standard.domain(f.domain or "").kind == "table" and f.name in rec]
        if coded:
            options.append("NOT_IN_DOMAIN")
        if dataset.time_order and any(a in rec and b in rec for a, b in dataset.time_order):
            options.append("TIME_ORDER")
        ids = [f for f in dataset.fields if f.check == "id_no" and f.required and rec.get(f.name)]
        if ids:
            options.append("ID_NO_CHECKSUM")
        choice = rng.choice(options)
        if choice == "REQUIRED":
            f = rng.choice([f for f in dataset.fields if f.required and f.name not in ("org_code", "org_name")])
            rec.pop(f.name, None)
            return "REQUIRED", f.name
        if choice == "BAD_DATETIME":
            f = dataset.field(dataset.event_time)
            rec[f.name] = "2024-13-45 25:61:00"
            return ("BAD_DATE" if f.type == "date" else "BAD_DATETIME"), f.name
        if choice == "NOT_IN_DOMAIN":
            f = rng.choice(coded)
            rec[f.name] = "ZZ"[: f.length or 2] if f.length != 1 else "Z"
            return "NOT_IN_DOMAIN", f.name
        if choice == "TIME_ORDER":
            a, b = next((a, b) for a, b in dataset.time_order if a in rec and b in rec)
            early = datetime.fromisoformat(str(rec[a])) if "T" in str(rec[a]) or " " in str(rec[a]) else datetime.fromisoformat(f"{rec[a]}T00:00:00")
            spec_b = dataset.field(b)
            before = early - timedelta(days=2)
            rec[b] = before.date().isoformat() if spec_b.type == "date" else before.isoformat(sep=" ")
            return "TIME_ORDER", b
        f = ids[0]
        value = rec[f.name]
        wrong = next(c for c in "0123456789X" if c != value[-1])
        rec[f.name] = value[:-1] + wrong
        return "ID_NO_CHECKSUM", f.name


def harmonise(batches: dict[str, list[dict[str, Any]]]) -> None:
    """Make one institution-day's records agree across data sets, as a sound hospital feed does:
    a visit's total fee is the sum of its fee items (refunds are separate settlements, not
    generated here), and a lab or exam order has its report on the same visit."""
    totals: dict[tuple[bool, str], float] = {}
    for item in batches.get("fee_detail", []):
        item["refund_flag"] = False
        item.pop("original_fee_detail_no", None)
        key = (item["visit_type_code"] == "3", item["visit_no"])
        totals[key] = totals.get(key, 0.0) + float(item["amount"])
    for code in ("outpatient_visit", "inpatient_visit"):
        for visit in batches.get(code, []):
            key = (code == "inpatient_visit", visit["visit_no"])
            if key in totals and "total_fee" in visit:
                visit["total_fee"] = round(totals[key], 2)
    reported = {t: {r["visit_no"] for r in batches.get(ds, [])} for t, ds in (("03", "lab_report"), ("02", "exam_report"))}
    for code in ("outpatient_order", "inpatient_order"):
        for order in batches.get(code, []):
            kind = order.get("order_item_type_code")
            if kind in reported and order.get("visit_no") not in reported[kind]:
                order["order_item_type_code"] = "07"  # 嘱托类医嘱: needs no report


def _shift(record: dict[str, Any], dataset: DataSet, delta: timedelta) -> None:
    """Move every datetime field of a record by ``delta`` (keeps their order)."""
    for f in dataset.fields:
        if f.type == "datetime" and record.get(f.name):
            record[f.name] = _json(datetime.fromisoformat(str(record[f.name])) + delta)


def _prefix(name: str) -> str:
    parts = [p for p in name.split("_") if p not in ("no", "id", "code", "local")]
    return "".join(p[0] for p in parts).upper() or "X"


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value

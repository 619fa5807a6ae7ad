"""Synthetic internet-hospital data (互联网医院模拟数据) with planted supervision violations.

For each internet hospital: its register entry and practitioners (data sets 81, 82), and per
day appointments, consultations, electronic prescriptions, chronic follow-ups and complaints
(83-87). Every follow-up consultation rests on an offline outpatient visit of the same person
at the physical institution (an ordinary hospital) 1-90 days earlier, so the first-visit rule
has something to find across institutions. With ``violation_rate`` > 0 a share of
consultations carries one violation each, drawn in turn over every supervision rule; each is
listed as :class:`PlantedViolation` with the finding code the supervision run must report.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from . import vocab
from .generator import Generator, Patient

#: the violation kinds, in the order they are planted (one per chosen consultation)
KINDS = ("first_visit", "no_offline", "restricted", "child", "not_reviewed", "review_order", "unregistered",
         "junior", "expired", "outside", "unsigned", "signer", "before_consultation", "incomplete")
LIMIT_PER_HOUR = 12  # sv_volume_per_hour's limit in supervision_rules.yaml
CHRONIC = [("I10.x00", "原发性高血压"), ("E11.900", "2型糖尿病"), ("J44.900", "慢性阻塞性肺病"),
           ("I25.100", "动脉粥样硬化性心脏病"), ("E78.500", "高脂血症"), ("K29.700", "胃炎")]
DRUGS = [("XC08CAN136A001010100813", "硝苯地平缓释片"), ("XA10BAE054A001010101421", "二甲双胍片"),
         ("XB01ACA056A012010100291", "阿司匹林肠溶片"), ("XC10AAA127A001010101817", "阿托伐他汀钙片"),
         ("XA02BCA211A001010100780", "奥美拉唑肠溶胶囊")]
RESTRICTED = [("2", "XN05BAA077A001010100562", "艾司唑仑片"), ("1", "XN02AAM059A001010100178", "吗啡缓释片"),
              ("3", "XN05BAA037A001010104396", "阿普唑仑片")]


@dataclass(frozen=True)
class PlantedViolation:
    dataset: str
    record_key: str
    code: str


@dataclass
class InternetDay:
    batches: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    planted: list[PlantedViolation] = field(default_factory=list)

    def add(self, org: str, dataset: str, records: list[dict[str, Any]]) -> None:
        if records:
            self.batches.append((org, dataset, records))


def _iso(value: datetime | date) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value.isoformat()


class InternetGenerator:
    """Internet hospitals (code, name) that rely on ``entity`` (code, name), an ordinary hospital."""

    def __init__(self, hospitals: list[tuple[str, str]], entity: tuple[str, str], *, seed: int = 24,
                 violation_rate: float = 0.0, gen: Generator | None = None):
        self.hospitals, self.entity = hospitals, entity
        self.gen = gen or Generator(seed=seed)
        self.rng = random.Random(seed)
        self.rate = violation_rate
        self._kind = 0
        self._serial = 0
        self.doctors: dict[str, list[str]] = {}
        self.pharmacists: dict[str, str] = {}
        self.bad: dict[str, dict[str, str]] = {}  # org -> kind -> practitioner id (junior, expired, outside)

    def _no(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial:08d}"

    # -- register -------------------------------------------------------------------------------

    def register(self, when: datetime) -> InternetDay:
        """Each hospital's register entry and practitioners (licensed, 5+ years), plus the
        practitioners a violation needs (a junior, an expired licence, another institution's)."""
        out = InternetDay()
        for org, name in self.hospitals:
            out.add(org, "internet_hospital", [{
                "org_code": org, "org_name": name, "licence_no": f"PDY{org[8:16]}", "licence_valid_from": "2020-06-11",
                "licence_valid_to": "2030-06-10", "entity_org_uscc": self.entity[0], "entity_org_name": self.entity[1],
                "platform_name": f"{name}在线诊疗平台", "service_scope": "内科;外科;儿科;中医科", "in_service_flag": True,
                "update_time": _iso(when)}])
            people, self.doctors[org], self.bad[org] = [], [], {}
            for i in range(8):
                kind = "3" if i == 7 else "1"
                pid = self._practitioner(people, org, name, kind, when, first=date(2008 + i, 3, 1))
                (self.doctors[org].append(pid) if kind == "1" else self.pharmacists.__setitem__(org, pid))
            self.bad[org]["junior"] = self._practitioner(people, org, name, "1", when, first=when.date() - timedelta(days=400))
            self.bad[org]["expired"] = self._practitioner(people, org, name, "1", when, first=date(2010, 1, 1),
                                                          valid_to=when.date() - timedelta(days=30))
            self.bad[org]["outside"] = self._practitioner(people, org, name, "1", when, first=date(2011, 1, 1),
                                                          orgs=self.entity[0])
            out.add(org, "online_practitioner", people)
        return out

    def _practitioner(self, people: list[dict[str, Any]], org: str, name: str, kind: str, when: datetime, *,
                      first: date, valid_to: date | None = None, orgs: str | None = None) -> str:
        pid = f"{kind}22{len(people) + 1:02d}{org[10:17]}{self.rng.randrange(10**6):06d}"
        people.append({
            "org_code": org, "org_name": name, "practitioner_id": pid, "practitioner_kind_code": kind,
            "practitioner_name": self.rng.choice(self.gen._names), "licence_no": f"1102{self.rng.randrange(10**11):011d}",
            "first_licence_date": _iso(first), "licence_valid_to": _iso(valid_to or date(2031, 12, 31)),
            "title_code": "233" if kind == "1" else "243", "practice_org_codes": orgs or f"{self.entity[0]};{org}",
            "registered_time": _iso(datetime(2020, 7, 1, 9, 0)), "update_time": _iso(when)})
        return pid

    # -- a day ----------------------------------------------------------------------------------

    def day(self, day: date, now: datetime, consultations: int = 20) -> InternetDay:
        """One day of every hospital's online activity (call ``register`` first)."""
        out = InternetDay()
        for org, name in self.hospitals:
            batch: dict[str, list[dict[str, Any]]] = {k: [] for k in (
                "online_appointment", "online_consultation", "e_prescription", "online_chronic_followup", "online_complaint")}
            offline: list[dict[str, Any]] = []
            # every half hour from 08:00, closer together when that would run past 22:00: the
            # day's consultations stay on its day
            step = min(30.0, 14 * 60 / max(consultations, 1))
            for i in range(consultations):
                kind = self._next_kind()
                start = datetime.combine(day, time(8, 0)) + timedelta(minutes=step * i + self.rng.randrange(0, max(1, int(step * 5 / 6))))
                start = min(start, now - timedelta(hours=1))
                self._consultation(out, batch, offline, (org, name), kind, start, self.doctors[org][i % 7])
            if self.rate > 0:
                self._burst(out, batch, offline, (org, name), datetime.combine(day, time(21, 0)), now)
            for code, recs in batch.items():
                out.add(org, code, recs)
            out.add(self.entity[0], "outpatient_visit", offline)
        return out

    def _next_kind(self) -> str | None:
        if self.rate <= 0 or self.rng.random() >= self.rate:
            return None
        kind = KINDS[self._kind % len(KINDS)]
        self._kind += 1
        return kind

    def _patient(self, child: bool) -> Patient:
        p = self.gen.patient(self.entity[0])
        born = date(2022, 5, 1) if child else date(1950 + self.rng.randrange(0, 50), 1 + self.rng.randrange(12), 10)
        p.birth_date, p.id_no = born, self.gen.id_number(p.division, born, p.sex_code)
        p.fields.update(birth_date=born, id_no=p.id_no)
        return p

    def _consultation(self, out: InternetDay, batch: dict[str, list[dict[str, Any]]], offline: list[dict[str, Any]],
                      org: tuple[str, str], kind: str | None, start: datetime, doctor: str) -> None:
        def plant(dataset: str, key: str, code: str) -> None:
            out.planted.append(PlantedViolation(dataset, key, code))

        p = self._patient(child=kind == "child" or self.rng.random() < 0.05)
        age = (start.date() - p.birth_date).days // 365
        dx, dx_name = self.rng.choice(CHRONIC)
        seen = start - timedelta(days=self.rng.randrange(1, 90))
        if kind != "no_offline":
            offline.append(self._offline_visit(p, seen, dx, dx_name))
        if kind in ("unregistered", "junior", "expired", "outside"):
            doctor = f"1229{self.rng.randrange(10**12):012d}" if kind == "unregistered" else self.bad[org[0]][kind]
        person = {k: v for k, v in {"patient_id": p.patient_id, "name": p.name, "sex_code": p.sex_code,
                                    "birth_date": _iso(p.birth_date), "age_years": age, "id_type_code": "01",
                                    "id_no": p.id_no}.items()}
        cno, ano = self._no("WZ"), self._no("YY")
        end = start + timedelta(minutes=self.rng.randrange(5, 20))
        c = {"org_code": org[0], "org_name": org[1], "consultation_no": cno, "appointment_no": ano, **person,
             "phone": p.phone, "consultation_mode_code": self.rng.choice("123"),
             "visit_kind_code": "1" if kind == "first_visit" else "2", "practitioner_id": doctor,
             "practitioner_name": "接诊医师", "dept_name": "全科医学科", "start_time": _iso(start), "end_time": _iso(end),
             "duration_minutes": int((end - start).total_seconds() // 60), "identity_check_flag": True,
             "patient_identity_check_flag": True, "offline_org_uscc": self.entity[0], "offline_org_name": self.entity[1],
             "offline_diagnosis_code": dx, "offline_diagnosis_name": dx_name, "offline_diagnosis_date": _iso(seen.date()),
             "chief_complaint": f"{dx_name}复诊开药", "diagnosis_code": dx, "diagnosis_name": dx_name,
             "advice": "规律服药，监测指标，不适线下就诊", "prescribed_flag": True, "update_time": _iso(end)}
        if age < 6 and kind != "child":
            c.update(guardian_name="监护人", accompanying_physician_name="陪诊医师")
        if kind == "incomplete":
            del c["advice"]
            plant("online_consultation", cno, "SV_RECORD_INCOMPLETE")
        batch["online_consultation"].append(c)
        batch["online_appointment"].append({
            "org_code": org[0], "org_name": org[1], "appointment_no": ano, **person, "phone": p.phone,
            "consultation_mode_code": c["consultation_mode_code"], "online_flag": True, "dept_name": "全科医学科",
            "practitioner_id": doctor, "appointment_time": _iso(start - timedelta(hours=2)),
            "schedule_time": _iso(start), "cancel_flag": False})
        if self.rng.random() < 0.2:
            batch["online_chronic_followup"].append({
                "org_code": org[0], "org_name": org[1], "followup_no": self._no("SF"), "consultation_no": cno, **person,
                "disease_code": dx, "disease_name": dx_name, "consultation_mode_code": c["consultation_mode_code"],
                "practitioner_id": doctor, "followup_time": _iso(end), "advice": "继续随访"})
        if self.rng.random() < 0.03:
            batch["online_complaint"].append({
                "org_code": org[0], "org_name": org[1], "complaint_no": self._no("TS"), "complaint_time": _iso(end),
                "consultation_no": cno, "practitioner_id": doctor, "complaint_type": "服务态度", "content": "回复不及时",
                "closed_flag": False})
        for code in {"first_visit": ["SV_FIRST_VISIT_ONLINE"], "no_offline": ["SV_NO_OFFLINE_DIAGNOSIS"],
                     "child": ["SV_CHILD_WITHOUT_GUARDIAN"], "unregistered": ["SV_PRACTITIONER_UNREGISTERED"],
                     "junior": ["SV_PRACTICE_YEARS"], "expired": ["SV_LICENCE_EXPIRED"],
                     "outside": ["SV_OUTSIDE_REGISTERED_ORG"]}.get(kind or "", []):
            plant("online_consultation", cno, code)
        self._prescription(batch, org, c, kind, end, plant)

    def _prescription(self, batch: dict[str, list[dict[str, Any]]], org: tuple[str, str], c: dict[str, Any],
                      kind: str | None, end: datetime, plant: Any) -> None:
        start = datetime.fromisoformat(c["start_time"])
        rno = self._no("CF")
        prescribed = start - timedelta(minutes=10) if kind == "before_consultation" else end - timedelta(minutes=1)
        reviewed = prescribed + timedelta(minutes=8)
        if kind == "review_order":
            reviewed = prescribed - timedelta(minutes=5)
        head = {"org_code": org[0], "org_name": org[1], "prescription_no": rno, "consultation_no": c["consultation_no"],
                **{k: c[k] for k in ("patient_id", "name", "sex_code", "birth_date", "age_years", "id_type_code", "id_no")},
                "practitioner_id": c["practitioner_id"], "doctor_name": c["practitioner_name"],
                "prescription_time": _iso(prescribed), "diagnosis_code": c["diagnosis_code"],
                "diagnosis_name": c["diagnosis_name"], "esign_ref": f"CA{self.rng.randrange(16**16):016x}",
                "esign_practitioner_id": c["practitioner_id"], "reviewer_id": self.pharmacists[org[0]],
                "reviewer_name": "审方药师", "review_time": _iso(reviewed), "review_passed_flag": True,
                "dispense_time": _iso(max(prescribed, reviewed) + timedelta(minutes=30)), "delivery_flag": True}
        if c.get("guardian_name"):
            head["guardian_name"] = c["guardian_name"]
        if kind == "not_reviewed":
            for k in ("reviewer_id", "reviewer_name", "review_time", "review_passed_flag"):
                head.pop(k)
        if kind == "unsigned":
            head.pop("esign_ref")
        if kind == "signer":
            head["esign_practitioner_id"] = next(d for d in self.doctors[org[0]] if d != c["practitioner_id"])
        items = []
        for n in range(1, self.rng.randint(1, 3) + 1):
            drug_id, drug = self.rng.choice(DRUGS)
            restriction = "0"
            if kind == "restricted" and n == 1:
                restriction, drug_id, drug = self.rng.choice(RESTRICTED)
            items.append({**head, "item_no": n, "drug_national_id": drug_id, "drug_name": drug,
                          "drug_restriction_code": restriction, "dose_per_time": 1, "dose_unit": "片", "quantity": 2,
                          "amount": round(self.rng.uniform(5, 80), 2)})
        batch["e_prescription"].extend(items)
        per_item = {"not_reviewed": "SV_NOT_REVIEWED", "review_order": "SV_REVIEW_ORDER", "unsigned": "SV_UNSIGNED",
                    "signer": "SV_SIGNER_MISMATCH", "before_consultation": "SV_PRESCRIPTION_BEFORE_CONSULTATION",
                    "no_offline": "SV_NO_OFFLINE_DIAGNOSIS", "child": "SV_CHILD_WITHOUT_GUARDIAN",
                    "unregistered": "SV_PRACTITIONER_UNREGISTERED", "junior": "SV_PRACTICE_YEARS",
                    "expired": "SV_LICENCE_EXPIRED", "outside": "SV_OUTSIDE_REGISTERED_ORG"}
        for item in items:
            key = f"{rno}|{item['item_no']}"
            if kind in per_item:
                plant("e_prescription", key, per_item[kind])
            if kind == "restricted" and item["drug_restriction_code"] != "0":
                plant("e_prescription", key, "SV_RESTRICTED_DRUG")

    def _offline_visit(self, p: Patient, when: datetime, dx: str, dx_name: str) -> dict[str, Any]:
        """The offline outpatient visit at the physical institution that diagnosed the condition."""
        e = self.gen.encounter(p, "out", when.date(), when + timedelta(days=1))
        e.fields.update(diagnosis_code=dx, diagnosis_name=dx_name)
        ds = self.gen.standard.dataset("outpatient_visit")
        return self.gen.records(ds, self.entity, {**p.fields, **e.fields, "_time": e.start})[0]

    def _burst(self, out: InternetDay, batch: dict[str, list[dict[str, Any]]], offline: list[dict[str, Any]],
               org: tuple[str, str], hour: datetime, now: datetime) -> None:
        """More consultations by one practitioner in one hour than the limit (a volume anomaly)."""
        hour = min(hour, (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0))
        doctor, first = self.doctors[org[0]][0], len(batch["online_consultation"])
        for i in range(LIMIT_PER_HOUR + 3):
            self._consultation(out, batch, offline, org, None, hour + timedelta(minutes=3 * i + 1), doctor)
        burst = batch["online_consultation"][first:]
        busy = [c for c in batch["online_consultation"] if c["practitioner_id"] == doctor
                and datetime.fromisoformat(c["start_time"]).replace(minute=0, second=0) == hour]
        busy.sort(key=lambda c: c["start_time"])
        for c in busy[LIMIT_PER_HOUR:]:
            out.planted.append(PlantedViolation("online_consultation", c["consultation_no"], "SV_VOLUME_ANOMALY"))
        del burst

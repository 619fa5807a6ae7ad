"""The demo province: the 66 institutions of the docking notice with a few days of generated
activity, pushed through the same pipeline as real uploads (source ``demo``). The primary-care
institutions of the register also send their residents' health records (basic information,
chronic-disease enrolment and follow-ups) since 1 January of the previous year."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select

from phip.ingest.pipeline import Pipeline
from phip.ingest.receipt import Receipt
from phip.orgs.primary_care import is_primary_care
from phip.orgs.service import list_institutions
from phip.reports.tables import MeasureDaily, ReportedFigure
from phip.standard.checks import id_check_char
from phip.standard.validate import platform_now
from phip.store.models import EventDaily, Record
from phip.synth.generator import Generator, Patient
from phip.synth.internet import InternetGenerator


def store_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Record)).scalar_one() == 0


def evening_of(day: date, now: datetime) -> datetime:
    """When the demo's hospitals send a day's records: that evening (T+0, as the notice asks),
    today not after now — so the dashboards' 30-day trends have a shape, not one spike."""
    return min(datetime.combine(day, time(21, 0)), now)


def load_demo(
    pipeline: Pipeline, *, days: int = 3, visits: int = 30, seed: int = 2026, error_rate: float = 0.01,
    on_step: Callable[[int, int], None] | None = None, residents: int = 60,
) -> Receipt:
    """Generate and ingest ``days`` days (ending today) for every connected institution."""
    now = platform_now()
    connected = [r for r in list_institutions(pipeline.engine) if r.network_status == "connected" and r.kind == "hospital"]
    orgs = [(r.code, r.name) for r in connected]
    gen = Generator(seed=seed, standard=pipeline.standard, error_rate=error_rate)
    totals = Receipt("demo", "*", "*", "demo", now)
    patients: dict = {}
    steps, done = days * len(orgs), 0
    for offset in range(days - 1, -1, -1):
        day: date = now.date() - timedelta(days=offset)
        received = evening_of(day, now)
        for org in orgs:
            for org_code, dataset, records in gen.day([org], day, visits=visits, admissions=max(1, visits // 10),
                                                      now=received, patients=patients):
                totals.add(pipeline.ingest(org_code, dataset, records, source="demo", now=received))
            done += 1
            if on_step:
                on_step(done, steps)
    since = date(now.year - 1, 1, 1)
    for r in connected:
        if is_primary_care(r.category):
            for org_code, dataset, records in gen.public_health((r.code, r.name), since, now.date(),
                                                                residents=residents, now=now):
                totals.add(pipeline.ingest(org_code, dataset, records, source="demo", now=now))
    load_internet_demo(pipeline, totals, days=days, seed=seed)
    report_demo_figures(pipeline.engine, [r.code for r in connected], now, seed=seed)
    totals.rejections = []
    return totals


def report_demo_figures(engine: Engine, orgs: list[str], now: datetime, *, seed: int) -> None:
    """What the demo hospitals "reported to the statistics system" this month (卫生统计直报,
    synthetic, source 演示数据): the stored visits over a share of 55–100 %, so the upload rates
    and their chart have values; every seventh hospital has not reported (未报告)."""
    rng = random.Random(seed)
    start, today = now.date().replace(day=1), now.date()
    with engine.begin() as conn:
        have = set(conn.execute(select(ReportedFigure.org_code).where(ReportedFigure.period_start == start)).scalars())
        visits = dict(conn.execute(select(EventDaily.org_code, func.sum(EventDaily.records)).where(
            EventDaily.dataset == "outpatient_visit", EventDaily.day >= start, EventDaily.day <= today)
            .group_by(EventDaily.org_code)).all())
        discharges = dict(conn.execute(select(MeasureDaily.org_code, func.sum(MeasureDaily.records)).where(
            MeasureDaily.measure == "discharges", MeasureDaily.day >= start, MeasureDaily.day <= today)
            .group_by(MeasureDaily.org_code)).all())
        rows = []
        for i, org in enumerate(orgs):
            share = rng.uniform(0.55, 1.0)
            if org in have or i % 7 == 6:
                continue
            rows.append({"org_code": org, "period_start": start, "period_end": today, "source": "演示数据（合成）",
                         "outpatient_visits": round(int(visits.get(org) or 0) / share),
                         "discharges": round(int(discharges.get(org) or 0) / share), "imported_at": now})
        if rows:
            conn.execute(insert(ReportedFigure), rows)


# --- sharing: accounts of every role, residents with records at several institutions ------------

DEMO_PASSWORD = "phip-demo-2026"
#: data set -> items per document of each demo visit (a lab report's results, a prescription's drugs)
VISIT_DATASETS = {"outpatient_visit": 1, "lab_report": 3, "western_prescription": 2, "exam_report": 1}
#: the demo residents (synthetic people): name, sex, birth date, ID number sequence, phone
DEMO_RESIDENTS = (("王秀英", "2", date(1962, 3, 14), "042", "13800001111"),
                  ("李建国", "1", date(1958, 8, 8), "017", "13900002222"))


def visit_records(pipeline: Pipeline, gen: Generator, orgs: list[tuple[str, str]], patient: Patient, *,
                  day: date, now: datetime, visits: int = 1, datasets: dict[str, int] = VISIT_DATASETS,
                  spacing: timedelta = timedelta(days=30)) -> None:
    """``visits`` outpatient visits of one patient at each institution (a visit a month apart),
    each with the data sets given, pushed through the pipeline."""
    for n, org in enumerate(orgs):
        local = Patient(**{**patient.__dict__, "org_code": org[0], "fields": dict(patient.fields)})
        for v in range(visits):
            e = gen.encounter(local, "out", day - spacing * n - timedelta(days=v), now)
            for dataset, items in datasets.items():
                receipt = pipeline.ingest(org[0], dataset, gen.records(pipeline.standard.dataset(dataset), org,
                                                                     gen._ctx(e), items), source="demo", now=now)
                if receipt.rejected:
                    raise RuntimeError(f"demo records rejected: {receipt.as_dict()}")


def demo_patient(gen: Generator, org: str, name: str, sex: str, born: date, seq: str, phone: str) -> Patient:
    body = f"220102{born:%Y%m%d}{seq}"
    p = gen.patient(org)
    p.name, p.sex_code, p.birth_date, p.id_no, p.phone = name, sex, born, body + id_check_char(body), phone
    p.fields.update(name=name, sex_code=sex, birth_date=born, id_no=p.id_no, phone=phone)
    return p


def load_sharing_demo(pipeline: Pipeline) -> dict[str, Any]:
    """Accounts of every role (password ``DEMO_PASSWORD``), two residents with records at three
    institutions, a consent (王秀英 → the first doctor's institution) and two break-the-glass
    reads (李建国, by the second doctor) waiting in the auditor's queue. Skipped when present."""
    from phip import share
    from phip.accounts import create_user, user_info
    from phip.accounts.residents import person_of_id_no, username_of

    engine, now = pipeline.engine, platform_now()
    if user_info(engine, "doctor1") is not None:
        return {}
    orgs = [(r.code, r.name) for r in list_institutions(engine) if r.network_status == "connected" and r.kind == "hospital"][:5]
    gen = Generator(seed=2121, standard=pipeline.standard)
    ids = []
    for i, (name, sex, born, seq, phone) in enumerate(DEMO_RESIDENTS):
        patient = demo_patient(gen, orgs[0][0], name, sex, born, seq, phone)
        visit_records(pipeline, gen, orgs[:3 - i], patient, day=now.date() - timedelta(days=2), now=now, visits=2)
        ids.append(patient.id_no)
    if user_info(engine, "ops") is None:
        create_user(engine, "ops", DEMO_PASSWORD, "operator", "值班员")
    create_user(engine, "auditor", DEMO_PASSWORD, "auditor", "审计员")
    create_user(engine, "cc_wjw", DEMO_PASSWORD, "regional", "长春市卫健委", region_code="220100")
    create_user(engine, "doctor1", DEMO_PASSWORD, "clinician", "张医生", org_code=orgs[3][0], department="内科")
    create_user(engine, "doctor2", DEMO_PASSWORD, "clinician", "刘医生", org_code=orgs[4][0], department="急诊科")
    people = []
    for (name, *_), id_no in zip(DEMO_RESIDENTS, ids):
        with engine.connect() as conn:
            pid = person_of_id_no(conn, id_no)
        create_user(engine, username_of(pid), DEMO_PASSWORD, "resident", name[0] + "*" * (len(name) - 1), person_id=pid)
        people.append(pid)
    wang, li = (user_info(engine, username_of(p)) for p in people)
    share.grant_consent(engine, wang, reader_orgs=[orgs[3][0]], days=30)
    doctor2 = user_info(engine, "doctor2")
    share.break_glass(engine, doctor2, people[1], "unconscious", "患者意识不清由120送入急诊，需了解既往病史")
    share.timeline(engine, doctor2, people[1])
    return {"residents": people, "doctor_orgs": [orgs[3][1], orgs[4][1]]}


def load_internet_demo(pipeline: Pipeline, totals: Receipt, *, days: int, seed: int, violation_rate: float = 0.05) -> None:
    """The demo's internet hospitals (互联网医院, named so in the register): their register,
    practitioners and ``days`` days of online activity, relying on the first connected hospital,
    with supervision violations planted at ``violation_rate``."""
    now = platform_now()
    rows = list_institutions(pipeline.engine)
    hospitals = [(r.code, r.name) for r in rows if r.name.endswith("互联网医院")]
    entity = next(((r.code, r.name) for r in rows if r.network_status == "connected" and r.kind == "hospital"), None)
    if not hospitals or entity is None:
        return
    gen = InternetGenerator(hospitals, entity, seed=seed, violation_rate=violation_rate)
    batches = [gen.register(now - timedelta(days=days))]
    days_ = [now.date() - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    batches += [gen.day(d, evening_of(d, now)) for d in days_]
    for day, received in zip(batches, [now - timedelta(days=days), *(evening_of(d, now) for d in days_)], strict=True):
        for org_code, dataset, records in day.batches:
            totals.add(pipeline.ingest(org_code, dataset, records, source="demo", now=received))

"""The demo province: the 66 institutions of the docking notice with a few days of generated
activity, pushed through the same pipeline as real uploads (source ``demo``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Engine, func, select

from phip.ingest.pipeline import Pipeline, Receipt
from phip.orgs.service import list_institutions
from phip.standard.validate import platform_now
from phip.store.models import Record
from phip.synth.generator import Generator
from phip.synth.internet import InternetGenerator


def store_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Record)).scalar_one() == 0


def load_demo(
    pipeline: Pipeline, *, days: int = 3, visits: int = 30, seed: int = 2026, error_rate: float = 0.01,
    on_step: Callable[[int, int], None] | None = None,
) -> Receipt:
    """Generate and ingest ``days`` days (ending today) for every connected institution."""
    now = platform_now()
    orgs = [(r.code, r.name) for r in list_institutions(pipeline.engine) if r.network_status == "connected"]
    gen = Generator(seed=seed, standard=pipeline.standard, error_rate=error_rate)
    totals = Receipt("demo", "*", "*", "demo", now)
    patients: dict = {}
    steps, done = days * len(orgs), 0
    for offset in range(days - 1, -1, -1):
        day: date = now.date() - timedelta(days=offset)
        for org in orgs:
            for org_code, dataset, records in gen.day([org], day, visits=visits, admissions=max(1, visits // 10),
                                                      now=now, patients=patients):
                totals.add(pipeline.ingest(org_code, dataset, records, source="demo", now=now))
            done += 1
            if on_step:
                on_step(done, steps)
    load_internet_demo(pipeline, totals, days=days, seed=seed)
    totals.rejections = []
    return totals


def load_internet_demo(pipeline: Pipeline, totals: Receipt, *, days: int, seed: int, violation_rate: float = 0.05) -> None:
    """The demo's internet hospitals (互联网医院, named so in the register): their register,
    practitioners and ``days`` days of online activity, relying on the first connected hospital,
    with supervision violations planted at ``violation_rate``."""
    now = platform_now()
    rows = list_institutions(pipeline.engine)
    hospitals = [(r.code, r.name) for r in rows if r.name.endswith("互联网医院")]
    entity = next(((r.code, r.name) for r in rows if r.network_status == "connected"), None)
    if not hospitals or entity is None:
        return
    gen = InternetGenerator(hospitals, entity, seed=seed, violation_rate=violation_rate)
    batches = [gen.register(now - timedelta(days=days))]
    batches += [gen.day(now.date() - timedelta(days=offset), now) for offset in range(days - 1, -1, -1)]
    for day in batches:
        for org_code, dataset, records in day.batches:
            totals.add(pipeline.ingest(org_code, dataset, records, source="demo", now=now))

"""The demo province: the 66 institutions of the docking notice with a few days of generated
activity, pushed through the same pipeline as real uploads (source ``demo``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import Engine, func, select

from phip.ingest.pipeline import Pipeline
from phip.ingest.receipt import Receipt
from phip.orgs.service import list_institutions
from phip.standard.validate import platform_now
from phip.store.models import Record
from phip.synth.generator import Generator


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
    totals.rejections = []
    return totals

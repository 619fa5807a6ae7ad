"""Patients with records at several institutions for the sharing tests: generated records
pushed through the real pipeline (phip.demo.visit_records, as the demo does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select

from phip.demo import VISIT_DATASETS, visit_records
from phip.ingest.pipeline import Pipeline
from phip.store.models import Record
from phip.synth.generator import Generator, Patient

NOW = datetime(2026, 11, 22, 12, 0, 0)


@dataclass
class Seeded:
    patient: Patient
    records: dict[str, list[int]] = field(default_factory=dict)  # org -> record ids

    def person_id(self, pipeline: Pipeline) -> str:
        with pipeline.engine.connect() as conn:
            return conn.execute(select(Record.person_id).where(Record.id == next(iter(self.records.values()))[0])).scalar_one()


def seed_patient(pipeline: Pipeline, gen: Generator, orgs: list[tuple[str, str]], *, visits: int = 1,
                 datasets: dict[str, int] = VISIT_DATASETS, day: date = date(2026, 11, 20),
                 patient: Patient | None = None) -> Seeded:
    """One patient with ``visits`` outpatient visits at each institution (items per document as given)."""
    patient = patient or gen.patient(orgs[0][0])
    visit_records(pipeline, gen, orgs, patient, day=day, now=NOW, visits=visits, datasets=datasets)
    out = Seeded(patient)
    with pipeline.engine.connect() as conn:
        for org, _ in orgs:
            out.records[org] = list(conn.execute(select(Record.id).where(
                Record.org_code == org, Record.payload["patient_id"].as_string() == patient.patient_id)).scalars())
    return out

"""Patients with records at several institutions for the sharing tests: generated records
pushed through the real pipeline (phip.demo.visit_records, as the demo does)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select

from phip.demo import VISIT_DATASETS, visit_records
from phip.ingest.pipeline import Pipeline
from phip.standard.validate import platform_now
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


def seed(pipeline, orgs: list[tuple[str, str]], seed_no: int) -> tuple[Patient, str]:  # noqa: ANN001
    """A generated patient with a visit, a lab report and an exam report at each institution,
    in the last days (inside the recognition windows)."""
    gen = Generator(seed=seed_no)
    now = platform_now()
    patient = gen.patient(orgs[0][0])
    patient.patient_id = patient.fields["patient_id"] = f"S{seed_no}-{patient.patient_id}"  # generators count alike
    for n, org in enumerate(orgs):
        local = Patient(**{**patient.__dict__, "org_code": org[0], "fields": dict(patient.fields)})
        e = gen.encounter(local, "out", (now - timedelta(days=n + 1)).date(), now)
        for dataset, items in (("outpatient_visit", 1), ("lab_report", 3), ("exam_report", 1)):
            records = gen.records(pipeline.standard.dataset(dataset), org, gen._ctx(e), items)
            assert pipeline.ingest(org[0], dataset, records, now=now).rejected == 0
    with pipeline.engine.connect() as conn:
        pid = conn.execute(select(Record.person_id).where(Record.payload["patient_id"].as_string() == patient.patient_id)
                           .limit(1)).scalar_one()
    return patient, pid

"""Patients with records at several institutions for the sharing tests, the demo and the
benchmark: generated records pushed through the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select

from phip.ingest.pipeline import Pipeline
from phip.store.models import Record
from phip.synth.generator import Generator, Patient

NOW = datetime(2026, 11, 22, 12, 0, 0)
#: data set -> items per document (a lab report's results, a prescription's drugs)
VISIT = {"outpatient_visit": 1, "lab_report": 3, "western_prescription": 2, "exam_report": 1}


@dataclass
class Seeded:
    patient: Patient
    records: dict[str, list[int]] = field(default_factory=dict)  # org -> record ids

    def person_id(self, pipeline: Pipeline) -> str:
        with pipeline.engine.connect() as conn:
            return conn.execute(select(Record.person_id).where(Record.id == next(iter(self.records.values()))[0])).scalar_one()


def seed_patient(pipeline: Pipeline, gen: Generator, orgs: list[tuple[str, str]], *, visits: int = 1,
                 datasets: dict[str, int] = VISIT, day: date = date(2026, 11, 20), patient: Patient | None = None) -> Seeded:
    """One patient with ``visits`` outpatient visits at each institution, each with the data sets
    given (items per document)."""
    patient = patient or gen.patient(orgs[0][0])
    out = Seeded(patient)
    for n, org in enumerate(orgs):
        local = Patient(**{**patient.__dict__, "org_code": org[0], "fields": dict(patient.fields)})
        for v in range(visits):
            e = gen.encounter(local, "out", day - timedelta(days=n * 30 + v), NOW)
            for dataset, items in datasets.items():
                records = gen.records(pipeline.standard.dataset(dataset), org, gen._ctx(e), items)
                receipt = pipeline.ingest(org[0], dataset, records, now=NOW)
                assert receipt.rejected == 0, receipt.as_dict()
        with pipeline.engine.connect() as conn:
            out.records[org[0]] = list(conn.execute(select(Record.id).where(
                Record.org_code == org[0], Record.payload["patient_id"].as_string() == patient.patient_id)).scalars())
    return out

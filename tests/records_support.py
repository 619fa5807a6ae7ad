"""Generated records the pipeline, push API and schedule tests share: a day of outpatient
visits at fixed platform times."""

from __future__ import annotations

from datetime import date, datetime

from phip.synth.generator import Generator

NOW = datetime(2026, 11, 22, 12, 0, 0)
DAY = date(2026, 11, 21)


def visits(orgs, n=20, seed=1, day=DAY):  # noqa: ANN001, ANN201
    """(code, outpatient visits) of the first institution on ``day``."""
    gen = Generator(seed=seed)
    org = orgs[0]
    records = []
    for _, _code, recs in gen.day([org], day, visits=n, admissions=1, datasets=["outpatient_visit"], now=NOW):
        records += recs
    return org[0], records


URL = "/api/v1/datasets/outpatient_visit/records"


def records(orgs, n=5, seed=1):  # noqa: ANN001, ANN201
    """The visits alone, as a push body's records."""
    return visits(orgs, n, seed)[1]

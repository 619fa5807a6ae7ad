"""Shared pieces of the pull-collection tests: real source databases and the truth check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import Engine, create_engine, select, text

import phip.collect
from phip.collect.mapping import Mapping, load_mapping
from phip.standard.catalog import load_standard
from phip.standard.validate import validator_for
from phip.store import models as m
from phip.synth import his_synth

EXAMPLE = Path(phip.collect.__file__).parent / "examples" / "his_demo.yaml"
ORG_CODE, ORG_NAME = his_synth.DEMO_ORG
MARIADB = os.environ.get("PHIP_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
POSTGRES = os.environ.get("PHIP_TEST_PG_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432")
#: Appended to every source database's name, so that two test runs on one machine (two
#: work trees) never share a HIS database.
SUFFIX = os.environ.get("PHIP_TEST_DB_SUFFIX", "")


def source_url(backend: str, name: str, tmp: Path) -> str:
    """The admin URL of a fresh HIS database ``phip_his_<name>`` on ``backend``."""
    if backend == "mariadb":
        return f"{MARIADB}/phip_his_{name}{SUFFIX}?charset=utf8mb4"
    if backend == "postgresql":
        return f"{POSTGRES}/phip_his_{name}{SUFFIX}"
    return f"sqlite:///{tmp / f'phip_his_{name}.db'}"


def demo_mapping(url: str, tmp: Path, **source: Any) -> Mapping:
    """The worked example with its URL placeholder pointing at ``url`` and optional source overrides."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["source"].update(source)
    path = tmp / f"{data['source']['name']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    os.environ["HIS_DEMO_URL"] = url
    return load_mapping(path)


def canonical(dataset: str, record: dict[str, Any]) -> dict[str, Any]:
    """A truth record as the pipeline stores it (validated, normalised, JSON round-tripped)."""
    std = load_standard()
    outcome = validator_for(std, std.dataset(dataset)).validate({"org_code": ORG_CODE, "org_name": ORG_NAME, **record})
    assert outcome.record is not None, (dataset, record, outcome.findings)
    return orjson.loads(orjson.dumps(outcome.record))


def stored(engine: Engine, dataset: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(m.Record.record_key, m.Record.payload).where(
            m.Record.org_code == ORG_CODE, m.Record.dataset == dataset)).all()
    return {key: payload for key, payload in rows}


def assert_matches_truth(engine: Engine, data: his_synth.HisData, datasets: list[str] | None = None) -> None:
    """Every data set holds exactly the truth: same keys, same values field by field."""
    for dataset, truth in data.truth.items():
        if datasets and dataset not in datasets:
            continue
        got = stored(engine, dataset)
        assert set(got) == set(truth), f"{dataset}: missing {sorted(set(truth) - set(got))[:5]}, extra {sorted(set(got) - set(truth))[:5]}"
        for key, record in truth.items():
            assert got[key] == canonical(dataset, record), f"{dataset} {key}"


def admin_engine(url: str) -> Engine:
    return create_engine(url)


def execute(url: str, sql: str, **params: Any) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()

"""The batch relink on Splink's Spark backend (issue 26): ``PHIP_EMPI_BACKEND=spark`` relinks a
synthetic population into the same persons as DuckDB does.

One Spark session (local mode, two cores, 1 GB) serves the module: starting the JVM takes about
ten seconds. The relink's own backend reuses it and leaves it running; the fixture stops it.
The comparison runs on SQLite only: the store's part of the relink is the same for both
backends and is tested on both databases in test_empi.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from tests.conftest import empty_store
from tests.empi_support import _insert_people
from phip.empi.backends import DuckDBBackend, SparkBackend, backend_named, spark_model
from phip.empi.errors import EmpiError
from phip.empi.model import DEFAULT_MODEL
from phip.empi.relink import relink
from phip.empi.synth import Register

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from phip.empi.backends import spark_session

    from pyspark import SparkContext

    session = spark_session("local[2]", "1g", tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()
    # stop() ends Spark but not the JVM pyspark launched, which idled on through the rest of the
    # suite (700 MB, a tenth of a core): shut the gateway and its process down too
    gateway = SparkContext._gateway
    if gateway is not None:
        gateway.shutdown()
        if getattr(gateway, "proc", None) is not None:
            gateway.proc.terminate()
            gateway.proc.wait(timeout=30)
        SparkContext._gateway = SparkContext._jvm = None


def test_the_stored_model_is_translated_to_spark_sql():
    model = json.loads(DEFAULT_MODEL.read_text(encoding="utf-8"))
    spark = spark_model(model)
    conditions = [lvl["sql_condition"] for c in spark["comparisons"] for lvl in c["comparison_levels"]]
    assert spark["sql_dialect"] == "spark" and model["sql_dialect"] == "duckdb"  # the stored model is untouched
    assert all('"' not in c for c in conditions)  # Spark reads "x" as a string, not a column
    assert "JARO_WINKLER(`address_key_l`, `address_key_r`) >= 0.9" in conditions
    assert not any("JAROWINKLER" in c.upper() for c in conditions)
    assert [r["blocking_rule"] for r in spark["blocking_rules_to_generate_predictions"]][-1] == "l.`id_no` = r.`id_no`"


def test_an_unknown_backend_is_refused(monkeypatch):
    with pytest.raises(EmpiError) as bad:
        backend_named("polars")
    assert bad.value.code == "BAD_EMPI_BACKEND"


def test_spark_without_pyspark_installed_says_how_to_install_it(monkeypatch):
    """An installation without the ``spark`` extra: the operator is told what to install, the
    backend does not half-start."""
    monkeypatch.setitem(__import__("sys").modules, "pyspark.sql", None)  # import fails as if absent
    with pytest.raises(EmpiError) as missing:
        backend_named("spark")
    assert missing.value.code == "SPARK_NOT_INSTALLED" and "phip[spark]" in missing.value.message


def _population(n: int, seed: int) -> dict[str, dict]:
    return {f"s{r.rec_id:05d}": {"name": r.name, "sex": r.sex, "birth_date": r.birth_date, "id_no": r.id_no,
                                 "phone": r.phone, "address": r.address} for r in Register(seed).rows(n)}


def _merged(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, merged_into FROM persons WHERE status = 'merged'")).all())


def _scored(pairs) -> dict[tuple[str, str], float]:  # noqa: ANN001
    return {(l, r): w for l, r, w in zip(*(pairs[c].to_pylist() for c in ("person_id_l", "person_id_r", "match_weight")))}


@pytest.mark.parametrize("store_engine", ["sqlite"], indirect=True)
def test_spark_relink_scores_and_merges_as_duckdb_does(engine, spark, monkeypatch):
    """3,000 synthetic persons (10% duplicates, twins and namesakes among them) relinked with
    each backend: the same pairs scored, the same merges into the same survivors, the same
    review items; one Spark prediction only (the first in a JVM takes twenty seconds).

    Pair weights may differ where the two Jaro–Winkler functions straddle an address threshold:
    DuckDB halves the count of out-of-order matched characters with integer division (as
    phip.empi.similarity does), the Splink jar keeps the half, so on long addresses with an odd
    count the jar's similarity is lower by a few hundredths. Both are Jaro–Winkler; such a pair
    lands one address level lower, about half a bit of weight, on a pair its other fields decide."""
    scored: dict[str, object] = {}
    for cls in (DuckDBBackend, SparkBackend):
        def spy(self, table, model, threshold, _predict=cls.predict):  # noqa: ANN001, ANN202
            scored[self.name] = out = _predict(self, table, model, threshold)
            return out
        monkeypatch.setattr(cls, "predict", spy)
    people = _population(3000, seed=5)
    _insert_people(engine, people)
    on_duckdb = relink(engine)  # the default backend
    merged_duckdb = _merged(engine)
    empty_store(engine)
    _insert_people(engine, people)
    monkeypatch.setenv("PHIP_EMPI_BACKEND", "spark")
    on_spark = relink(engine)
    assert (on_duckdb.backend, on_spark.backend) == ("duckdb", "spark")
    a, b = _scored(scored["duckdb"]), _scored(scored["spark"])
    assert a.keys() == b.keys() and len(a) > 300
    differ = [k for k in a if abs(a[k] - b[k]) > 1e-9]
    assert len(differ) <= len(a) // 200, differ
    assert on_duckdb.persons_merged > 100
    same = ("persons", "candidate_pairs", "linked_pairs", "clusters_merged", "persons_merged", "reviews_added", "blocked_by_id")
    assert {k: getattr(on_spark, k) for k in same} == {k: getattr(on_duckdb, k) for k in same}
    assert _merged(engine) == merged_duckdb
    assert not spark.sparkContext._jsc.sc().isStopped()  # the relink left the session it found running

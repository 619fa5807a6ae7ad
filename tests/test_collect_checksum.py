"""Change detection for a table without an update time (``change_detection: checksum``): the
source checksums key ranges, the collector re-reads only the ranges that changed.

On MariaDB (the brief's case: 20,000 visits, three corrected) and PostgreSQL, into the platform on
SQLite and PostgreSQL; rows fetched are counted by the run (``rows_read``)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from phip.runtime import build_pipeline
from phip.collect import checksum
from phip.synth import his_synth
from phip.collect.mapping import load_mapping
from phip.collect.runner import Collector
from phip.collect.tables import CollectChunk
from phip.store import models as m
from tests.collect_support import ORG_CODE, execute, source_url


def _run(engine, mapping):  # noqa: ANN001
    (result,) = Collector(engine, build_pipeline(engine)).run(mapping)
    assert result.status == "ok", result.error
    return result


def _versions(engine, dataset: str = "outpatient_visit") -> dict[str, int]:  # noqa: ANN001
    with engine.connect() as conn:
        rows = conn.execute(select(m.Record.record_key, m.Record.version).where(
            m.Record.org_code == ORG_CODE, m.Record.dataset == dataset)).all()
    return dict(rows)


@pytest.fixture(scope="module")
def mariadb_source(tmp_path_factory):
    return source_url("mariadb", "unstamped", tmp_path_factory.mktemp("his"))


def test_three_changed_rows_are_read_again_and_nothing_else(engine, mariadb_source):
    url = his_synth.build_unstamped(mariadb_source, 20_000)
    mapping = load_mapping(his_synth.unstamped_mapping(url, chunk_size=100))

    first = _run(engine, mapping)
    assert (first.mode, first.rows_read, first.accepted, first.chunks, first.chunks_changed) == \
        ("checksum", 20_000, 20_000, 200, 200)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CollectChunk)).scalar() == 200

    quiet = _run(engine, mapping)
    assert (quiet.rows_read, quiet.chunks_changed) == (0, 0)

    # Three rows corrected at the source, in three chunks: [101, 201), [7701, 7801), [19901, …)
    for key, name in ((150, "更正甲"), (7777, "更正乙"), (19_999, "更正丙")):
        execute(url, "UPDATE MZ_JZJL_LS SET BRXM = :n WHERE JZXH = :k", n=name, k=key)
    before = _versions(engine)
    third = _run(engine, mapping)
    assert third.chunks_changed == 3
    assert third.rows_read == 300  # the three chunks, not the 20,000 rows
    assert (third.updated, third.unchanged, third.accepted) == (3, 297, 0)
    after = _versions(engine)
    assert {k for k in after if after[k] != before[k]} == {"150", "7777", "19999"}
    assert all(after[k] == 2 for k in ("150", "7777", "19999"))
    with engine.connect() as conn:
        superseded = set(conn.execute(select(m.Record.record_key).join(
            m.RecordVersion, m.RecordVersion.record_id == m.Record.id)).scalars())
        names = dict(conn.execute(select(m.Record.record_key, m.Record.payload["name"].as_string())
                                  .where(m.Record.record_key.in_(["150", "7777", "19999"]))).all())
    assert superseded == {"150", "7777", "19999"}
    assert names == {"150": "更正甲", "7777": "更正乙", "19999": "更正丙"}

    # Rows appended past the last key grow the open-ended last chunk: past twice the chunk size
    # it is drawn again at the source and its rows read; a deleted row's chunk is read again and
    # the platform keeps the record as last read.
    execute(url, "INSERT INTO MZ_JZJL_LS SELECT JZXH + 20000, BRID, BRXM, XB, JZLB, KSDM, KSMC, JZSJ, ZDDM, ZDMC "
                 "FROM MZ_JZJL_LS WHERE JZXH <= 250")
    execute(url, "DELETE FROM MZ_JZJL_LS WHERE JZXH = 5000")
    fourth = _run(engine, mapping)
    assert fourth.accepted == 250
    assert fourth.rows_read == 99 + 350  # the chunk that lost a row, and the grown last chunk
    assert fourth.chunks == 200 + 3  # 350 rows drawn again as chunks of 100: four instead of one
    assert "5000" in _versions(engine)
    assert _run(engine, mapping).rows_read == 0


def test_chunk_state_follows_the_commit(engine, mariadb_source, monkeypatch):
    """A crash after the records of a chunk group are committed but before the chunk state is
    written: the next run reads those chunks again, stores nothing twice and then records them."""
    url = his_synth.build_unstamped(mariadb_source, 1_000)
    mapping = load_mapping(his_synth.unstamped_mapping(url, chunk_size=100, batch_size=300))
    monkeypatch.setattr(checksum, "GROUP_BATCHES", 1)  # groups of three chunks: several groups in 1,000 rows
    real_save = checksum._save
    calls = {"n": 0}

    def crash_on_second(conn, mapping_, job, chunks, run_id, unread=False):  # noqa: ANN001
        if chunks and not unread:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt  # the process dies here: the second group is committed, not recorded
        real_save(conn, mapping_, job, chunks, run_id, unread)

    monkeypatch.setattr(checksum, "_save", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        Collector(engine, build_pipeline(engine)).run(mapping)
    monkeypatch.setattr(checksum, "_save", real_save)
    with engine.connect() as conn:
        states = conn.execute(select(CollectChunk.rows)).scalars().all()
    assert len(_versions(engine)) == 600  # two groups of three chunks committed …
    assert len(states) == 10 and sorted(states) == [checksum.UNREAD] * 7 + [100] * 3  # … the first recorded

    again = _run(engine, mapping)
    assert again.rows_read == 700  # the unrecorded group again, and the four never read
    assert (again.accepted, again.unchanged, again.updated) == (400, 300, 0)
    assert len(_versions(engine)) == 1_000 and set(_versions(engine).values()) == {1}
    assert _run(engine, mapping).rows_read == 0


def test_postgresql_source(engine, tmp_path):
    url = his_synth.build_unstamped(source_url("postgresql", "unstamped", tmp_path), 2_000)
    mapping = load_mapping(his_synth.unstamped_mapping(url, chunk_size=100))
    assert _run(engine, mapping).rows_read == 2_000
    execute(url, "UPDATE MZ_JZJL_LS SET ZDMC = '急性咽炎', ZDDM = 'J02.900' WHERE JZXH IN (42, 1500)")
    result = _run(engine, mapping)
    assert (result.chunks_changed, result.rows_read, result.updated) == (2, 200, 2)
    assert _run(engine, mapping).rows_read == 0


def test_sqlite_source_is_refused_when_the_mapping_loads(tmp_path):
    from phip.collect.mapping import MappingError

    text = his_synth.unstamped_mapping(f"sqlite:///{tmp_path / 'his.db'}")
    with pytest.raises(MappingError) as info:
        load_mapping(text)
    assert info.value.code == "CHECKSUM_DIALECT"


def test_mapping_takes_a_cursor_or_change_detection_not_both():
    from phip.collect.mapping import MappingError

    text = his_synth.unstamped_mapping("mysql+pymysql://ro@127.0.0.1/his").replace(
        "    change_detection:", "    cursor: {column: JZSJ}\n    change_detection:")
    with pytest.raises(MappingError) as info:
        load_mapping(text)
    assert info.value.code == "MAPPING_INVALID" and "只能选其一" in info.value.message
    bad_key = his_synth.unstamped_mapping("mysql+pymysql://ro@127.0.0.1/his").replace("key: JZXH", "key: 'JZXH; DROP'")
    with pytest.raises(MappingError) as info:
        load_mapping(bad_key)
    assert "键列名" in info.value.message


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"])
def test_composite_key(engine, tmp_path, backend):
    """Chunks of a two-column key (row-value ranges) on both dialects."""
    url = his_synth.build_unstamped(source_url(backend, "unstamped_pair", tmp_path), 1_500)
    text = his_synth.unstamped_mapping(url, chunk_size=100).replace("key: JZXH", "key: [BRID, JZXH]")
    mapping = load_mapping(text)
    first = _run(engine, mapping)
    assert first.rows_read == 1_500 and first.chunks >= 15
    execute(url, "UPDATE MZ_JZJL_LS SET KSMC = '外科' WHERE JZXH = 777")
    second = _run(engine, mapping)
    assert (second.chunks_changed, second.updated) == (1, 1) and second.rows_read <= 100
    assert _run(engine, mapping).rows_read == 0

"""Issue 19 item 3: the push API under concurrent load on PostgreSQL with two workers, a
smaller but real run of ``benchmarks/push_load.py`` (50 clients × 2 batches of 500
records, one per wave): no 5xx but 503 with Retry-After (retried), every batch answered 2xx in the end,
every record stored once, and worker memory flat from one wave to the next."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from phip.api import push
from phip.store.db import make_engine
from tests.conftest import PG_URL

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "push_load.py"


def _load():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("push_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["push_load"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_fifty_clients_two_workers_no_5xx_no_loss_flat_memory():
    bench = _load()
    url = make_url(PG_URL)
    load_url = url.set(database=f"{url.database}_load").render_as_string(hide_password=False)
    r = bench.run(load_url, clients=50, batches=1, batch_size=500, waves=2, workers=2, echo=False)
    assert r.server_errors == 0, r.statuses
    assert not r.failed, r.failed[:3]
    assert r.stored == r.distinct == r.accepted == r.sent == 50_000
    growth = bench.flat_growth(r)
    assert growth is not None and growth < 0.10, r.rss  # the second wave leaves < 10% behind


def test_the_pool_holds_every_batch_slot_and_the_key_checks():
    """A worker stores MAX_CONCURRENT_BATCHES batches (one connection each) while other
    requests check keys: the pool has room for both, so a request waits for a batch slot (or
    503 SERVER_BUSY), never for a connection the batches hold."""
    engine = make_engine(PG_URL)
    capacity = engine.pool.size() + engine.pool._max_overflow  # type: ignore[attr-defined]
    assert capacity >= 2 * push.MAX_CONCURRENT_BATCHES
    engine.dispose()

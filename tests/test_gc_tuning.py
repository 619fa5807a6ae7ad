"""The collector switch around a batch (phip.gc_tuning.gc_paused) is never left off."""

from __future__ import annotations

import gc
import threading

import pytest

from phip.gc_tuning import gc_paused


@pytest.fixture(autouse=True)
def _restore_gc():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_back_on_after_an_error():
    gc.enable()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: leaves the switch to the outer block
            assert not gc.isenabled()
        assert not gc.isenabled()
        raise RuntimeError("batch failed")
    assert gc.isenabled()


def test_a_process_that_turned_it_off_keeps_it_off():
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_blocks_in_threads_end_with_it_on():
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def batch() -> None:
        with gc_paused():
            inside.set()
            release.wait(5)

    worker = threading.Thread(target=batch)
    worker.start()
    inside.wait(5)
    with gc_paused():  # found off by the other thread's batch: not this block's to turn on
        pass
    assert not gc.isenabled()
    release.set()
    worker.join(5)
    assert gc.isenabled()


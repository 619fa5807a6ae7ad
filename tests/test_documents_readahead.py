"""Documents read ahead by the validation process (:mod:`phip.documents.readahead`): the same
outcomes, in the same order, as reading each document here, whichever process read it."""

from __future__ import annotations

import pytest

from phip.documents import DocumentRefused, load_templates, read, render
from phip.documents.readahead import AHEAD, CHUNK, read_many
from phip.ingest import workers

from .documents_support import generate, ingest, stored_documents


def _outcome(got):
    if isinstance(got, DocumentRefused):
        return ("refused", [(p.code, p.path) for p in got.problems])
    return (got.template.code, got.document_id, got.records)


def _here(body):
    try:
        return read(body)
    except DocumentRefused as exc:
        return exc


@pytest.fixture()
def bodies(engine, pipeline, orgs) -> list[bytes]:
    """More documents than the process takes at once, refused ones among them, and a document
    sent twice (its second version must come out second)."""
    out: list[bytes] = []
    for code in ("C0002", "C0007"):
        template = load_templates().by_code[code]
        assert ingest(pipeline, generate(template, orgs, visits=60), template.dataset.code) > 0
        out += [render(template, rows) for rows in stored_documents(engine, template).values()]
    out = (out * (CHUNK * (AHEAD + 2) // len(out) + 1))[: CHUNK * (AHEAD + 2) + 5]
    out[3] = b"<ClinicalDocument/>"
    out[CHUNK + 1] = out[CHUNK + 1].replace(b"urn:hl7-org:v3", b"urn:other")
    out[-2] = b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"
    return out


def test_read_ahead_gives_every_outcome_in_order(bodies, monkeypatch):
    expected = [_outcome(_here(b)) for b in bodies]
    assert sum(o[0] == "refused" for o in expected) == 3
    ahead = [_outcome(m) for m in read_many(iter(bodies))]
    assert workers._pool is not None, "the documents must have been read by the validation process"
    assert ahead == expected
    monkeypatch.setenv("PHIP_VALIDATION_PROCESS", "0")
    assert [_outcome(m) for m in read_many(bodies)] == expected


def test_a_failing_process_leaves_the_reading_here(bodies, monkeypatch):
    """A chunk the process cannot answer (here: its task raises) is read in this process."""
    expected = [_outcome(_here(b)) for b in bodies]
    monkeypatch.setattr("phip.documents.readahead.workers.submit", lambda task, *args: workers.pool().submit(len, 5))
    assert [_outcome(m) for m in read_many(bodies)] == expected


def test_at_the_end_the_last_chunk_not_started_is_taken_back(bodies):
    """When the input is read, this process reads the chunks the process has not started,
    from the back, instead of waiting for all of them: each once, in its place."""
    from collections import deque
    from concurrent.futures import Future

    from phip.documents.readahead import _take_back

    running, queued, last = Future(), Future(), Future()
    assert running.set_running_or_notify_cancel()
    chunks = [bodies[:2], bodies[2:4], bodies[4:6]]
    waiting = deque(zip(chunks, (running, queued, last), (None, None, None), strict=True))
    assert _take_back(waiting)
    assert last.cancelled() and not queued.cancelled()
    assert [_outcome(m) for m in waiting[2][2]] == [_outcome(_here(b)) for b in chunks[2]]
    assert waiting[2][1] is None and waiting[1][1] is queued
    assert _take_back(waiting) and queued.cancelled()
    assert not _take_back(waiting), "a running chunk is the process's to finish"
    assert waiting[0][1] is running

"""Many received documents read on both cores: the validation process (:mod:`phip.ingest.workers`)
reads chunks of them ahead while this process validates and writes the records already read.

Reading (hardened parse, template check, mapping) costs several times what the pipeline costs
for the same records (docs/performance.md, "Shared documents"), so the writer would otherwise
wait for the reader; a read in the other process overlaps it. Whenever this process would wait
for a chunk, it reads the next one itself instead, so the reading spreads over both cores
whichever side is slower (SQLite or PostgreSQL, a loaded machine). Outcomes come back in the
order of the documents: a later version of a document still overwrites an earlier one. Without
the process (one core, turned off, broken) every document is read here: the same outcomes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from itertools import islice

from phip.ingest import workers

from .inbound import Mapped, read
from .problems import DocumentRefused, Problem
from .templates import load_templates

#: documents a task: ~20 KB each, enough that a task's round trip is a small part of it
CHUNK = 24
#: chunks in the process at once: a batch of 1,000 records takes the writer about as long
#: as the process needs to read this many, so it is not idle while this process writes
AHEAD = 8
#: a chunk in order: its documents, the process's future (None: read here), its outcomes once read here
_Slot = tuple[list[bytes], Future | None, list[Mapped | DocumentRefused] | None]


def read_many(bodies: Iterable[bytes]) -> Iterator[Mapped | DocumentRefused]:
    """Each document's outcome, in order: its records, or why it was refused."""
    source = iter(bodies)
    chunks = iter(lambda: list(islice(source, CHUNK)), [])
    if workers.pool() is None:
        for chunk in chunks:
            yield from _read_here(chunk)
        return
    waiting: deque[_Slot] = deque()
    sent = 0  # chunks in the process
    exhausted = False
    while True:
        while not exhausted and sent < AHEAD:
            chunk = next(chunks, None)
            if chunk is None:
                exhausted = True
                break
            future = workers.submit(read_remote, chunk)
            waiting.append((chunk, future, None if future is not None else _read_here(chunk)))
            sent += future is not None
        if not waiting:
            return
        chunk, future, done = waiting[0]
        if done is None and not future.done():  # type: ignore[union-attr]
            if not exhausted:
                chunk = next(chunks, None)  # rather than wait, read the next chunk here
                if chunk is None:
                    exhausted = True
                else:
                    waiting.append((chunk, None, _read_here(chunk)))
                continue
            if _take_back(waiting):  # the input is read: the process's queue is shared out
                sent -= 1
                continue
        waiting.popleft()
        if done is None:
            sent -= 1
            got = workers.result(future)
            done = _outcomes(got) if got is not None else _read_here(chunk)
        yield from done


def _take_back(waiting: deque[_Slot]) -> bool:
    """Read here the last chunk the process has not started, if any: at the end of the input
    the two processes then meet in the middle of what is left instead of this one waiting for
    the whole queue (a file of documents per institution ends often)."""
    for i in range(len(waiting) - 1, 0, -1):
        chunk, future, done = waiting[i]
        if done is None and future is not None and future.cancel():
            waiting[i] = (chunk, None, _read_here(chunk))
            return True
    return False


def _read_here(chunk: list[bytes]) -> list[Mapped | DocumentRefused]:
    out: list[Mapped | DocumentRefused] = []
    for body in chunk:
        try:
            out.append(read(body))
        except DocumentRefused as exc:
            out.append(exc)
    return out


def read_remote(chunk: list[bytes]) -> list[tuple]:
    """A chunk read in the validation process, as plain tuples (a template does not cross the
    process boundary, its code does): (code, document id, records) or (None, "", problems).
    Not preloaded there: most processes never read a document, and the ~0.2 s import on the
    first chunk is overlapped by this process reading the next ones."""
    return [(m.template.code, m.document_id, m.records) if isinstance(m, Mapped)
            else (None, "", [(p.code, p.message, p.path) for p in m.problems]) for m in _read_here(chunk)]


def _outcomes(rows: list[tuple]) -> list[Mapped | DocumentRefused]:
    by_code = load_templates().by_code
    return [Mapped(by_code[code], doc_id, got) if code is not None else DocumentRefused([Problem(*p) for p in got])
            for code, doc_id, got in rows]


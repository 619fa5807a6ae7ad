"""Person ids: time-ordered, unique, and never repeated by a forked process (buffered random bits)."""

from __future__ import annotations

import os
import time

from phip.ingest.identity import new_person_id


def test_ids_are_unique_and_time_ordered():
    ids = [new_person_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids) and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    time.sleep(0.002)
    later = new_person_id()
    assert later[:12] > ids[0][:12]  # milliseconds lead: new persons append to the indexes


def test_a_forked_child_does_not_repeat_the_parents_random_bits():
    new_person_id()  # the parent's buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_person_id()[12:].encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child and child != new_person_id()[12:]

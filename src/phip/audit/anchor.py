"""The head anchor (链头锚点): the newest committed (seq, mac, count), kept in a file outside
the database (``PHIP_AUDIT_ANCHOR_FILE``). Deleting the newest rows, or all of them, leaves a
valid chain behind; only a copy of the head kept elsewhere shows it is shorter than it was.

Several worker processes write it: a ``fcntl`` lock on a side file serialises them, the file is
replaced atomically (temporary file + ``os.replace``), and it never goes backwards.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from phip.config import get_settings


@dataclass(frozen=True)
class Head:
    seq: int
    mac: str
    count: int


def anchor_path() -> Path:
    return get_settings().audit_anchor_file


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read(path: Path | None = None) -> Head | None:
    path = path or anchor_path()
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return Head(int(doc["seq"]), str(doc["mac"]), int(doc["count"]))


def advance(head: Head, path: Path | None = None) -> bool:
    """Record ``head`` unless the anchor already holds a newer one; True when written."""
    path = path or anchor_path()
    with _locked(path):
        current = read(path)
        if current is not None and current.seq >= head.seq:
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"seq": head.seq, "mac": head.mac, "count": head.count}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True

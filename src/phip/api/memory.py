"""Worker memory that comes back (内存回收): glibc malloc settings for a server process that
stores batches on many threads at once.

glibc gives each thread that meets contention an arena of its own (up to 8 per core), and a
freed block returns to the system only from the top of its arena. Four batches of 1,000
records stored at once on the thread pool's threads left each worker at 530-600 MB after the
load (177 MB before), and a second identical load added another 12-17%
(``benchmarks/push_load.py``). Two arenas, and a trim when a batch ends, keep the worker near
its working set. No-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

M_ARENA_MAX = -8  # glibc malloc.h
ARENAS = 2


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


@cache
def limit_arenas() -> bool:
    """Cap malloc arenas for this process (once, before the thread pool starts); True when set."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, ARENAS))


def trim() -> None:
    """Give freed heap pages back to the system (after a batch, when its objects are gone)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)

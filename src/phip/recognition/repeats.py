"""Repeats (重复检查检验): the same item for the same person at another institution, ordered while
an earlier result was recognisable and already on the platform.

Judged from the repeat's order time (its application, sampling or exam time, else its report
time): a result the platform received only after the repeat was ordered could not have been
used, and one whose institution failed its quality assessment could not be relied on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from .catalog import Catalog, load_catalog
from .results import Eqa, Result, results_of


@dataclass(frozen=True)
class Repeat:
    result: Result  # the repeat
    earlier: Result  # the recognisable result of another institution it repeats


def usable_before(history: Iterable[Result], org_code: str, item_code: str, at: datetime, eqa: Eqa) -> Result | None:
    """The latest result of ``item_code`` from an institution other than ``org_code`` that was
    recognisable and on the platform at ``at``."""
    best = None
    for h in history:
        if (h.item.code == item_code and h.org_code != org_code and h.in_window(at) and h.received_at <= at
                and eqa.allows(h) and (best is None or h.time > best.time)):
            best = h
    return best


def by_person(results: Iterable[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        out[r.person_id].append(r)
    return out


def find_repeats(conn: Connection, start: datetime, end: datetime, *, org_code: str | None = None,
                 dataset: str | None = None, catalog: Catalog | None = None) -> list[Repeat]:
    """Repeats among the results reported in [start, end) (of one institution and data set if given)."""
    catalog = catalog or load_catalog()
    lookback = start - timedelta(days=catalog.longest_window)
    results = results_of(conn, lookback, end, persons_at=(org_code, dataset), scope=(start, end), catalog=catalog)
    eqa = Eqa.load(conn, [r.org_code for r in results], catalog)
    out = []
    for history in by_person(results).values():
        for r in history:
            if not (start <= r.time < end) or (org_code and r.org_code != org_code) or (dataset and r.dataset != dataset):
                continue
            earlier = usable_before(history, r.org_code, r.item.code, r.ordered_at, eqa)
            if earlier is not None:
                out.append(Repeat(r, earlier))
    return sorted(out, key=lambda p: (p.result.time, p.result.record_id))

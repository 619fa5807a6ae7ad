"""Which persons a page of records showed: pages that list records by their natural key
(findings) name the persons in the trail through this lookup."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select, tuple_

from phip.store.models import Record

_CHUNK = 500


def persons_of_records(engine: Engine, keys: Iterable[tuple[str, str, str | None]]) -> list[str]:
    """The persons of records named by (institution, data set, record key), in first-seen order."""
    wanted = list(dict.fromkeys(k for k in keys if k[2]))
    found: dict[tuple[str, str, str], str] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            rows = conn.execute(select(Record.org_code, Record.dataset, Record.record_key, Record.person_id)
                                .where(tuple_(Record.org_code, Record.dataset, Record.record_key).in_(chunk)))
            found.update({(o, d, k): p for o, d, k, p in rows if p})
    return list(dict.fromkeys(found[k] for k in wanted if k in found))

"""Extraction: rows read from a source in batches and mapped to records of the standard.
Used in the reader process (:mod:`.reader`) and in-process by :class:`.runner.Collector`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from phip.standard.catalog import DataSet
from phip.standard.validate import parse_datetime

from .mapping import Job, Mapping
from .source import SourceError, mask_url, source_url
from .source_errors import classify
from .transform import RowMapper

log = logging.getLogger("phip.collect")


def _cursor_value(kind: str, raw: Any) -> Any:
    """A row's cursor value, or None when it has none the platform can order by (NULL, or a
    text column holding something that is no time or id): that row is still ingested, and
    validation reports its own time field; it just cannot move the watermark. One such row
    used to fail the whole run."""
    if raw is None:
        return None
    try:
        if kind == "id":
            return int(raw)
        if isinstance(raw, datetime):
            return raw
        return parse_datetime(str(raw))
    except (TypeError, ValueError, OverflowError):
        log.warning("a %s cursor value cannot be ordered; its row is ingested without moving the watermark",
                    type(raw).__name__)  # the value itself is not logged: a text column may hold anything
        return None


def map_batches(job: Job, batches: Iterator[tuple[Sequence[Any], RowMapper]], number: int = 0
                ) -> Iterator[tuple[int, list[Any], Any]]:
    """(rows read, mapped records, highest cursor value of the batch) per batch of rows."""
    kind = job.cursor.kind if job.cursor else "none"
    for rows, mapper in batches:
        records = [mapper(row, number + i + 1) for i, row in enumerate(rows)]
        number += len(rows)
        batch_high = None
        if mapper.cursor_index is not None:
            idx = mapper.cursor_index
            values = [v for row in rows if (v := _cursor_value(kind, row[idx])) is not None]
            batch_high = max(values) if values else None
        yield len(rows), records, batch_high


def read_batches(mapping: Mapping, job: Job, dataset: DataSet, source: Engine, sql: str, count_sql: str,
                 params: dict[str, Any], batch_size: int, count: bool, on_total: Callable[[int | None], None],
                 ) -> Iterator[tuple[Sequence[Any], RowMapper]]:
    """Batches of rows from a server-side cursor; every driver failure becomes a SourceError
    classified by :func:`phip.collect.source_errors.classify` (retried or not)."""
    url = source_url(mapping)
    where = {"backend": url.get_backend_name(), "source": mapping.name, "url": url, "job": job.key,
             "sent": sql, "own": job.sql}
    try:
        conn = source.connect()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the source's
        raise (classify(exc, stage="connect", **where)
               or SourceError(f"无法连接数据源{mapping.name}（{mask_url(url)}）：{type(exc).__name__}")) from None
    with conn:
        try:
            total = conn.execute(text(count_sql), params).scalar() if count else None
            on_total(total)
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(text(sql), params)
            partitions = result.partitions(batch_size)
        except Exception as exc:  # noqa: BLE001
            if (error := classify(exc, stage="query", **where)) is not None:
                raise error from None
            raise
        mapper = RowMapper(mapping, job, dataset, list(result.keys()))
        while True:
            try:
                rows = next(partitions)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001
                if (error := classify(exc, stage="read", **where)) is not None:
                    raise error from None
                raise
            yield rows, mapper

"""File import (文件导入): a file is read lazily and fed to the pipeline in batches.

Batches stream through :meth:`Pipeline.ingest_stream` (the next batch is read and validated
while the previous one is written). Each batch commits on its own, so an import that is killed half-way keeps the batches it
finished; running the same import again finds them unchanged (content hash) and stores the
rest — no gap, no duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path

from phip.standard.validate import platform_now

from .pipeline import Pipeline
from .receipt import Receipt
from .readers import read_records


def ingest_file(
    pipeline: Pipeline,
    path: Path,
    org_code: str,
    dataset_ref: str,
    *,
    fmt: str | None = None,
    batch_size: int = 1000,
    on_batch: Callable[[Receipt], None] | None = None,
    keep_rejections: int | None = None,
) -> Receipt:
    """The file's receipt: its counts, and its rejections (the first ``keep_rejections`` of
    them when given; all are stored with their batches for feedback)."""
    dataset = pipeline.dataset(dataset_ref)
    pipeline.institution_name(org_code)  # fail before reading a large file
    records = read_records(path, dataset, fmt)
    batches = iter(lambda: list(islice(records, batch_size)), [])
    total = Receipt("-", org_code, dataset.code, "file", platform_now())
    for receipt in pipeline.ingest_stream(org_code, dataset.code, batches, source="file", source_ref=path.name):
        total.add(receipt, keep_rejections)
        if on_batch:
            on_batch(receipt)
    return total

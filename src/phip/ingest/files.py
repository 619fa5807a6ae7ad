"""File import (文件导入): a file is read lazily and fed to the pipeline in batches.

Each batch commits on its own, so an import that is killed half-way keeps the batches it
finished; running the same import again finds them unchanged (content hash) and stores the
rest — no gap, no duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from pathlib import Path

from .pipeline import Pipeline, Receipt
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
) -> Receipt:
    dataset = pipeline.dataset(dataset_ref)
    pipeline.institution_name(org_code)  # fail before reading a large file
    records = read_records(path, dataset, fmt)
    total: Receipt | None = None
    offset = 0
    while chunk := list(islice(records, batch_size)):
        receipt = pipeline.ingest(org_code, dataset.code, chunk, source="file", source_ref=path.name, index_base=offset)
        offset += len(chunk)
        if total is None:
            total = receipt
            total.rejections = list(receipt.rejections)
        else:
            total.add(receipt)
        if on_batch:
            on_batch(receipt)
    if total is None:
        from phip.standard.validate import platform_now

        total = Receipt("-", org_code, dataset.code, "file", platform_now())
    return total

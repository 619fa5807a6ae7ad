"""The province's side (省平台接收市级平台数据): a city platform's key pushes records of many
institutions in one batch; each record keeps its own ``org_code``, and only institutions of the
key's region are accepted (others: ``ORG_OUTSIDE_REGION``, per record)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from phip.ingest.pipeline import Pipeline
from phip.ingest.receipt import Receipt, Rejection
from phip.orgs.keys import city_platforms, institution_regions
from phip.standard.validate import finding, platform_now
from phip.store.models import Batch, Record
from phip.store.sql import select_in

_RECORDS = Record.__table__
_HEAD = (_RECORDS.c.record_key, _RECORDS.c.version, _RECORDS.c.org_code, _RECORDS.c.dataset)

#: Receipt source of batches a city platform forwarded (``batches.source``).
CITY_SOURCE = "forward"


def ingest_for_region(pipeline: Pipeline, city_org: str, region_code: str, dataset_code: str,
                      records: Sequence[Any], versions: Sequence[tuple[str, int]] | None = None) -> Receipt:
    """One receipt for a city platform's batch: the records of each institution of the region go
    through the pipeline as that institution's batch (in their order), the rest are refused.
    Indices of the rejections are those of the whole batch.

    ``versions``: the city's (record key, version) of each record. A version the province
    already has (its head is that version or later) is counted unchanged and not stored again:
    a re-sent batch, or an operator's re-send of a range, must not store an old version on top
    of a newer one."""
    groups: dict[str, list[int]] = {}
    for index, raw in enumerate(records):
        claimed = raw.get("org_code") if isinstance(raw, dict) else None
        groups.setdefault(str(claimed or "").strip().upper(), []).append(index)
    regions = institution_regions(pipeline.engine, [code for code in groups if code])
    receipt = Receipt(uuid.uuid4().hex, city_org, dataset_code, CITY_SOURCE, platform_now())
    for org, indices in groups.items():
        region = regions.get(org)
        if region != region_code:
            code = "ORG_UNREGISTERED" if region is None else "ORG_OUTSIDE_REGION"
            receipt.total += len(indices)
            receipt.rejected += len(indices)
            receipt.rejections.extend(
                Rejection(i, None, [finding(code, "org_code", value=org or "（空）", region=region_code)]) for i in indices)
            continue
        if versions is not None:
            have = stored_versions(pipeline.engine, org, dataset_code, [versions[i][0] for i in indices])
            kept = [i for i in indices if versions[i][1] > have.get(versions[i][0], 0)]
            receipt.total += len(indices) - len(kept)
            receipt.unchanged += len(indices) - len(kept)
            indices = kept
            if not indices:
                continue
        part = pipeline.ingest(org, dataset_code, [records[i] for i in indices], source=CITY_SOURCE,
                               source_ref=city_org)
        for r in part.rejections:
            r.index = indices[r.index]
        receipt.add(part)
    receipt.rejections.sort(key=lambda r: r.index)
    return receipt


def stored_versions(engine: Engine, org_code: str, dataset_code: str, keys: list[str]) -> dict[str, int]:
    """The stored head version of each of ``keys`` of one institution's data set."""
    with engine.connect() as conn:
        return {key: version for key, version, org, ds in select_in(conn, _HEAD, _RECORDS.c.record_key, keys)
                if org == org_code and ds == dataset_code}


#: How far back the province looks for a city's last batch: an index range of
#: ``batches.received_at``, never the whole history of a city that stopped sending.
LAST_BATCH_DAYS = 30


@dataclass(frozen=True)
class CityActivity:
    """What one city platform sent the province (the province's dashboard)."""

    org_code: str  # the city key's holder
    region_code: str
    name: str  # the region's name, e.g. 长春市
    last_batch: datetime | None  # within LAST_BATCH_DAYS
    records_24h: int  # records received through it in the last 24 hours
    stored_24h: int  # of them new or corrected
    institutions_24h: int


def city_activity(engine: Engine, now: datetime | None = None) -> list[CityActivity]:
    """Per city platform (a holder of a city key): its last batch, records of the last 24 h."""
    cities = city_platforms(engine)
    if not cities:
        return []
    now = now or platform_now()
    b = Batch
    with engine.connect() as conn:
        day = {ref: (int(total or 0), int(stored or 0), n) for ref, total, stored, n in conn.execute(
            select(b.source_ref, func.sum(b.total), func.sum(b.accepted + b.updated), func.count(func.distinct(b.org_code)))
            .where(b.received_at >= now - timedelta(hours=24), b.source == CITY_SOURCE,
                   b.source_ref.in_(list(cities))).group_by(b.source_ref))}
        last = dict(conn.execute(
            select(b.source_ref, func.max(b.received_at))
            .where(b.received_at >= now - timedelta(days=LAST_BATCH_DAYS), b.source == CITY_SOURCE,
                   b.source_ref.in_(list(cities))).group_by(b.source_ref)).all())
    return sorted((CityActivity(org, region, name, last.get(org), *day.get(org, (0, 0, 0)))
                   for org, (region, name) in cities.items()), key=lambda c: c.region_code)

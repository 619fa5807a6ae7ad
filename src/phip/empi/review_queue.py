"""Keeping the review queue (人工审核队列) consistent with the persons after merges.

A merge makes some pending reviews moot and others stale: a review between the two persons
merged is resolved (``merged``); a review naming a person merged away is rewritten to name the
survivor (its evidence recomputed for a ``possible_match``: the survivor's golden record is what
the reviewer now compares; an ``id_conflict`` keeps its evidence, which is the conflicting
record's against the number's holder), unless the survivor is the other side (resolved) or the rewritten
pair already has a review (this one resolved as its duplicate). Called by the manual merge,
the review decision and the batch relink, inside their transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update

from .model import Model
from .store import chunks, load_persons
from .tables import EmpiReview


def pair_key(kind: str, a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return f"{kind}:{lo}:{hi}"


def follow_merges(conn: Connection, moves: Mapping[str, str], actor: str, now: datetime, model: Model | None) -> dict[str, int]:
    """Resolve or rewrite the pending reviews that name a retired person (``moves``: retired →
    survivor). Returns counts: ``resolved`` and ``rewritten``."""
    counts = {"resolved": 0, "rewritten": 0}
    if not moves:
        return counts
    r = EmpiReview.__table__
    retired = sorted(moves)
    items: dict[int, dict[str, Any]] = {}
    for chunk in chunks(retired):
        for row in conn.execute(select(r).where(r.c.status == "pending", or_(
                r.c.person_id.in_(chunk), r.c.candidate_id.in_(chunk)))).mappings():
            items[row["id"]] = dict(row)
    if not items:
        return counts
    rewrites: list[tuple[dict[str, Any], str, str]] = []
    resolved: list[tuple[int, str]] = []
    for item in sorted(items.values(), key=lambda x: x["id"]):
        a, b = moves.get(item["person_id"], item["person_id"]), moves.get(item["candidate_id"], item["candidate_id"])
        if a == b:
            resolved.append((item["id"], "两人已合并为同一居民"))
        else:
            rewrites.append((item, a, b))
    taken: set[str] = set()
    wanted = [pair_key(i["kind"], a, b) for i, a, b in rewrites]
    for chunk in chunks(wanted):
        taken |= set(conn.execute(select(r.c.pair_key).where(r.c.pair_key.in_(chunk))).scalars())
    persons = load_persons(conn, {p for _, a, b in rewrites for p in (a, b)}) if rewrites else {}
    for item, a, b in rewrites:
        key = pair_key(item["kind"], a, b)
        if key in taken:
            resolved.append((item["id"], "合并后与另一审核项重复"))
            continue
        taken.add(key)
        values: dict[str, Any] = {"person_id": a, "candidate_id": b, "pair_key": key}
        left, right = (persons.get(a) or {}).get("match"), (persons.get(b) or {}).get("match")
        if item["kind"] == "possible_match" and model is not None and left and right:
            weight, prob = model.score(left, right)
            values |= {"weight": weight, "probability": prob,
                       "evidence": [e.as_dict() for e in model.evidence(left, right)]}
        conn.execute(update(r).where(r.c.id == item["id"]).values(**values))
        counts["rewritten"] += 1
    for review_id, note in resolved:
        conn.execute(update(r).where(r.c.id == review_id).values(status="merged", decided_at=now, decided_by=actor, note=note))
    counts["resolved"] = len(resolved)
    return counts


"""Batch relink (批量重新关联): all active persons through Splink, changes written back.

1. read every active person's matching row from the store as Arrow (no CSV);
2. predict scored pairs with the stored model (no training at relink time) down to the review
   threshold, on the Splink backend ``PHIP_EMPI_BACKEND`` names (DuckDB in process, or Spark:
   :mod:`.backends`; the only step that differs between them);
3. cluster, in this process on the pair list (Python unions): pairs at or above the link
   threshold, strongest first (ties in a fixed order), never joining two different valid ID
   numbers (one person has one ID number; a chain through a record without one must not weld
   two residents together);
4. write back. Steps 3 and 4 run in one transaction under the EMPI lock, from the store as it
   is then: persons merged or split since the read are left to the next run, and reviews and
   identifiers are read again. Set-based: every cluster merges into one survivor (the
   holder of the ID number, else the oldest id), records and identifiers follow, each merge is
   an audited ``relink`` event that :func:`edits.undo` reverses; pairs between
   the thresholds not seen before become review items.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
from sqlalchemy import Connection, Engine, func, select, text

from phip.standard.validate import platform_now
from phip.store.models import Person, PersonIdentifier, Record
from phip.store.sql import bulk_insert, insert_ignoring_conflicts, select_in

from . import golden, identity_guard, review_queue, trail
from .backends import open_backend
from .features import GOLDEN_FIELDS
from .resolver import load_active_model
from .review_queue import pair_key
from .store import chunks, load_persons, lock_exclusive
from .tables import EmpiBlock, EmpiEvent, EmpiReview
from .training import read_persons

Progress = Callable[[str, int, int], None]  # (stage, done, total)
#: the order pairs are unioned in: the guard keeps the first of two joins that clash, so equal
#: weights need a fixed order, and a weight is rounded first (backends sum it in their own order)
STRONGEST_FIRST = "round(match_weight, 6) DESC, person_id_l, person_id_r"
STAGES = ("read", "predict", "cluster", "write")


@dataclass
class RelinkSummary:
    run_id: str
    backend: str = ""  # the Splink backend that predicted the pairs (PHIP_EMPI_BACKEND)
    persons: int = 0
    candidate_pairs: int = 0
    linked_pairs: int = 0
    clusters_merged: int = 0
    persons_merged: int = 0
    records_moved: int = 0
    identifiers_moved: int = 0
    reviews_added: int = 0
    reviews_resolved: int = 0  # pending reviews a merge of this run made moot
    reviews_rewritten: int = 0  # pending reviews now naming a survivor
    blocked_by_id: int = 0  # joins refused: two numbers or cards, a rejected or pending id_conflict review
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Clusters:
    """Union–find that refuses to join two different valid ID numbers (or health cards of one
    issuer) held by the records behind the persons (:mod:`identity_guard`), not only their
    golden records."""

    def __init__(self, holds: dict[str, set[identity_guard.Claim]]):
        self.parent: dict[str, str] = {}
        self.holds = holds  # root -> what its members hold

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> bool | None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        ha, hb = self.holds.get(ra, set()), self.holds.get(rb, set())
        if identity_guard.clash(ha, hb):
            return False
        self.parent[rb] = ra
        if hb:
            self.holds[ra] = ha | hb
        return True


def _cannot_link(conn: Connection, persons: set[str]) -> list[tuple[str, str, str]]:
    """Pairs the relink must not join: rejected reviews (a reviewer said different persons) and
    pending ``id_conflict`` reviews (ingest kept the record apart because its name contradicts
    the number's holder; a strong score on phone and birth date must not decide it instead)."""
    r = EmpiReview.__table__
    cols = (r.c.pair_key, r.c.kind, r.c.status, r.c.person_id, r.c.candidate_id)
    ids = sorted(persons)
    rows = {row[0]: row for key in (r.c.person_id, r.c.candidate_id) for row in select_in(conn, cols, key, ids)}
    return [(a, b, key) for key, kind, status, a, b in rows.values()
            if status == "rejected" or (status == "pending" and kind == "id_conflict")]


def relink(engine: Engine, actor: str = "relink", progress: Progress | None = None, dry_run: bool = False,
           backend: str | None = None) -> RelinkSummary:
    """Relink every active person; ``backend`` (``duckdb``/``spark``) overrides ``PHIP_EMPI_BACKEND``."""
    summary = RelinkSummary(run_id=uuid.uuid4().hex[:12])
    tick = progress or (lambda stage, done, total: None)
    with engine.connect() as conn:
        model = load_active_model(conn)
    clock = time.perf_counter()

    con = duckdb.connect()
    table = read_persons(engine, con)
    summary.persons = table.num_rows
    summary.seconds["read"] = round(time.perf_counter() - clock, 2)
    tick("read", 1, 1)

    clock = time.perf_counter()
    with open_backend(backend) as splink:  # a Spark session starts here and stops on leaving
        summary.backend = splink.name
        pairs = splink.predict(table, model.settings, model.review_threshold) if table.num_rows > 1 else None
    summary.seconds["predict"] = round(time.perf_counter() - clock, 2)
    tick("predict", 1, 1)

    strong: list[tuple[str, str, float]] = []
    weak: list[tuple[str, str, float, float]] = []
    ids: dict[str, str] = {}
    if pairs is not None and pairs.num_rows:
        summary.candidate_pairs = pairs.num_rows
        con.register("scored", pairs)
        con.register("persons_in", table)
        strong = con.execute(
            "SELECT s.person_id_l, s.person_id_r, s.match_probability FROM scored s "
            f"WHERE s.match_probability >= {model.link_threshold} ORDER BY {STRONGEST_FIRST}").fetchall()
        weak = con.execute("SELECT person_id_l, person_id_r, match_probability, match_weight FROM scored "
                           f"WHERE match_probability < {model.link_threshold}").fetchall()
        ids = dict(con.execute("SELECT person_id, id_no FROM persons_in WHERE id_valid").fetchall())
    con.close()
    if not strong and not weak:
        tick("cluster", 1, 1)
        tick("write", 1, 1)
        return summary

    # Clustered and written in one transaction under the EMPI lock, from the persons, reviews
    # and identifiers as they are now: the read and the prediction took minutes without the
    # lock, while operators merged, split or answered reviews and ingest attached new numbers.
    with engine.connect() if dry_run else engine.begin() as conn:  # a dry run writes nothing, locks nothing
        if not dry_run:
            lock_exclusive(conn)
        clock = time.perf_counter()
        merges, review_pairs = _cluster(conn, summary, strong, weak, ids)
        summary.seconds["cluster"] = round(time.perf_counter() - clock, 2)
        tick("cluster", 1, 1)
        clock = time.perf_counter()
        if not dry_run and (merges or review_pairs):
            _write(conn, summary, merges, review_pairs, model, actor, platform_now(), tick)
        summary.seconds["write"] = round(time.perf_counter() - clock, 2)
    tick("write", 1, 1)
    return summary


def _cluster(conn: Connection, summary: RelinkSummary, strong: list[tuple[str, str, float]],
             weak: list[tuple[str, str, float, float]], ids: dict[str, str]) -> tuple[list[tuple[str, str]], list]:
    """The merges (survivor, retired) and the review pairs of the scored pairs, among persons
    still active: one merged or split away since the read is left to the next run, as are its
    pairs (its survivor is scored then)."""
    involved = {p for left, right, *_ in (*strong, *weak) for p in (left, right)}
    active = {row[0] for row in select_in(conn, [Person.id, Person.status], Person.id, sorted(involved))
              if row[1] == "active"}
    strong = [pair for pair in strong if pair[0] in active and pair[1] in active]
    weak = [pair for pair in weak if pair[0] in active and pair[1] in active]
    linked = {p for left, right, _ in strong for p in (left, right)}  # only persons a strong pair may join
    holds = identity_guard.held(conn, linked)
    for a, b, key in _cannot_link(conn, linked):
        # a reviewer's "not the same person", or an ID-number conflict still waiting for
        # one: kept apart as if they held two different numbers of a kind of their own
        holds.setdefault(a, set()).add(("review", key, a))
        holds.setdefault(b, set()).add(("review", key, b))
    clusters = _Clusters(holds)
    for left, right, _ in strong:
        joined = clusters.union(left, right)
        summary.blocked_by_id += joined is False
    summary.linked_pairs = len(strong)
    members: dict[str, list[str]] = {}
    for pid in list(clusters.parent):
        members.setdefault(clusters.find(pid), []).append(pid)
    merges: list[tuple[str, str]] = []
    for root, group in members.items():
        group = sorted(set(group) | {root})
        holder = sorted(p for p in group if p in ids) or group
        survivor = holder[0]
        merges += [(survivor, p) for p in group if p != survivor]
        summary.clusters_merged += 1
    summary.persons_merged = len(merges)
    return merges, [(left, right, p, w) for left, right, p, w in weak if clusters.find(left) != clusters.find(right)]


def _stage_pairs(conn: Connection, merges: list[tuple[str, str]]) -> None:
    conn.execute(text("CREATE TEMP TABLE IF NOT EXISTS empi_relink_pairs (retired VARCHAR(32) PRIMARY KEY, survivor VARCHAR(32))"))
    conn.execute(text("DELETE FROM empi_relink_pairs"))
    table = _temp_table()
    bulk_insert(conn, table, [{"retired": r, "survivor": s} for s, r in merges])
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE empi_relink_pairs"))  # a temp table has no statistics: the joins below need them


def _temp_table() -> Any:
    from sqlalchemy import Column, MetaData, String, Table

    return Table("empi_relink_pairs", MetaData(), Column("retired", String(32), primary_key=True), Column("survivor", String(32)))


def _golden_of_merged(conn: Connection) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Golden values and sources of every person in a staged merge, in one joined read (no
    ``IN`` lists, no matching row: survivors' matching rows are rebuilt from the folded values)."""
    p, t = Person.__table__, _temp_table()
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    cols = [p.c.id, *[p.c[f] for f in GOLDEN_FIELDS], p.c.sources]
    for query in (select(*cols).join(t, p.c.id == t.c.retired),
                  select(*cols).where(p.c.id.in_(select(t.c.survivor).distinct()))):
        for row in conn.execute(query):
            out[row[0]] = (dict(zip(GOLDEN_FIELDS, row[1:-1])), row[-1] or {})
    return out


def _write(conn: Connection, summary: RelinkSummary, merges: list[tuple[str, str]],
           review_pairs: list[tuple[str, str, float, float]], model: Any, actor: str, now: datetime, tick: Progress) -> None:
    written: list[int] = []  # ids of the merge events, for the audit trail
    if merges:
        _stage_pairs(conn, merges)
        golden_of = _golden_of_merged(conn)
        moved_ids: dict[str, list[list[str]]] = {}
        for kind, scope, value, retired in conn.execute(text(
                "SELECT i.kind, i.scope, i.value, i.person_id FROM person_identifiers i "
                "JOIN empi_relink_pairs t ON i.person_id = t.retired")):
            moved_ids.setdefault(retired, []).append([kind, scope, value])
        moved_records: dict[str, list[int]] = {}
        for rid, retired in conn.execute(text(
                "SELECT r.id, r.person_id FROM records r JOIN empi_relink_pairs t ON r.person_id = t.retired")):
            moved_records.setdefault(retired, []).append(rid)
        summary.identifiers_moved = sum(map(len, moved_ids.values()))
        summary.records_moved = sum(map(len, moved_records.values()))
        # UPDATE … FROM joins the staged pairs (PostgreSQL and SQLite ≥ 3.33); no per-row statements
        for table in ("person_identifiers", "records"):
            conn.execute(text(f"UPDATE {table} SET person_id = t.survivor FROM empi_relink_pairs t "
                              f"WHERE {table}.person_id = t.retired"))
        conn.execute(text("UPDATE persons SET status = 'merged', updated_at = :now, merged_into = t.survivor "
                          "FROM empi_relink_pairs t WHERE persons.id = t.retired"), {"now": now})
        where = "person_id IN (SELECT retired FROM empi_relink_pairs)"
        conn.execute(text(f"DELETE FROM empi_blocks WHERE {where}"))
        tick("write", 1, 3)
        # survivors' golden records: fold each retired person's in (latest trustworthy value wins)
        state: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        events = []
        reason = f"批量重新关联 {summary.run_id}"
        for survivor, retired in merges:
            keep = state.get(survivor) or golden_of[survivor]
            gone = golden_of[retired]
            state[survivor] = golden.combine(keep, gone)
            events.append({"action": "relink", "at": now, "actor": actor, "reason": reason,
                           "person_id": survivor, "other_id": retired,
                           "detail": {"identifiers": moved_ids.get(retired, []), "records": moved_records.get(retired, []),
                                      "before": {"survivor": _snap(keep), "retired": _snap(gone)}, "run": summary.run_id}})
        updates, blocks = [], {}
        for pid, (values, sources) in state.items():
            if (values, sources) == golden_of[pid]:
                continue  # nothing the retired persons brought was newer: row and index keys stay
            columns, keys = golden.person_row(values)
            updates.append({"pid": pid, **columns, "sources": sources})
            blocks[pid] = keys
        if updates:
            _update_survivors(conn, updates, blocks, now)
        tick("write", 2, 3)
        before = conn.execute(select(func.max(EmpiEvent.id))).scalar() or 0  # the lock keeps others out
        bulk_insert(conn, EmpiEvent.__table__, events)
        written = conn.execute(select(EmpiEvent.id).where(EmpiEvent.id > before)).scalars().all()
        conn.execute(text("DROP TABLE empi_relink_pairs"))
        # pending reviews naming a person merged away now name its survivor (or are resolved)
        moved = review_queue.follow_merges(conn, {r: s for s, r in merges}, actor, now, model)
        summary.reviews_resolved, summary.reviews_rewritten = moved["resolved"], moved["rewritten"]
    if review_pairs:
        # a pair between the thresholds is proposed between the persons as they are after this
        # run's merges: survivors, with their folded golden records (never a person merged away)
        survivor_of = {r: s for s, r in merges}
        pairs: dict[tuple[str, str], None] = {}
        for left, right, _, _ in review_pairs:
            a, b = survivor_of.get(left, left), survivor_of.get(right, right)
            if a != b:
                pairs[(min(a, b), max(a, b))] = None
        persons = load_persons(conn, {p for pair in pairs for p in pair})
        holds = identity_guard.held(conn, persons)  # a pair the guard would refuse is no question
        rows = []
        for low, high in pairs:
            a, b = persons.get(high), persons.get(low)
            if not a or not b or not a.get("match") or not b.get("match") or identity_guard.clash(holds[high], holds[low]):
                continue
            weight, prob = model.score(a["match"], b["match"])
            rows.append({"kind": "possible_match", "status": "pending", "pair_key": pair_key("possible_match", low, high),
                         "person_id": high, "candidate_id": low, "probability": prob,
                         "weight": weight, "evidence": [e.as_dict() for e in model.evidence(a["match"], b["match"])],
                         "created_at": now})
        known = set()
        keys = [r["pair_key"] for r in rows]
        for chunk in chunks(keys):
            known |= set(conn.execute(select(EmpiReview.pair_key).where(EmpiReview.pair_key.in_(chunk))).scalars())
        fresh = [r for r in rows if r["pair_key"] not in known]
        for chunk in chunks(fresh, 1000):
            conn.execute(insert_ignoring_conflicts(conn, EmpiReview.__table__), list(chunk))
        summary.reviews_added = len(fresh)
    # last: the trail's append lock is held to the commit, and every audited read waits on it
    trail.record(conn, written)
    tick("write", 3, 3)


def _update_survivors(conn: Connection, updates: list[dict[str, Any]], blocks: dict[str, list[str]], now: datetime) -> None:
    """New golden records of the survivors: staged in a temporary table with one bulk load, then
    one UPDATE … FROM; their index keys deleted and re-inserted in bulk (ids are unique per key)."""
    from sqlalchemy import JSON, Column, Date, MetaData, String, Table

    cols = [c for c in updates[0] if c != "pid"]
    types = {"birth_date": Date(), "match": JSON(), "sources": JSON()}
    staged = Table("empi_relink_golden", MetaData(), Column("pid", String(32), primary_key=True),
                   *[Column(c, types.get(c, String(200))) for c in cols], prefixes=["TEMPORARY"])
    staged.create(conn)
    bulk_insert(conn, staged, updates)
    cast = "::json" if conn.dialect.name == "postgresql" else ""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ANALYZE empi_relink_golden"))
    sets = ", ".join(f"{c} = g.{c}{cast if c in ('match', 'sources') else ''}" for c in cols)
    conn.execute(text(f"UPDATE persons SET {sets}, updated_at = :now FROM empi_relink_golden g WHERE persons.id = g.pid"),
                 {"now": now})
    conn.execute(text("DELETE FROM empi_blocks WHERE person_id IN (SELECT pid FROM empi_relink_golden)"))
    bulk_insert(conn, EmpiBlock.__table__, [{"key": k, "person_id": pid} for pid, keys in blocks.items()
                                            for k in dict.fromkeys(keys)])
    staged.drop(conn)


def _snap(golden_pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    values, sources = golden_pair
    out = dict(values)
    if out.get("birth_date") is not None and not isinstance(out["birth_date"], str):
        out["birth_date"] = out["birth_date"].isoformat()
    return {**out, "sources": sources}


__all__ = ["RelinkSummary", "relink", "PersonIdentifier", "Record", "EmpiBlock"]

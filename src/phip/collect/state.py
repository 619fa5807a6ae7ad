"""Collection state on the platform store: leases, cursors (watermarks) and runs.

The lease is a row per source with a holder and an expiry. Taking it is a compare-and-set
(``UPDATE … WHERE holder = <seen> AND expires = <seen>``): on PostgreSQL the second of two
concurrent updates re-reads the row after the first commits and finds it changed, on SQLite
``BEGIN IMMEDIATE`` serialises them, so exactly one worker wins. A holder renews the lease
after every batch and gives it up at the end; a holder that died (SIGKILL, power cut) loses
it when it expires, or at once when it ran on this machine and its process is gone.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from phip.errors import PhipError
from phip.standard.validate import platform_now
from phip.store.sql import insert_ignoring_conflicts

from .tables import CollectCursor, CollectRun, CollectSource

LEASE_TTL = timedelta(minutes=5)
S, C, R = CollectSource.__table__, CollectCursor.__table__, CollectRun.__table__


class SourceBusy(PhipError):
    """Another process holds the source's lease: this run is skipped."""

    code = "SOURCE_BUSY"

    def __init__(self, message: str):
        super().__init__(None, message)


class LeaseLost(SourceBusy):
    code = "LEASE_LOST"


def new_holder() -> str:
    """``host:pid:random`` — the host and pid let a successor on the same machine see a dead holder."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` ran on this machine and its process no longer exists (or is a zombie)."""
    try:
        host, pid_text, _ = holder.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname()[:60] or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _ensure_source(conn: Connection, name: str, org_code: str, now: datetime) -> None:
    conn.execute(insert_ignoring_conflicts(conn, S).values(name=name, org_code=org_code, failures=0, updated_at=now))


def acquire_lease(engine: Engine, name: str, org_code: str, holder: str, ttl: timedelta = LEASE_TTL) -> None:
    """Take the source's lease or raise :class:`SourceBusy`."""
    now = platform_now()
    with engine.begin() as conn:
        _ensure_source(conn, name, org_code, now)
        seen = conn.execute(select(S.c.lease_holder, S.c.lease_expires_at).where(S.c.name == name)).one()
        taken = seen.lease_holder not in (None, holder) and seen.lease_expires_at and seen.lease_expires_at > now
        if taken and not holder_is_dead(seen.lease_holder):
            raise SourceBusy(f"数据源{name}正在由{seen.lease_holder}采集（租约至{seen.lease_expires_at:%Y-%m-%d %H:%M:%S}），本次跳过")
        same_holder = S.c.lease_holder.is_(None) if seen.lease_holder is None else S.c.lease_holder == seen.lease_holder
        same_expiry = S.c.lease_expires_at.is_(None) if seen.lease_expires_at is None else S.c.lease_expires_at == seen.lease_expires_at
        done = conn.execute(
            update(S).where(S.c.name == name, same_holder, same_expiry)
            .values(lease_holder=holder, lease_expires_at=now + ttl, org_code=org_code, updated_at=now)
        ).rowcount
        if done != 1:
            raise SourceBusy(f"数据源{name}刚被另一个采集进程占用，本次跳过")


def renew_lease(conn: Connection, name: str, holder: str, ttl: timedelta = LEASE_TTL) -> None:
    now = platform_now()
    done = conn.execute(
        update(S).where(S.c.name == name, S.c.lease_holder == holder).values(lease_expires_at=now + ttl, updated_at=now)
    ).rowcount
    if done != 1:
        raise LeaseLost(f"数据源{name}的采集租约已失效（被其他进程接管），本次采集中止")


def release_lease(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(S).where(S.c.name == name, S.c.lease_holder == holder)
                     .values(lease_holder=None, lease_expires_at=None, updated_at=platform_now()))


def set_schedule(engine: Engine, name: str, *, next_run_at: datetime | None, failures: int, last_error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(update(S).where(S.c.name == name).values(
            next_run_at=next_run_at, failures=failures, last_error=last_error, updated_at=platform_now()))


def source_state(engine: Engine, name: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(S).where(S.c.name == name)).first()


# --- cursors -----------------------------------------------------------------------------------


def encode_cursor(kind: str, value: Any) -> str:
    if kind == "id":
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def decode_cursor(kind: str, text: str | None) -> Any:
    if text is None:
        return None
    return int(text) if kind == "id" else datetime.fromisoformat(text)


def get_cursor(conn: Connection, source: str, job: str, kind: str) -> Any:
    row = conn.execute(select(C.c.kind, C.c.value).where(C.c.source == source, C.c.job == job)).first()
    if row is None or row.kind != kind:  # a changed cursor kind starts over
        return None
    return decode_cursor(kind, row.value)


def set_cursor(conn: Connection, source: str, job: str, kind: str, value: Any, run_id: int) -> None:
    now = platform_now()
    values = {"kind": kind, "value": encode_cursor(kind, value), "run_id": run_id, "updated_at": now}
    if conn.execute(update(C).where(C.c.source == source, C.c.job == job).values(**values)).rowcount == 0:
        conn.execute(insert(C).values(source=source, job=job, **values))


# --- runs --------------------------------------------------------------------------------------


def has_finished_run(engine: Engine, source: str, job: str) -> bool:
    """Whether the job has ever completed a run: its first does the back-fill."""
    with engine.connect() as conn:
        return conn.execute(select(R.c.id).where(R.c.source == source, R.c.job == job, R.c.status == "ok")
                            .limit(1)).first() is not None


def start_run(engine: Engine, source: str, job: str, dataset: str, holder: str, full: bool, cursor_from: Any, kind: str,
              mode: str | None = None) -> int:
    now = platform_now()
    with engine.begin() as conn:
        conn.execute(update(R).where(R.c.source == source, R.c.status == "running", R.c.holder != holder)
                     .values(status="interrupted", finished_at=now, error="上次采集进程未正常结束（被终止或崩溃），已由本次采集从游标处续采"))
        result = conn.execute(insert(R).values(
            source=source, job=job, dataset=dataset, holder=holder, full=full, status="running", started_at=now,
            rows_read=0, accepted=0, updated=0, unchanged=0, rejected=0, warnings=0, batches=0, attempts=1, mode=mode,
            cursor_from=encode_cursor(kind, cursor_from) if cursor_from is not None else None,
        ))
        return int(result.inserted_primary_key[0])


def add_to_run(conn: Connection, run_id: int, *, rows: int, receipt: Any, cursor_to: str | None) -> None:
    values: dict[str, Any] = {
        "rows_read": R.c.rows_read + rows, "accepted": R.c.accepted + receipt.accepted,
        "updated": R.c.updated + receipt.updated, "unchanged": R.c.unchanged + receipt.unchanged,
        "rejected": R.c.rejected + receipt.rejected, "warnings": R.c.warnings + receipt.warnings,
        "batches": R.c.batches + 1,
    }
    if cursor_to is not None:
        values["cursor_to"] = cursor_to
    conn.execute(update(R).where(R.c.id == run_id).values(**values))


def finish_run(engine: Engine, run_id: int, status: str, error: str | None = None, attempts: int | None = None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": platform_now(), "error": error[:1000] if error else None}
    if attempts is not None:
        values["attempts"] = attempts
    with engine.begin() as conn:
        conn.execute(update(R).where(R.c.id == run_id).values(**values))


@dataclass
class StatusRow:
    source: str
    job: str
    dataset: str
    cursor: str | None
    run: Any  # the job's latest collect_runs row, or None
    lease_holder: str | None
    next_run_at: datetime | None
    last_error: str | None


def status(engine: Engine, source: str | None = None) -> list[StatusRow]:
    """Latest run and cursor of every (source, job), plus the source's lease and schedule."""
    latest = select(R.c.source, R.c.job, func.max(R.c.id).label("id")).group_by(R.c.source, R.c.job)
    if source:
        latest = latest.where(R.c.source == source)
    latest_sq = latest.subquery()
    with engine.connect() as conn:
        runs = conn.execute(select(R).join(latest_sq, R.c.id == latest_sq.c.id).order_by(R.c.source, R.c.job)).all()
        cursors = {(r.source, r.job): r.value for r in conn.execute(select(C))}
        sources = {r.name: r for r in conn.execute(select(S))}
    out = []
    for run in runs:
        src = sources.get(run.source)
        out.append(StatusRow(run.source, run.job, run.dataset, cursors.get((run.source, run.job)), run,
                             src.lease_holder if src else None, src.next_run_at if src else None,
                             src.last_error if src else None))
    return out


def runs_of(engine: Engine, source: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(R).where(R.c.source == source).order_by(R.c.id)).all()


def lease_of(engine: Engine, name: str) -> tuple[str | None, datetime | None]:
    with engine.connect() as conn:
        row = conn.execute(select(S.c.lease_holder, S.c.lease_expires_at).where(and_(S.c.name == name))).first()
    return (row.lease_holder, row.lease_expires_at) if row else (None, None)

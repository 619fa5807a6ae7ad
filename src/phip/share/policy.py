"""Who may read what (访问控制): the person ids a patient's records carry, the authorizations
in force for one reader and one patient, and the check of each record against them.

Nothing is cached: every request reads the authorizations again, so a revoked consent ends
access on the next request, also for a page already open."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from phip.accounts import SessionInfo
from phip.empi.service import EmpiError, current_id
from phip.errors import PhipError
from phip.standard.validate import platform_now
from phip.store.models import Person

from .catalog import load_catalog
from .tables import ShareAuthorization


class ShareError(PhipError):
    """A refused sharing request; ``status`` is the HTTP answer (403 no authorization, 404 absent)."""

    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(code, message, field)
        self.status = status


def no_authorization() -> ShareError:
    return ShareError("NO_AUTHORIZATION", "未获得患者授权，不能查看病历内容：请患者授权同意、提供授权码，"
                                          "或在紧急情况下使用紧急调阅", status=403)


def not_found(what: str = "文档") -> ShareError:
    return ShareError("NOT_FOUND", f"{what}不存在", status=404)


def golden_id(conn: Connection, person_id: str) -> str:
    """The surviving person of ``person_id`` (merges followed); an unknown id is absent."""
    try:
        return current_id(conn, person_id)
    except EmpiError:
        raise not_found("患者") from None


def person_ids(conn: Connection, golden: str) -> list[str]:
    """The golden person and every person merged into it, at any depth: a patient's records
    are those of all of them (records follow a merge, but the ids must count all the same)."""
    ids, frontier = [golden], [golden]
    while frontier:
        frontier = [p for p in conn.execute(select(Person.id).where(Person.merged_into.in_(frontier))).scalars()
                    if p not in ids]
        ids += frontier
    return ids


@dataclass
class Access:
    """The authorizations one reader holds on one patient right now."""

    person_id: str
    ids: list[str]
    own: bool = False  # the resident reading their own record
    grants: list[Any] = field(default_factory=list)  # share_authorizations rows

    def grant_for(self, org_code: str, dataset: str) -> int | None:
        """The id of an authorization covering a record (0 for the resident's own), else None."""
        category = load_catalog().category_of.get(dataset)
        if category is None:
            return None
        if self.own:
            return 0
        for g in self.grants:
            if (g.source_orgs is None or org_code in g.source_orgs) and (g.categories is None or category in g.categories):
                return g.id
        return None

    @property
    def any(self) -> bool:
        return self.own or bool(self.grants)

    def break_glass(self, used: set[int]) -> bool:
        """Whether a read rested on a break-the-glass authorization (flagged for the auditor)."""
        return any(g.kind == "break_glass" and g.id in used for g in self.grants)


def access(conn: Connection, who: SessionInfo, person_id: str, now: datetime | None = None) -> Access:
    """What ``who`` may read of a patient: a clinician through authorizations in force for the
    clinician's institution (break-the-glass: for that clinician only); a resident their own
    record; every other role nothing."""
    golden = golden_id(conn, person_id)
    ids = person_ids(conn, golden)
    if who.role == "resident":
        own = who.person_id is not None and golden_id(conn, who.person_id) == golden
        if not own:
            raise not_found("患者")  # another resident's record does not exist for this reader
        return Access(golden, ids, own=True)
    if who.role != "clinician" or not who.org_code:
        raise ShareError("ROLE_FORBIDDEN", "只有医生和居民本人可以调阅病历", status=403)
    now = now or platform_now()
    a = ShareAuthorization
    rows = conn.execute(select(a.__table__).where(a.person_id.in_(ids), a.revoked_at.is_(None), a.expires_at > now,
                                                  a.created_at <= now).order_by(a.id)).all()
    grants = [g for g in rows if (g.reader_orgs is None or who.org_code in g.reader_orgs)
              and (g.reader_user is None or g.reader_user == who.username)]
    return Access(golden, ids, grants=list(grants))

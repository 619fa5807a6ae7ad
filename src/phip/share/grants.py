"""Granting and ending authorizations (授权管理): a resident's consent, a one-time code the
resident gives at a visit, and a clinician's break-the-glass read. Every change is an audit
event in the same transaction; a break-the-glass event is flagged for the auditor's review."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from phip.accounts import SessionInfo, require_role
from phip.accounts.onetime import DIGITS, code_matches, hash_code, new_code
from phip.accounts.trail import audit
from phip.privacy import mask_text
from phip.standard.validate import platform_now
from phip.store.models import Institution
from phip.throttle import FailureLimiter

from .catalog import load_catalog
from .policy import ShareError, golden_id, not_found, person_ids
from .tables import ShareAuthorization, ShareCode

CODE_TTL = timedelta(minutes=10)  # a code must be used within 10 minutes
CODE_GRANT = timedelta(hours=24)  # what a used code authorizes lasts the day of the visit
BREAK_GLASS_GRANT = timedelta(hours=4)
MAX_CONSENT_DAYS = 3650
WRONG_CODES = 5  # wrong tries that spend a patient's live codes
KINDS = {"consent": "授权同意", "code": "授权码", "break_glass": "紧急调阅"}


class CodeLimits:
    """Wrong codes: five per clinician and five per patient in 15 minutes, then refused until the
    window passes (a 6-digit code then takes years to guess). Per process, like the login's."""

    def __init__(self, limit: int = 5, window: float = 900.0):
        self.by_user, self.by_person = FailureLimiter(limit, window), FailureLimiter(limit, window)


CODE_LIMITS = CodeLimits()


def _orgs(conn: Connection, orgs: Sequence[str] | None, field: str) -> list[str] | None:
    if orgs is None:
        return None
    wanted = sorted({o.strip() for o in orgs if o and o.strip()})
    if not wanted:
        raise ShareError("EMPTY_SCOPE", "请至少选择一家医疗机构，或选择全部机构", field)
    known = set(conn.execute(select(Institution.code).where(Institution.code.in_(wanted))).scalars())
    if unknown := [o for o in wanted if o not in known]:
        raise ShareError("UNKNOWN_ORG", f"医疗机构“{unknown[0]}”未注册", field)
    return wanted


def _categories(categories: Sequence[str] | None) -> list[str] | None:
    if categories is None:
        return None
    known = load_catalog().categories
    wanted = sorted(set(categories))
    if not wanted:
        raise ShareError("EMPTY_SCOPE", "请至少选择一个数据类别，或选择全部类别", "categories")
    if unknown := [c for c in wanted if c not in known]:
        raise ShareError("UNKNOWN_CATEGORY", f"数据类别“{unknown[0]}”不存在，可选：{'、'.join(known)}", "categories")
    return wanted


def _own_person(conn: Connection, who: SessionInfo) -> str:
    require_role(who, "resident")
    if not who.person_id:
        raise not_found("居民")
    return golden_id(conn, who.person_id)


def _insert(conn: Connection, **values: Any) -> int:
    now = platform_now()
    row = {"source_orgs": None, "categories": None, "reader_orgs": None, "reader_user": None, "reason_code": None,
           "reason_text": None, "created_at": now, "revoked_at": None, "revoked_by": None, **values}
    return conn.execute(insert(ShareAuthorization).returning(ShareAuthorization.id), row).scalar_one()


def grant_consent(engine: Engine, who: SessionInfo, *, reader_orgs: Sequence[str] | None, days: int,
                  source_orgs: Sequence[str] | None = None, categories: Sequence[str] | None = None,
                  address: str | None = None) -> int:
    """A resident consents (授权同意) that ``reader_orgs`` (None: every institution) read the
    records of ``source_orgs`` (None: all) in ``categories`` (None: all) for ``days`` days."""
    if not 1 <= days <= MAX_CONSENT_DAYS:
        raise ShareError("BAD_DAYS", f"授权有效期应为1至{MAX_CONSENT_DAYS}天", "days")
    with engine.begin() as conn:
        pid = _own_person(conn, who)
        scope = {"reader_orgs": _orgs(conn, reader_orgs, "reader_orgs"), "source_orgs": _orgs(conn, source_orgs, "source_orgs"),
                 "categories": _categories(categories)}
        grant = _insert(conn, person_id=pid, kind="consent", granted_by=who.username,
                        expires_at=platform_now() + timedelta(days=days), **scope)
        audit(conn, who, "share.consent_grant", address=address, person_id=pid, authorization=grant,
              detail={**scope, "days": days})
    return grant


def revoke(engine: Engine, who: SessionInfo, authorization_id: int, address: str | None = None) -> None:
    """The resident ends one of their authorizations (撤销); access ends with the next request."""
    a = ShareAuthorization
    with engine.begin() as conn:
        pid = _own_person(conn, who)
        row = conn.execute(select(a.person_id, a.revoked_at).where(a.id == authorization_id)).first()
        if row is None or row.person_id not in person_ids(conn, pid):
            raise not_found("授权")
        if row.revoked_at is None:
            conn.execute(update(a).where(a.id == authorization_id).values(revoked_at=platform_now(),
                                                                          revoked_by=who.username))
        audit(conn, who, "share.consent_revoke", address=address, person_id=pid, authorization=authorization_id)


def authorizations(engine: Engine, who: SessionInfo) -> list[dict[str, Any]]:
    """The resident's authorizations, newest first, with their state (有效/已过期/已撤销)."""
    a = ShareAuthorization.__table__
    now = platform_now()
    with engine.connect() as conn:
        pid = _own_person(conn, who)
        rows = conn.execute(select(a).where(a.c.person_id.in_(person_ids(conn, pid))).order_by(a.c.id.desc())).all()
        names = dict(conn.execute(select(Institution.code, Institution.name)).all())
    labels = load_catalog().category_labels()
    return [{
        "id": r.id, "kind": r.kind, "kind_label": KINDS[r.kind],
        "reader_orgs": None if r.reader_orgs is None else [{"code": o, "name": names.get(o, o)} for o in r.reader_orgs],
        "source_orgs": None if r.source_orgs is None else [{"code": o, "name": names.get(o, o)} for o in r.source_orgs],
        "categories": None if r.categories is None else [{"code": c, "label": labels.get(c, c)} for c in r.categories],
        "reader_user": r.reader_user, "reason": r.reason_text, "created_at": r.created_at.isoformat(sep=" "),
        "expires_at": r.expires_at.isoformat(sep=" "),
        "revoked_at": r.revoked_at.isoformat(sep=" ") if r.revoked_at else None,
        "state": "revoked" if r.revoked_at else ("expired" if r.expires_at <= now else "active"),
        "state_label": "已撤销" if r.revoked_at else ("已过期" if r.expires_at <= now else "有效"),
    } for r in rows]


def issue_code(engine: Engine, who: SessionInfo, *, source_orgs: Sequence[str] | None = None,
               categories: Sequence[str] | None = None, address: str | None = None) -> dict[str, Any]:
    """A one-time authorization code (授权码) for the resident to give at a visit: 6 digits, valid
    10 minutes, single use; returns the code (shown once) and when it expires."""
    now = platform_now()
    with engine.begin() as conn:
        pid = _own_person(conn, who)
        scope = {"source_orgs": _orgs(conn, source_orgs, "source_orgs"), "categories": _categories(categories)}
        code = new_code()
        conn.execute(insert(ShareCode), [{"person_id": pid, "code_hash": hash_code(code), "created_by": who.username,
                                          "created_at": now, "expires_at": now + CODE_TTL, "used_at": None,
                                          "used_by": None, "authorization_id": None, "failures": 0, **scope}])
        audit(conn, who, "share.code_issue", address=address, person_id=pid, detail=scope)
    return {"code": code, "expires_at": (now + CODE_TTL).isoformat(sep=" ")}


def redeem_code(engine: Engine, who: SessionInfo, person_id: str, code: str, *, address: str | None = None,
                limits: CodeLimits = CODE_LIMITS) -> int:
    """A clinician enters the code the patient gave: an authorization for the clinician's
    institution for the day, within the scope the resident chose. Wrong codes are limited per
    clinician and per patient; every try is audited."""
    require_role(who, "clinician")
    code = (code or "").strip()
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():  # a typing slip, not a guess: no attempt spent
        raise ShareError("BAD_ONE_TIME_CODE", f"授权码应为{DIGITS}位数字", "code", 400)
    user_key, person_key = f"user:{who.username}", f"person:{person_id}"
    if wait := max(limits.by_user.wait(user_key), limits.by_person.wait(person_key)):
        raise ShareError("CODE_LOCKED", f"授权码错误次数过多，请{math.ceil(wait / 60)}分钟后再试", "code", 429)
    now = platform_now()
    c = ShareCode
    with engine.begin() as conn:
        pid = golden_id(conn, person_id)
        rows = conn.execute(select(c.id, c.code_hash, c.source_orgs, c.categories).where(
            c.person_id.in_(person_ids(conn, pid)), c.used_at.is_(None), c.expires_at > now,
            c.failures < WRONG_CODES).order_by(c.id.desc())).all()
        match = next((r for r in rows if code_matches(r.code_hash, code)), None)
        if match is None:  # every live code of the patient takes the miss: five spend it, in every process
            if rows:
                conn.execute(update(c).where(c.id.in_([r.id for r in rows])).values(failures=c.failures + 1))
            audit(conn, who, "share.code_wrong", address=address, person_id=pid)
        else:
            grant = _insert(conn, person_id=pid, kind="code", granted_by=who.username, reader_orgs=[who.org_code],
                            source_orgs=match.source_orgs, categories=match.categories, expires_at=now + CODE_GRANT)
            conn.execute(update(c).where(c.id == match.id).values(used_at=now, used_by=who.username,
                                                                  authorization_id=grant))
            audit(conn, who, "share.code_redeem", address=address, person_id=pid, authorization=grant)
    if match is None:  # the audit event is committed before the refusal
        limits.by_user.failed(user_key)
        limits.by_person.failed(person_key)
        raise ShareError("BAD_CODE", "授权码错误或已失效（授权码10分钟内有效，只能使用一次）", "code", 403)
    limits.by_user.succeeded(user_key)
    return grant


def break_glass(engine: Engine, who: SessionInfo, person_id: str, reason_code: str, reason_text: str, *,
                address: str | None = None) -> int:
    """Break-the-glass (紧急调阅): always allowed for a clinician with a listed reason and a
    written explanation; for that clinician only, 4 hours, every record; flagged for the auditor."""
    require_role(who, "clinician")
    reasons = load_catalog().reasons
    if reason_code not in reasons:
        raise ShareError("BAD_REASON", f"紧急调阅原因“{reason_code}”不在列表中，可选：{'、'.join(reasons.values())}",
                         "reason_code")
    text = (reason_text or "").strip()
    if len(text) < 4:
        raise ShareError("REASON_REQUIRED", "请填写紧急调阅的具体情况（至少4个字）", "reason_text")
    with engine.begin() as conn:
        pid = golden_id(conn, person_id)
        grant = _insert(conn, person_id=pid, kind="break_glass", granted_by=who.username, reader_orgs=[who.org_code],
                        reader_user=who.username, reason_code=reason_code, reason_text=mask_text(text[:500]),
                        expires_at=platform_now() + BREAK_GLASS_GRANT)
        audit(conn, who, "share.break_glass", address=address, person_id=pid, authorization=grant, flagged=True,
              detail={"reason_code": reason_code, "reason": reasons[reason_code], "text": mask_text(text[:500])})
    return grant

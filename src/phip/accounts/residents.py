"""Resident accounts (居民账户): a resident logs in with the ID number and a password set on
first use through a one-time code sent by a :class:`~phip.accounts.notify.Notifier` to the
phone the EMPI knows. The account row holds the EMPI person id only; the ID number is looked
up in the EMPI's identifiers at each login."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, Engine, func, insert, select, update

from phip.empi.identifiers import normalize_id_number
from phip.empi.service import EmpiError, current_id
from phip.privacy import mask_name
from phip.standard.validate import platform_now
from phip.store.models import Person, PersonIdentifier

from .notify import Notice, Notifier, default_notifier
from .onetime import code_matches, hash_code, new_code
from .sessions import AuthError, LoginGuard, SessionInfo, hash_password, login
from .tables import AccountCode, User
from .trail import audit

CODE_TTL = timedelta(minutes=10)
CODES_PER_HOUR = 5
WRONG_CODES = 5  # wrong tries that spend a code
SENT = "如该身份证号已在平台建档，验证码已发送至预留手机号，10分钟内有效"


def person_of_id_no(conn: Connection, id_no: str) -> str | None:
    """The (surviving) EMPI person of a resident ID number, or None."""
    id18 = normalize_id_number(id_no.strip()) if id_no else None
    if id18 is None:
        raise AuthError("BAD_ID_NO", "身份证号码无效（GB 11643 校验未通过）", "id_no")
    found = conn.execute(select(PersonIdentifier.person_id).where(
        PersonIdentifier.value == id18, PersonIdentifier.kind == "id_no", PersonIdentifier.scope == "")).scalar()
    try:
        return current_id(conn, found) if found else None
    except EmpiError:
        return None


def username_of(person_id: str) -> str:
    return f"r-{person_id}"


def request_setup_code(engine: Engine, id_no: str, notifier: Notifier | None = None, address: str | None = None) -> str:
    """Send a one-time code for setting the password; answers the same text whether or not the
    ID number is known, so the form does not tell who has records."""
    now = platform_now()
    with engine.begin() as conn:
        pid = person_of_id_no(conn, id_no)
        if pid is None:
            return SENT
        sent = conn.execute(select(func.count()).select_from(AccountCode).where(
            AccountCode.person_id == pid, AccountCode.created_at > now - timedelta(hours=1))).scalar_one()
        if sent >= CODES_PER_HOUR:
            raise AuthError("TOO_MANY_CODES", "验证码发送过于频繁，请一小时后再试", "id_no", 429)
        code = new_code()
        conn.execute(insert(AccountCode), [{"person_id": pid, "code_hash": hash_code(code), "created_at": now,
                                            "expires_at": now + CODE_TTL, "used_at": None, "failures": 0}])
        phone = conn.execute(select(Person.phone).where(Person.id == pid)).scalar()
        audit(conn, None, "account.code_sent", address=address, person_id=pid)
    (notifier or default_notifier()).send(Notice(pid, phone, "resident_setup", code,
                                                 f"【全民健康信息平台】您的验证码为{code}，10分钟内有效，用于设置居民账户密码。"))
    return SENT


def set_password(engine: Engine, id_no: str, code: str, password: str, address: str | None = None) -> str:
    """Check the one-time code and set (or reset) the resident's password; returns the username."""
    password_hash = hash_password(password)
    now = platform_now()
    refused = AuthError("BAD_CODE", "验证码错误或已失效，请重新获取", "code", 400)
    with engine.begin() as conn:
        pid = person_of_id_no(conn, id_no)
        if pid is None:
            raise refused
        row = conn.execute(select(AccountCode.id, AccountCode.code_hash).where(
            AccountCode.person_id == pid, AccountCode.used_at.is_(None), AccountCode.expires_at > now,
            AccountCode.failures < WRONG_CODES).order_by(AccountCode.id.desc()).limit(1)).first()
        if row is None:
            raise refused
        if not code_matches(row.code_hash, code):
            conn.execute(update(AccountCode).where(AccountCode.id == row.id).values(failures=AccountCode.failures + 1))
            audit(conn, None, "account.code_wrong", address=address, person_id=pid)
            failed = True
        else:
            failed = False
            conn.execute(update(AccountCode).where(AccountCode.id == row.id).values(used_at=now))
            username = username_of(pid)
            exists = conn.execute(select(User.username).where(User.person_id == pid)).scalar()
            if exists:
                username = exists
                conn.execute(update(User).where(User.username == exists).values(password_hash=password_hash,
                                                                                   disabled=False))
            else:
                name = conn.execute(select(Person.name).where(Person.id == pid)).scalar()
                conn.execute(insert(User), [{"username": username, "display_name": mask_name(name) or "居民",
                                             "role": "resident", "password_hash": password_hash, "disabled": False,
                                             "created_at": now, "person_id": pid}])
            audit(conn, None, "account.password_set", address=address, person_id=pid, target=username)
    if failed:  # the failure count is committed before the refusal
        raise refused
    return username


def resident_login(engine: Engine, id_no: str, password: str, *, guard: LoginGuard | None = None,
                   address: str = "-") -> tuple[str, SessionInfo]:
    """Log a resident in by ID number and password; locked out like every login."""
    with engine.connect() as conn:
        pid = person_of_id_no(conn, id_no)
        username = conn.execute(select(User.username).where(User.person_id == pid)).scalar() if pid else None
    # an unknown ID number still costs one hash and one failure, under a name that is no account
    return login(engine, username or f"unknown-{hash(id_no) & 0xffff:x}", password, guard=guard, address=address)

"""Institution API keys (接口密钥): created once, shown once, stored as a hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from phip.standard.validate import platform_now
from phip.store.models import ApiKey, Institution

from .codes import regions

KEY_PREFIX = "phip_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: int
    org_code: str
    prefix: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class KeyClient:
    """Who a valid key speaks for: an institution, or (``region_code`` set) a city platform
    that may push records of that region's institutions (省市一体化)."""

    org_code: str
    region_code: str | None = None


def create_key(engine: Engine, org_code: str, label: str | None = None, region_code: str | None = None) -> tuple[int, str]:
    """Return (key id, the key itself); the key is not stored and cannot be shown again.
    ``region_code``: a city platform's key, for the institutions of that region."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        key_id = conn.execute(
            insert(ApiKey).values(org_code=org_code, key_hash=hash_key(key), prefix=key[:12], label=label,
                                  created_at=platform_now(), region_code=region_code or None).returning(ApiKey.id)
        ).scalar_one()
    return key_id, key


def list_keys(engine: Engine, org_code: str | None = None) -> list[KeyInfo]:
    stmt = select(ApiKey.id, ApiKey.org_code, ApiKey.prefix, ApiKey.label, ApiKey.created_at, ApiKey.revoked_at).order_by(ApiKey.id)
    if org_code:
        stmt = stmt.where(ApiKey.org_code == org_code)
    with engine.connect() as conn:
        return [KeyInfo(*r) for r in conn.execute(stmt)]


def revoke_key(engine: Engine, ref: str) -> int:
    """Revoke by key id or by the key's shown prefix; returns how many keys were revoked."""
    with engine.begin() as conn:
        cond = ApiKey.id == int(ref) if ref.isdigit() else ApiKey.prefix == ref
        return conn.execute(update(ApiKey).where(cond, ApiKey.revoked_at.is_(None)).values(revoked_at=platform_now())).rowcount


def authenticate(engine: Engine, key: str) -> str | None:
    """The institution a key belongs to, or None when the key is unknown or revoked."""
    client = authenticate_client(engine, key)
    return client.org_code if client else None


def authenticate_client(engine: Engine, key: str) -> KeyClient | None:
    """The institution (and, for a city platform's key, the region) of a key; None when the
    key is unknown or revoked. Looked up on every request (one indexed probe), so a
    revocation takes effect at once."""
    with engine.connect() as conn:
        row = conn.execute(
            select(ApiKey.org_code, ApiKey.region_code).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        ).first()
    return KeyClient(row.org_code, row.region_code) if row else None


def institution_regions(engine: Engine, org_codes: list[str]) -> dict[str, str]:
    """Region code of each registered institution among ``org_codes`` (unregistered ones absent)."""
    if not org_codes:
        return {}
    with engine.connect() as conn:
        return dict(conn.execute(select(Institution.code, Institution.region_code).where(Institution.code.in_(org_codes))).all())


def city_platforms(engine: Engine) -> dict[str, tuple[str, str]]:
    """The holders of city keys (省市一体化: the city platforms forwarding to this province):
    institution code -> (region code, region name, e.g. 长春市); revoked keys count too, so a
    city's past batches keep its name."""
    with engine.connect() as conn:
        rows = conn.execute(select(ApiKey.org_code, ApiKey.region_code).where(ApiKey.region_code.is_not(None))
                            .order_by(ApiKey.revoked_at.is_not(None), ApiKey.id)).all()
    names = regions()
    out: dict[str, tuple[str, str]] = {}
    for org, region in rows:
        out.setdefault(org, (region, names[region].name if region in names else region))
    return out

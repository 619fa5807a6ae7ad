"""The keyed chain (防篡改链): ``mac = HMAC-SM3(key, previous mac || canonical JSON of the row)``.

SM3 (GB/T 32905) comes from OpenSSL through hashlib. The key is a file outside the database
(``PHIP_AUDIT_KEY_FILE``): whoever can write the database but not read the key cannot forge
a row or recompute the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from phip.config import get_settings

from .errors import AuditError
from .tables import COLUMNS

GENESIS = "0" * 64
_keys: dict[Path, bytes] = {}


def require_sm3() -> None:
    try:
        hashlib.new("sm3")
    except ValueError as exc:
        raise AuditError("SM3_UNAVAILABLE", "本机 Python 的 OpenSSL 不提供 SM3 摘要算法（GB/T 32905）："
                         "请使用带 SM3 的 OpenSSL（1.1.1 及以上，未禁用 SM3）构建的 Python，"
                         "或安装 gmssl 等提供 SM3 的软件包") from exc


def key_path() -> Path:
    s = get_settings()
    return s.audit_key_file


def load_key(path: Path | None = None) -> bytes:
    """The MAC key: read once per process; created (32 random bytes, mode 0600) when absent."""
    path = path or key_path()
    if (key := _keys.get(path)) is not None:
        return key
    require_sm3()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker created it first
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
    key = path.read_bytes()
    if len(key) < 16:
        raise AuditError("AUDIT_KEY_INVALID", f"审计密钥文件“{path}”不足 16 字节，无法用于校验", "PHIP_AUDIT_KEY_FILE")
    _keys[path] = key
    return key


def canonical(row: Mapping[str, Any]) -> bytes:
    """Every column but ``mac`` as sorted-key JSON; times as ISO text (both back ends agree)."""
    doc = {c: row.get(c) for c in COLUMNS}
    if isinstance(doc["at"], datetime):
        doc["at"] = doc["at"].isoformat(sep=" ")
    doc["flagged"] = bool(doc["flagged"])
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def link(key: bytes, previous: str, row: Mapping[str, Any]) -> str:
    return hmac.new(key, previous.encode() + canonical(row), "sm3").hexdigest()


def digest(doc: Mapping[str, Any]) -> str:
    """SM3 of a document's canonical JSON (used for rows of other tables carried in the trail)."""
    data = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME,
                        default=_iso)
    return hashlib.new("sm3", data).hexdigest()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    raise TypeError(type(value).__name__)

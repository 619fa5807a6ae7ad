"""One-time codes (一次性验证码): six digits from the system's CSPRNG, stored as a salted
SHA-256 so a copy of the database does not hand out live codes."""

from __future__ import annotations

import hashlib
import secrets

DIGITS = 6


def new_code() -> str:
    return f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"


def hash_code(code: str) -> str:
    salt = secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + code).encode()).hexdigest()}"


def code_matches(stored: str, code: str) -> bool:
    salt, _, digest = stored.partition("$")
    return secrets.compare_digest(digest, hashlib.sha256((salt + code.strip()).encode()).hexdigest())

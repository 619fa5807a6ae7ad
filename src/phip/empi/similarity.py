"""String similarities computed exactly as DuckDB computes them.

The real-time matcher scores pairs in Python with the m/u probabilities Splink estimated in
DuckDB, so a level must be chosen by the same arithmetic on both sides (a test compares them
on random Chinese and ASCII strings). DuckDB (2.0.1 and later) compares characters and halves
the transposition count with integer division; so do these. DuckDB 2.0.0 compared UTF-8 bytes,
which scored Chinese addresses differently: pyproject requires 2.0.1 or later.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=100_000)
def jaro_winkler(a: str, b: str) -> float:
    if a == b:
        return 1.0
    x, y = a, b
    la, lb = len(x), len(y)
    if la == 0 or lb == 0:
        return 0.0
    window = max(max(la, lb) // 2 - 1, 0)
    used = [False] * lb
    matched_a: list[int] = []
    for i in range(la):
        ch = x[i]
        for j in range(max(0, i - window), min(lb, i + window + 1)):
            if not used[j] and y[j] == ch:
                used[j] = True
                matched_a.append(ch)
                break
    m = len(matched_a)
    if m == 0:
        return 0.0
    matched_b = [y[j] for j in range(lb) if used[j]]
    t = sum(1 for p, q in zip(matched_a, matched_b, strict=True) if p != q)
    jaro = (m / la + m / lb + (m - t // 2) / m) / 3
    if jaro > 0.7:
        prefix = 0
        for p, q in zip(x[:4], y[:4]):
            if p != q:
                break
            prefix += 1
        jaro += prefix * 0.1 * (1 - jaro)
    return jaro


def levenshtein(a: str, b: str) -> int:
    """Edit distance on UTF-8 bytes (the matcher only uses it on ASCII: digits and pinyin)."""
    if a == b:
        return 0
    x, y = a.encode(), b.encode()
    if len(x) < len(y):
        x, y = y, x
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1]


def within_one_edit(a: str, b: str) -> bool:
    """Damerau–Levenshtein distance ≤ 1: one substitution, insertion, deletion or adjacent swap
    (at this bound DuckDB's unrestricted distance and the optimal-alignment one agree)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i, (p, q) in enumerate(zip(a, b, strict=True)) if p != q]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = next((k for k, (p, q) in enumerate(zip(short, long_)) if p != q), len(short))
    return short[i:] == long_[i + 1:]

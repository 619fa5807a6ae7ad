"""A simulated hospital (模拟医疗机构): generates some days of every data set and pushes them to
the platform's push API over HTTP, as a hospital's interface would, waiting and retrying when
told to (429, 503 with Retry-After)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx

from phip.errors import PhipError

from .generator import Generator

#: Records per request: the push API's limit.
CHUNK = 5000
#: Attempts per request answered 429 or 503.
ATTEMPTS = 5
COUNTED = ("accepted", "updated", "unchanged", "rejected")


class PushFailed(PhipError):
    """The platform refused a simulated batch (an answer other than 200 after the retries), or
    could not be reached."""

    code = "PUSH_FAILED"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(code, message)


def simulated_batches(org: tuple[str, str], *, days: int, visits: int, seed: int,
                      today: date | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(data set, records) of the last ``days`` days up to today, every data set."""
    gen = Generator(seed=seed)
    today = today or date.today()
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for d in range(days - 1, -1, -1):
        batches += [(dataset, records) for _, dataset, records in
                    gen.day([org], today - timedelta(days=d), visits=visits, admissions=max(1, visits // 10))]
    return batches


def push_batches(url: str, key: str, batches: list[tuple[str, list[dict[str, Any]]]],
                 on_pushed: Callable[[int], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, int]:
    """Push every batch in requests of at most :data:`CHUNK` records; the summed counts of
    their receipts. Raises :class:`PushFailed` on the first request the platform refuses."""
    totals = dict.fromkeys(COUNTED, 0)
    if not key.isascii() or not key.isprintable():
        raise PushFailed("接口密钥只能由可见的ASCII字符组成", "BAD_KEY")
    if not url.startswith(("http://", "https://")):
        raise PushFailed(f"平台地址“{url}”无效，应以 http:// 或 https:// 开头", "BAD_URL")
    try:
        _push(url, key, batches, totals, on_pushed, sleep)
    except httpx.HTTPError as exc:  # refused connection, time-out, a name that does not resolve
        raise PushFailed(f"无法连接平台 {url}（{type(exc).__name__}）；平台是否已启动（phip serve）？",
                         "PLATFORM_UNREACHABLE") from None
    return totals


def _push(url: str, key: str, batches: list[tuple[str, list[dict[str, Any]]]], totals: dict[str, int],
          on_pushed: Callable[[int], None] | None, sleep: Callable[[float], None]) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for dataset, records in batches:
            for start in range(0, len(records), CHUNK):
                chunk = records[start:start + CHUNK]
                for _ in range(ATTEMPTS):
                    resp = client.post(f"/api/v1/datasets/{dataset}/records", json=chunk)
                    if resp.status_code not in (429, 503):
                        break
                    sleep(float(resp.headers.get("Retry-After", "1")))
                if resp.status_code != 200:
                    raise PushFailed(f"{dataset}: HTTP {resp.status_code} {resp.text[:300]}")
                for name, value in resp.json()["counts"].items():
                    if name in totals:
                        totals[name] += value
                if on_pushed is not None:
                    on_pushed(len(chunk))

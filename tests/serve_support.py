"""`phip serve` in a real uvicorn process on a free port, for the tests that talk HTTP to it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(data_dir, database_url: str | None = None, log=subprocess.DEVNULL) -> Iterator[str]:  # noqa: ANN001
    """`phip serve` on a free port over ``data_dir`` (or ``database_url``); yields its base URL
    once /healthz answers."""
    port = free_port()
    env = {**os.environ, "PHIP_DATA_DIR": str(data_dir)}
    env.pop("PHIP_DATABASE_URL", None)
    if database_url:
        env["PHIP_DATABASE_URL"] = database_url
    proc = subprocess.Popen([sys.executable, "-m", "phip.cli", "serve", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)

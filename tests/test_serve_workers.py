"""Issue 19 item 8: a uvicorn worker that is slow to start (a busy machine) is waited for, not
killed and replaced again and again. Deterministic: a ``sitecustomize`` on the workers' path
makes every spawned process sleep 7 s before it can answer uvicorn's health check, longer than
uvicorn's default of 5 s."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve_support import free_port

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[1] / "src"
SLOW_START = 7.0
SITECUSTOMIZE = f"""
import sys, time
if "--multiprocessing-fork" in sys.argv:  # a spawned worker, before uvicorn's ping thread runs
    time.sleep({SLOW_START})
"""


def _started(log: Path) -> list[int]:
    return [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text(errors="replace"))]


def _wait(predicate, seconds: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def test_slow_workers_and_their_replacement_are_waited_for(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    port = free_port()
    env = {**os.environ, "PHIP_DATA_DIR": str(tmp_path), "PHIP_VALIDATION_PROCESS": "0",
           "PYTHONPATH": os.pathsep.join([str(hook), str(SRC), os.environ.get("PYTHONPATH", "")])}
    env.pop("PHIP_DATABASE_URL", None)
    env.pop("PHIP_WORKER_START_SECONDS", None)
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).text == "ok"
        except httpx.HTTPError:
            return False

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "phip.cli", "serve", "--port", str(port), "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            assert _wait(lambda: len(_started(log)) >= 2 and healthy(), 90), log.read_text(errors="replace")[-3000:]
            first = _started(log)
            assert "died" not in log.read_text(errors="replace")
            os.kill(first[0], signal.SIGKILL)  # a worker dies; its replacement is as slow to start
            assert _wait(lambda: len(_started(log)) >= 3, 60), log.read_text(errors="replace")[-3000:]
            time.sleep(SLOW_START)  # longer than uvicorn's default health check
            text = log.read_text(errors="replace")
            assert text.count("died") == 1 and len(_started(log)) == 3, text[-3000:]
            assert healthy()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

"""Running `phip` as an operator does: in its own process, over a data directory (and a
database URL when the store is not the embedded default)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PHIP = [sys.executable, "-m", "phip.cli"]
ORG = "12220104412001376B"


def run(args, data_dir: Path, check=True, database_url: str | None = None, **kw):  # noqa: ANN001, ANN201
    env = {**os.environ, "PHIP_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("PHIP_DATABASE_URL", None)
    if database_url:
        env["PHIP_DATABASE_URL"] = database_url
    proc = subprocess.run([*PHIP, *args], env=env, capture_output=True, text=True, timeout=300, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def url_of(engine) -> str:  # noqa: ANN001
    """The engine's URL with its password, for a child process's PHIP_DATABASE_URL."""
    return engine.url.render_as_string(hide_password=False)

"""Settings read from the environment (12-factor): the same code runs a pilot on SQLite and a
province on PostgreSQL by changing ``PHIP_DATABASE_URL`` only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    batch_size: int

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("PHIP_DATA_DIR", "data")).resolve()
        url = os.environ.get("PHIP_DATABASE_URL") or f"sqlite:///{data_dir / 'phip.db'}"
        return cls(data_dir=data_dir, database_url=url, batch_size=int(os.environ.get("PHIP_BATCH_SIZE", "1000")))


def get_settings() -> Settings:
    return Settings.from_env()

"""Delivery of one-time codes to residents (通知): an interface with an SMS gateway behind it in
production, and :class:`FileNotifier` for the demo and tests, which writes each message to a
file under ``<data_dir>/notices/``. Codes never go to the log."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from phip.config import get_settings


@dataclass(frozen=True)
class Notice:
    person_id: str
    phone: str | None  # where an SMS gateway sends it (the EMPI's golden phone)
    purpose: str  # resident_setup
    code: str
    text: str


class Notifier(Protocol):
    def send(self, notice: Notice) -> None: ...


class FileNotifier:
    """One JSON file per notice under ``directory`` (default ``<PHIP_DATA_DIR>/notices``)."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or get_settings().data_dir / "notices"

    def send(self, notice: Notice) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{notice.person_id}-{secrets.token_hex(3)}.json"
        path = self.directory / name
        path.write_text(json.dumps(notice.__dict__, ensure_ascii=False), encoding="utf-8")
        path.chmod(0o600)

    def latest(self, person_id: str) -> Notice | None:
        """The newest notice to a person (tests and the demo read the code here)."""
        files = sorted(self.directory.glob(f"*-{person_id}-*.json")) if self.directory.exists() else []
        return Notice(**json.loads(files[-1].read_text(encoding="utf-8"))) if files else None


def default_notifier() -> Notifier:
    return FileNotifier()

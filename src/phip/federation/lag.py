"""The city platform's lag behind the province (上报省平台): backlog, oldest unsent row, send
rate, last error and the alert state against ``PHIP_OUTBOX_LAG_ALERT``, for the dashboard's
panel and ``/metrics`` alike, so both say the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from phip.config import get_settings
from phip.standard.validate import platform_now

from .forwarder import outbox_status

ALERT = "告警：积压超过阈值"
NORMAL = "正常"


@dataclass(frozen=True)
class Lag:
    backlog: int
    oldest_unsent: datetime | None
    oldest_age: float  # seconds; 0 when nothing waits
    sent_last_hour: int
    sent_last_minute: int
    refused: int
    last_error: str | None
    last_error_at: datetime | None
    threshold: float  # PHIP_OUTBOX_LAG_ALERT, seconds

    @property
    def alert(self) -> bool:
        """The oldest row waits longer than the threshold: the province is behind, whatever the cause."""
        return self.oldest_age > self.threshold

    @property
    def state(self) -> str:
        return ALERT if self.alert else NORMAL


def outbox_lag(engine: Engine, now: datetime | None = None) -> Lag:
    s = outbox_status(engine, refusals=0)
    now = now or platform_now()
    age = max(0.0, (now - s.oldest_unsent).total_seconds()) if s.oldest_unsent else 0.0
    return Lag(s.backlog, s.oldest_unsent, age, s.sent_last_hour, s.sent_last_minute, s.refused, s.last_error,
               s.last_error_at, get_settings().outbox_lag_alert_seconds)

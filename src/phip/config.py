"""Settings read from the environment (12-factor): the same code runs a pilot on SQLite and a
province on PostgreSQL by changing ``PHIP_DATABASE_URL`` only.

Every ``PHIP_*`` variable the platform reads is a field of :class:`Settings` (the table in
docs/architecture.md, "Settings (PHIP_* variables)", lists them). :func:`get_settings` reads
the environment on every call, never cached: it costs microseconds, and tests and the worker
change variables while the process runs.

A value that must be parsed is kept as text and parsed by the property or the module that
uses it, so a bad value fails only that feature, with its own error (a bad
``PHIP_QUALITY_AT`` stops the worker with ``BAD_QUALITY_AT``; ``phip ingest`` still runs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    #: ``PHIP_DATA_DIR`` (default ``data``), absolute: the SQLite file and the default places below
    data_dir: Path
    #: ``PHIP_DATABASE_URL`` (default SQLite ``<data dir>/phip.db``)
    database_url: str
    #: ``PHIP_READ_DATABASE_URL`` (default: none, everything reads the store above): a streaming
    #: replica of it that the upload statistics and the dashboard's overview read from
    read_database_url: str | None
    #: ``PHIP_COLLECT_DIR`` (default ``<PHIP_DATA_DIR>/collect``, relative as given): mapping files
    collect_dir: Path
    #: ``PHIP_SECRETS_FILE`` (default ``<PHIP_DATA_DIR>/secrets.env``): ``${NAME}`` values of source URLs
    secrets_file: Path
    #: ``PHIP_QUALITY_AT`` (``HH:MM``, ``off``; empty: 02:30), parsed by ``phip.quality.schedule.quality_time``
    quality_at: str
    #: ``PHIP_VALIDATION_PROCESS`` (``0``/``false``/``no``/empty: off; unset: on with more than one core)
    validation_process: str | None
    #: ``PHIP_SESSION_MINUTES`` (default 480): dashboard session lifetime, see :attr:`session_ttl`
    session_minutes: str
    #: ``PHIP_RATE_LIMIT`` (default 600 requests a minute per institution; 0: no limit)
    rate_limit: str
    #: ``PHIP_RATE_BURST`` (default a sixth of the rate limit, at least 1)
    rate_burst: str | None
    #: ``PHIP_AUDIT_KEY_FILE`` (default ``<data dir>/audit.key``): the audit trail's HMAC-SM3 key,
    #: created (32 random bytes, mode 0600) when absent; keep it outside the database and its backups
    audit_key_file: Path
    #: ``PHIP_AUDIT_ANCHOR_FILE`` (default ``<data dir>/audit.anchor``): the trail's newest (seq, mac, count)
    audit_anchor_file: Path
    #: ``PHIP_STANDARD_BASE_URL`` (default none: ``urn:phip:standard:…`` identifiers): where the
    #: province publishes the JSON Schemas; their ``$id`` is ``<base>/<version>/<code>.schema.json``
    standard_base_url: str = ""
    #: ``PHIP_METRICS_TOKEN`` (default unset): a bearer token a Prometheus scraper sends to read
    #: ``/metrics`` (``Authorization: Bearer <token>``); without it only a logged-in operator reads them
    metrics_token: str | None = None
    #: ``PHIP_WORKER_START_SECONDS`` (default 60): how long ``phip serve --workers N`` lets a
    #: worker take to answer uvicorn's health check before killing it, see :attr:`worker_start_seconds`
    worker_start: str = "60"
    #: ``PHIP_ONBOARDING_DAYS`` (default 7): a push or pull within this many days proves the
    #: network link, and 数据上传 falls back from 实现 to 中断 after this many days without data
    onboarding_days: str = "7"
    #: ``PHIP_UPSTREAM_URL`` (default unset: a standalone platform): the province's base URL this
    #: city platform forwards every accepted record to (省市一体化, see docs/federation.md); only
    #: with it does the pipeline write the outbox
    upstream_url: str = ""
    #: ``PHIP_UPSTREAM_KEY``: this city platform's API key at the province (a city key, see
    #: ``phip orgs key create --region``)
    upstream_key: str | None = None
    #: ``PHIP_REGION_CODE``: the city's region code (GB/T 2260, e.g. 220100), shown by
    #: ``phip federation status``; the province checks the region by the key
    region_code: str = ""
    #: ``PHIP_OUTBOX_LAG_ALERT`` (default 900 seconds): a city platform's oldest record waiting for
    #: the province older than this is an alert (dashboard, ``phip_outbox_lag_alert``), see
    #: :attr:`outbox_lag_alert_seconds`
    outbox_lag_alert: str = "900"
    #: ``PHIP_EMPI_BACKEND`` (``duckdb``, the default, or ``spark``): the Splink backend of the batch
    #: relink's prediction, see ``phip.empi.backends``
    empi_backend: str = "duckdb"
    #: ``PHIP_SPARK_MASTER`` (default ``local[*]``: Spark inside this process's JVM child, every core);
    #: a cluster's master URL runs the same relink there
    spark_master: str = "local[*]"
    #: ``PHIP_SPARK_DRIVER_MEMORY`` (default ``4g``): heap of the Spark driver JVM (in local mode, all of Spark)
    spark_driver_memory: str = "4g"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        given_dir = Path(env.get("PHIP_DATA_DIR", "data"))
        data_dir = given_dir.resolve()
        return cls(
            data_dir=data_dir,
            database_url=env.get("PHIP_DATABASE_URL") or f"sqlite:///{data_dir / 'phip.db'}",
            read_database_url=env.get("PHIP_READ_DATABASE_URL") or None,
            collect_dir=Path(env["PHIP_COLLECT_DIR"]) if env.get("PHIP_COLLECT_DIR") else given_dir / "collect",
            secrets_file=Path(env["PHIP_SECRETS_FILE"]) if env.get("PHIP_SECRETS_FILE") else given_dir / "secrets.env",
            quality_at=env.get("PHIP_QUALITY_AT", ""),
            validation_process=env.get("PHIP_VALIDATION_PROCESS"),
            session_minutes=env.get("PHIP_SESSION_MINUTES", "480"),
            rate_limit=env.get("PHIP_RATE_LIMIT", "600"),
            rate_burst=env.get("PHIP_RATE_BURST"),
            standard_base_url=env.get("PHIP_STANDARD_BASE_URL", "").strip().rstrip("/"),
            metrics_token=env.get("PHIP_METRICS_TOKEN") or None,
            worker_start=env.get("PHIP_WORKER_START_SECONDS") or "60",
            audit_key_file=Path(env["PHIP_AUDIT_KEY_FILE"]) if env.get("PHIP_AUDIT_KEY_FILE") else data_dir / "audit.key",
            audit_anchor_file=(Path(env["PHIP_AUDIT_ANCHOR_FILE"]) if env.get("PHIP_AUDIT_ANCHOR_FILE")
                               else data_dir / "audit.anchor"),
            onboarding_days=env.get("PHIP_ONBOARDING_DAYS", "7"),
            upstream_url=env.get("PHIP_UPSTREAM_URL", "").strip().rstrip("/"),
            upstream_key=env.get("PHIP_UPSTREAM_KEY") or None,
            region_code=env.get("PHIP_REGION_CODE", "").strip(),
            outbox_lag_alert=env.get("PHIP_OUTBOX_LAG_ALERT") or "900",
            empi_backend=env.get("PHIP_EMPI_BACKEND", "").strip().lower() or "duckdb",
            spark_master=env.get("PHIP_SPARK_MASTER", "").strip() or "local[*]",
            spark_driver_memory=env.get("PHIP_SPARK_DRIVER_MEMORY", "").strip() or "4g",
        )

    @property
    def validation_process_on(self) -> bool:
        if self.validation_process is not None:
            return self.validation_process.strip() not in ("0", "false", "no", "")
        return (os.cpu_count() or 1) > 1

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(minutes=int(self.session_minutes))

    @property
    def worker_start_seconds(self) -> int:
        """A spawned worker imports ``phip.cli`` (the parent's main module) before it can answer
        a ping: 3 s on an idle 2-core machine, more when busy, and uvicorn's 5 s default then
        kills it and every replacement in turn. At least 5."""
        return max(5, int(float(self.worker_start)))

    @property
    def rate_per_minute(self) -> float:
        return float(self.rate_limit)

    @property
    def onboarding_window(self) -> int:
        """Days of :attr:`onboarding_days`, at least 1 (a bad value fails onboarding only)."""
        return max(1, int(self.onboarding_days))

    @property
    def outbox_lag_alert_seconds(self) -> float:
        """Seconds of :attr:`outbox_lag_alert`, at least 1 (a bad value fails the lag figures only)."""
        return max(1.0, float(self.outbox_lag_alert))

    def burst_for(self, per_minute: float) -> int:
        """``PHIP_RATE_BURST``, else a sixth of ``per_minute`` (the limiter's rate)."""
        return int(self.rate_burst) if self.rate_burst is not None else max(1, int(per_minute // 6))


def get_settings() -> Settings:
    return Settings.from_env()

"""One settings class (issue 20): every PHIP_* variable is read by phip.config.Settings, fresh
on each call, with the defaults and parsing the features had when they read it themselves."""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path

import pytest

from phip.api.limits import RateLimiter
from phip.collect.mapping import _secrets_file, sources_dir
from phip.config import Settings, get_settings
from phip.ingest import workers
from phip.quality.schedule import ScheduleError, quality_time
from phip.accounts import session_ttl

VARIABLES = ("PHIP_DATA_DIR", "PHIP_DATABASE_URL", "PHIP_COLLECT_DIR", "PHIP_SECRETS_FILE", "PHIP_QUALITY_AT",
             "PHIP_VALIDATION_PROCESS", "PHIP_SESSION_MINUTES", "PHIP_RATE_LIMIT", "PHIP_RATE_BURST",
             "PHIP_AUDIT_KEY_FILE", "PHIP_AUDIT_ANCHOR_FILE", "PHIP_STANDARD_BASE_URL", "PHIP_METRICS_TOKEN",
             "PHIP_WORKER_START_SECONDS", "PHIP_ONBOARDING_DAYS", "PHIP_UPSTREAM_URL", "PHIP_UPSTREAM_KEY",
             "PHIP_REGION_CODE", "PHIP_OUTBOX_LAG_ALERT", "PHIP_EMPI_BACKEND", "PHIP_SPARK_MASTER",
             "PHIP_SPARK_DRIVER_MEMORY")
SRC = Path(__file__).resolve().parents[1] / "src" / "phip"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults(clean_env, tmp_path):
    s = get_settings()
    assert s.data_dir == tmp_path.resolve() / "data"
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'phip.db'}"
    assert sources_dir() == Path("data") / "collect" and _secrets_file() == Path("data") / "secrets.env"
    assert quality_time() == time(2, 30)
    assert session_ttl() == timedelta(minutes=480)
    limiter = RateLimiter()
    assert (limiter.per_minute, limiter.burst) == (600.0, 100)
    assert RateLimiter(per_minute=30).burst == 5 and RateLimiter(per_minute=3).burst == 1
    assert s.outbox_lag_alert_seconds == 900.0
    assert (s.empi_backend, s.spark_master, s.spark_driver_memory) == ("duckdb", "local[*]", "4g")
    assert not hasattr(s, "batch_size")  # PHIP_BATCH_SIZE was never read


def test_each_variable_is_read_fresh(clean_env, tmp_path):
    clean_env.setenv("PHIP_DATA_DIR", str(tmp_path / "d"))
    assert get_settings().database_url == f"sqlite:///{tmp_path / 'd' / 'phip.db'}"
    assert sources_dir() == tmp_path / "d" / "collect" and _secrets_file() == tmp_path / "d" / "secrets.env"
    clean_env.setenv("PHIP_DATABASE_URL", "postgresql+psycopg://u@h/db")
    clean_env.setenv("PHIP_COLLECT_DIR", str(tmp_path / "maps"))
    clean_env.setenv("PHIP_SECRETS_FILE", str(tmp_path / "s.env"))
    clean_env.setenv("PHIP_QUALITY_AT", " OFF ")
    clean_env.setenv("PHIP_SESSION_MINUTES", "15")
    clean_env.setenv("PHIP_RATE_LIMIT", "60")
    clean_env.setenv("PHIP_OUTBOX_LAG_ALERT", "60")
    assert get_settings().outbox_lag_alert_seconds == 60.0
    clean_env.setenv("PHIP_EMPI_BACKEND", " Spark ")
    assert get_settings().empi_backend == "spark"
    assert get_settings().database_url == "postgresql+psycopg://u@h/db"
    assert sources_dir() == tmp_path / "maps" and _secrets_file() == tmp_path / "s.env"
    assert quality_time() is None
    assert session_ttl() == timedelta(minutes=15)
    assert (RateLimiter().per_minute, RateLimiter().burst) == (60.0, 10)
    clean_env.setenv("PHIP_RATE_BURST", "3")
    clean_env.setenv("PHIP_QUALITY_AT", "23:05")
    assert RateLimiter().burst == 3 and quality_time() == time(23, 5)
    for value, on in (("0", False), ("no", False), ("", False), ("1", True), ("yes", True)):
        clean_env.setenv("PHIP_VALIDATION_PROCESS", value)
        assert workers.enabled() is on, value


def test_a_bad_value_fails_only_its_feature(clean_env):
    clean_env.setenv("PHIP_QUALITY_AT", "25h")
    clean_env.setenv("PHIP_SESSION_MINUTES", "soon")
    settings = get_settings()  # the store still opens
    assert isinstance(settings, Settings) and settings.database_url.startswith("sqlite:///")
    with pytest.raises(ScheduleError) as bad:
        quality_time()
    assert bad.value.code == "BAD_QUALITY_AT" and "25h" in bad.value.message
    with pytest.raises(ValueError):
        session_ttl()


def test_no_module_reads_a_phip_variable_itself():
    """A new variable goes into Settings (and the docs table), not into os.environ at its use."""
    direct = re.compile(r"(os\.environ|getenv)[^\n]*PHIP_")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "config.py" and direct.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
    documented = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in documented for name in VARIABLES)


def test_audit_key_and_anchor_default_to_the_data_dir(clean_env, tmp_path):
    clean_env.delenv("PHIP_AUDIT_KEY_FILE", raising=False)
    clean_env.delenv("PHIP_AUDIT_ANCHOR_FILE", raising=False)
    s = get_settings()
    assert (s.audit_key_file, s.audit_anchor_file) == (tmp_path.resolve() / "data" / "audit.key",
                                                       tmp_path.resolve() / "data" / "audit.anchor")
    clean_env.setenv("PHIP_AUDIT_KEY_FILE", "/secure/audit.key")
    clean_env.setenv("PHIP_AUDIT_ANCHOR_FILE", "/elsewhere/audit.anchor")
    assert (get_settings().audit_key_file, get_settings().audit_anchor_file) == (
        Path("/secure/audit.key"), Path("/elsewhere/audit.anchor"))

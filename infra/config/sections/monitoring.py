"""The keys of logs, alarms, the budget and the drift job."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config.reader import Reader
from infra.config.sections.formats import LOG_RETENTION_DAYS, check_cron

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """Log retention and alarm settings."""

    log_retention_days: int
    alarm_email: str
    latency_p99_alarm_ms: int
    monthly_budget_usd: int
    drift_schedule: str
    """Five-field cron (UTC) of the drift job; empty: no drift job."""
    drift_window_hours: int
    drift_psi_threshold: float
    drift_out_of_range_percent: int
    drift_retrains: bool
    """Whether drift starts a run of the model's training CronJob."""


def check_email(value: str) -> str | None:
    return None if value == "" or _EMAIL.match(value) else "an e-mail address, or empty for none"


def check_psi(value: str) -> str | None:
    try:
        if 0 < float(value) <= 10:
            return None
    except ValueError:
        pass
    return "a population stability index above 0 and at most 10, such as 0.2"


def _psi(value: str) -> float:
    """The threshold read, or a placeholder when it was refused (the refusal is reported)."""
    return float(value) if check_psi(value) is None else 0.0


def read_monitoring(read: Reader) -> MonitoringConfig:
    return MonitoringConfig(
        log_retention_days=read.integer_in("logRetentionDays", LOG_RETENTION_DAYS),
        alarm_email=read.string("alarmEmail", check_email),
        latency_p99_alarm_ms=read.integer("latencyP99AlarmMs", 1, 60_000),
        monthly_budget_usd=read.integer("monthlyBudgetUsd", 0, 10_000_000),
        drift_schedule=read.string("driftSchedule", check_cron),
        drift_window_hours=read.integer("driftWindowHours", 1, 168),
        drift_psi_threshold=_psi(read.string("driftPsiThreshold", check_psi)),
        drift_out_of_range_percent=read.integer("driftOutOfRangePercent", 1, 100),
        drift_retrains=read.boolean("driftRetrains"),
    )

"""Where a figure turns amber (warn) or red (alert): the cockpit's colours and its alerts line
read the same limits (set in cockpit.toml's `[thresholds]`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Level(Enum):
    OK = "ok"
    WARN = "warn"
    ALERT = "alert"


@dataclass(frozen=True)
class Thresholds:
    """Where figures turn amber (warn) and red (alert). Temperatures in °C, others in %."""

    gpu_temp_warn: float = 80.0
    gpu_temp_alert: float = 90.0
    cpu_warn: float = 85.0
    cpu_alert: float = 97.0
    mem_warn: float = 85.0
    mem_alert: float = 95.0
    gpu_mem_warn: float = 90.0
    # A filesystem with less than this % of its size free: amber, then red (an alert either way).
    disk_free_warn: float = 10.0
    disk_free_alert: float = 5.0
    # A node whose newest sample is older than this many intervals is shown stale.
    stale_intervals: float = 3.0


def level(value: float | None, warn: float, alert: float) -> Level:
    if value is None:
        return Level.OK
    return Level.ALERT if value >= alert else Level.WARN if value >= warn else Level.OK

"""Events of the signal stream: what the anomaly log, gap log and JSONL faces show.

Per-frame happenings are not events (there can be half a million a second); the book counts
them. These are the rare, edge-triggered things an operator must notice.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

from saf.events import Event


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignalAnomaly(Event):
    """A symbol turned anomalous: its anomaly probability crossed the threshold or its anomaly
    type became non-zero (or changed while anomalous)."""

    kind: ClassVar[str] = "signal_anomaly"
    symbol: str
    anomaly_type: int
    anomaly_name: str
    probability: float
    timestamp_ns: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignalGap(Event):
    """A symbol went silent for longer than `gap_factor` times its usual interval.

    `ended` is False when the silence is noticed while it lasts, True when the symbol is heard
    again (then `silent_s` is the whole silence)."""

    kind: ClassVar[str] = "signal_gap"
    symbol: str
    silent_s: float
    usual_s: float
    ended: bool


# What the subscriber knows of one endpoint (saf.signals.subscriber): forwarding (opening an
# SSH forward to it), connecting, connected, disconnected, retrying (libzmq's own retry), closed.
SourceState = Literal["forwarding", "connecting", "connected", "disconnected", "retrying",
                      "closed"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignalSourceState(Event):
    """The subscriber connected to, or lost, an endpoint."""

    kind: ClassVar[str] = "signal_source"
    endpoint: str
    state: SourceState
    message: str = ""

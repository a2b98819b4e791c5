"""What the node says about its model servers, read as untrusted input.

The node script (saf.inference.node_script) answers in JSON lines. Each is checked here by type
and range before anything reads it; a line that is not valid is counted by reason
(`BadLines`) and otherwise ignored, never a crash.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from saf.inference.engines import ENGINES

STATES = ("ready", "loading", "starting", "running", "exited", "bad", "unreachable")


@dataclass(frozen=True)
class Endpoint:
    """One model server saf started on a node, as its record and a live look describe it."""

    node: str
    port: int
    engine: str
    model: str
    state: str  # one of STATES
    pid: int | None = None
    uptime: float | None = None  # seconds; None when it is not running
    host: str = "127.0.0.1"
    log: str = ""
    started: float | None = None  # epoch seconds
    argv: tuple[str, ...] = ()
    why: str = ""  # for bad and unreachable

    @property
    def key(self) -> str:
        return f"{self.node}:{self.port}"

    @property
    def up(self) -> bool:
        return self.state in ("ready", "loading", "starting", "running")

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "port": self.port, "engine": self.engine,
                "model": self.model, "state": self.state, "pid": self.pid,
                "uptime": self.uptime, "host": self.host, "log": self.log,
                "started": self.started, "argv": list(self.argv), "why": self.why}


@dataclass
class BadLines:
    """Lines from a node that were not what the protocol says, by reason."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _int(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _float(value: Any, low: float = 0.0, high: float = 1e12) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    if not math.isfinite(value) or not low <= value <= high:
        return None
    return value


def _text(value: Any, limit: int = 4096) -> str | None:
    return value if isinstance(value, str) and len(value) <= limit else None


def parse_lines(text: str, bad: BadLines) -> list[dict[str, Any]]:
    """The JSON objects among the node's output lines; anything else is counted in `bad`."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            bad.add("not_json")
            continue
        if not isinstance(value, dict) or not isinstance(value.get("event"), str):
            bad.add("bad_type")
            continue
        found.append(value)
    return found


def endpoint_from(node: str, record: Any, state: Any, uptime: Any,
                  bad: BadLines) -> Endpoint | None:
    """An Endpoint from a record the node sent, or None (counted) when it is not valid."""
    if not isinstance(record, dict):
        bad.add("bad_type")
        return None
    port = _int(record.get("port"), 1, 65535)
    pid = _int(record.get("pid"), 2, 2**31)
    engine = record.get("engine")
    model = _text(record.get("model"))
    host = _text(record.get("host"), 255)
    log = _text(record.get("log"))
    argv = record.get("argv")
    started = _float(record.get("started"))
    if (port is None or pid is None or engine not in ENGINES or model is None or host is None
            or log is None or started is None or not isinstance(argv, list)
            or not all(isinstance(a, str) for a in argv) or len(argv) > 1000):
        bad.add("bad_record")
        return None
    if state not in STATES:
        bad.add("bad_state")
        return None
    up = None if uptime is None else _float(uptime, -60.0)
    if uptime is not None and up is None:
        bad.add("out_of_range")
        return None
    return Endpoint(node, port, str(engine), model, str(state), pid,
                    None if up is None else max(up, 0.0), host, log, started, tuple(argv))

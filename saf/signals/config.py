"""The inventory's optional ``[signals]`` table, validated with file and line in every error.

    [signals]
    endpoints = ["ssh://head-node:5555"]   # or endpoint = "tcp://10.0.0.5:5555"
    ssh = true                 # reach the default endpoint (the head node) through SSH
    anomaly_threshold = 0.8    # anomaly probability above which a signal is an anomaly
    gap_factor = 5             # silent for more than N usual intervals is a gap
    weights = { price = 0.4, sentiment = 0.3, anomaly = 0.3 }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from saf.errors import ConfigError, SafError
from saf.inventory.model import Inventory
from saf.signals.book import BookSettings, Weights
from saf.signals.endpoints import DEFAULT_PORT, parse_endpoint
from saf.tomlpos import TomlPositions, load_toml
from saf.numbers import number_problem

KEYS = {"endpoint", "endpoints", "ssh", "anomaly_threshold", "gap_factor", "weights"}
WEIGHT_KEYS = {"price", "sentiment", "anomaly"}


@dataclass(frozen=True)
class SignalsConfig:
    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:5555",)
    ssh: bool = False
    anomaly_threshold: float = 0.8
    gap_factor: float = 5.0
    weights: Weights = field(default_factory=Weights)

    def book_settings(self) -> BookSettings:
        return BookSettings(weights=self.weights, anomaly_threshold=self.anomaly_threshold,
                            gap_factor=self.gap_factor)


def default_endpoints(inventory: Inventory | None, ssh: bool) -> tuple[str, ...]:
    """``tcp://<head>:5555`` (or ``ssh://<head>:5555``); loopback when there is no head."""
    head = inventory.head if inventory else None
    if head is None:
        return (f"tcp://127.0.0.1:{DEFAULT_PORT}",)
    if ssh and head.connection == "ssh":
        return (f"ssh://{head.name}:{DEFAULT_PORT}",)
    host = "127.0.0.1" if head.connection == "local" else head.host
    return (f"tcp://{host}:{DEFAULT_PORT}",)


def signals_config(inventory: Inventory | None) -> SignalsConfig:
    """The validated [signals] settings of an inventory (defaults when it has none)."""
    raw = inventory.extra.get("signals") if inventory else None
    if raw is None:
        return SignalsConfig(endpoints=default_endpoints(inventory, False))
    assert inventory is not None
    return _Check(inventory).parse(raw)


class _Check:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.path = inventory.path
        self._pos: TomlPositions | None = None

    def fail(self, message: str, *key: Any) -> ConfigError:
        # Positions are read again only when there is something to report.
        if self._pos is None:
            self._pos = TomlPositions("")
            if self.path is not None:
                try:
                    self._pos = load_toml(self.path)[1]
                except ConfigError:
                    pass
        return ConfigError(self.path, f"[signals] {message}",
                           line=self._pos.line("signals", *key))

    def number(self, table: dict[str, Any], key: str, default: float, low: float,
               high: float | None, *where: Any) -> float:
        value = table.get(key, default)
        problem = number_problem(value, low=low, high=high)
        if problem:
            raise self.fail(f"{'.'.join(map(str, where + (key,)))} {problem}", *where, key)
        return float(value)

    def parse(self, raw: Any) -> SignalsConfig:
        if not isinstance(raw, dict):
            raise self.fail("signals must be a table")
        for key in raw:
            if key not in KEYS:
                raise self.fail(f"unknown key {key!r} (known keys: {', '.join(sorted(KEYS))})",
                                key)
        if "endpoint" in raw and "endpoints" in raw:
            raise self.fail("give endpoint or endpoints, not both", "endpoints")
        ssh = raw.get("ssh", False)
        if not isinstance(ssh, bool):
            raise self.fail(f"ssh must be true or false, not {ssh!r}", "ssh")
        endpoints: tuple[str, ...]
        if "endpoint" in raw or "endpoints" in raw:
            key = "endpoint" if "endpoint" in raw else "endpoints"
            value = raw[key]
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or \
                    not all(isinstance(v, str) for v in items):
                raise self.fail(f"{key} must be an endpoint string or a non-empty list of them",
                                key)
            for item in items:
                try:
                    parse_endpoint(item, self.inventory, ssh=ssh)
                except SafError as exc:
                    raise self.fail(str(exc), key) from None
            endpoints = tuple(items)
        else:
            endpoints = default_endpoints(self.inventory, ssh)
        weights = raw.get("weights", {})
        if not isinstance(weights, dict):
            raise self.fail("weights must be a table like { price = 0.4, sentiment = 0.3, "
                            "anomaly = 0.3 }", "weights")
        for key in weights:
            if key not in WEIGHT_KEYS:
                raise self.fail(f"unknown weight {key!r} (weights: anomaly, price, sentiment)",
                                "weights", key)
        w = Weights(
            price=self.number(weights, "price", 0.4, 0.0, None, "weights"),
            sentiment=self.number(weights, "sentiment", 0.3, 0.0, None, "weights"),
            anomaly=self.number(weights, "anomaly", 0.3, 0.0, None, "weights"))
        if w.price + w.sentiment + w.anomaly <= 0:
            raise self.fail("weights must not all be zero", "weights")
        return SignalsConfig(
            endpoints=endpoints, ssh=ssh, weights=w,
            anomaly_threshold=self.number(raw, "anomaly_threshold", 0.8, 0.0, 1.0),
            gap_factor=self.number(raw, "gap_factor", 5.0, 1.0, None))

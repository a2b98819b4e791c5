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
from typing import Annotated, Any

from msgspec import Meta, Struct

from saf.config_model import Source, decode, dotted
from saf.errors import SafError
from saf.inventory.model import Inventory
from saf.signals.book import BookSettings, Weights
from saf.signals.endpoints import DEFAULT_PORT, parse_endpoint

Share = Annotated[float, Meta(ge=0.0)]
Endpoints = Annotated[str | Annotated[list[str], Meta(min_length=1)],
                      Meta(description="an endpoint string or a non-empty list of them")]


class WeightsTable(Struct, forbid_unknown_fields=True, frozen=True):
    price: Share = 0.4
    sentiment: Share = 0.3
    anomaly: Share = 0.3


class SignalsTable(Struct, forbid_unknown_fields=True):
    """The shape of [signals] (decoded by saf.config_model)."""

    endpoint: Endpoints | None = None
    endpoints: Endpoints | None = None
    ssh: bool = False
    anomaly_threshold: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.8
    gap_factor: Annotated[float, Meta(ge=1.0)] = 5.0
    weights: Annotated[WeightsTable, Meta(
        description="a table like { price = 0.4, sentiment = 0.3, anomaly = 0.3 }")
    ] = WeightsTable()


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
    return _parse(raw, inventory)


def _parse(raw: Any, inventory: Inventory) -> SignalsConfig:
    # Positions are read again (from the inventory's file) only when there is an error.
    source = Source.of_file(inventory.path, ("signals",), prefix="[signals] ",
                            table=dotted, key=lambda where: dotted(where) or "signals")
    table = decode(raw, SignalsTable, source)
    if table.endpoint is not None and table.endpoints is not None:
        raise source.fail(("endpoints",), "give endpoint or endpoints, not both")
    endpoints: tuple[str, ...]
    if table.endpoint is not None or table.endpoints is not None:
        key = "endpoint" if table.endpoint is not None else "endpoints"
        value = table.endpoint if table.endpoint is not None else table.endpoints
        items = [value] if isinstance(value, str) else list(value or [])
        for item in items:
            try:
                parse_endpoint(item, inventory, ssh=table.ssh)
            except SafError as exc:
                raise source.fail((key,), str(exc)) from None
        endpoints = tuple(items)
    else:
        endpoints = default_endpoints(inventory, table.ssh)
    w = Weights(price=float(table.weights.price), sentiment=float(table.weights.sentiment),
                anomaly=float(table.weights.anomaly))
    if w.price + w.sentiment + w.anomaly <= 0:
        raise source.fail(("weights",), "weights must not all be zero")
    return SignalsConfig(endpoints=endpoints, ssh=table.ssh, weights=w,
                         anomaly_threshold=float(table.anomaly_threshold),
                         gap_factor=float(table.gap_factor))

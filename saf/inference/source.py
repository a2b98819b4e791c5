"""Where the cockpit's Models screen gets its endpoints and acts on them: `ModelsSource`.

`FleetModels` is the live one (the cluster's fleet, saf.inference.cluster); the snapshot tests
hand the screen a fixed one through `CockpitContext.models`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from saf.fleet import Fleet
from saf.inference import checks
from saf.inference import cluster as model_servers
from saf.inference.checks import SavedCheck
from saf.inference.measure import CheckReport
from saf.inference.node import Started
from saf.inference.records import Endpoint
from saf.inventory.model import Inventory


class ModelsSource(Protocol):
    def now(self) -> float:
        """The clock the screen's ages are counted on."""
        ...

    async def endpoints(self) -> model_servers.ClusterServers: ...

    def last_checks(self) -> Mapping[str, SavedCheck]:
        """endpoint -> its last check."""
        ...

    async def check(self, endpoint: Endpoint) -> CheckReport: ...

    async def stop(self, endpoint: Endpoint) -> Endpoint | None: ...

    async def restart(self, endpoint: Endpoint) -> Started: ...

    async def logs(self, endpoint: Endpoint, lines: int) -> tuple[str, list[str]]: ...


class FleetModels:
    """The live source: `fleet` when the cockpit has one, else a fleet of `inventory` of its
    own (closed with `close`)."""

    def __init__(self, inventory: Inventory, fleet: Fleet | None = None, *,
                 requests: int = 4, concurrency: int = 2) -> None:
        self.inventory = inventory
        self.fleet = fleet or Fleet(inventory)
        self._own = fleet is None
        self.requests = requests
        self.concurrency = concurrency

    def now(self) -> float:
        return time.time()

    async def endpoints(self) -> model_servers.ClusterServers:
        return await model_servers.list_endpoints(self.fleet, list(self.inventory.nodes))

    def last_checks(self) -> Mapping[str, SavedCheck]:
        return checks.load(self.inventory.cluster.name)

    async def check(self, endpoint: Endpoint) -> CheckReport:
        return await model_servers.check(self.fleet, endpoint, requests=self.requests,
                                   concurrency=self.concurrency,
                                   save_for=self.inventory.cluster.name)

    async def stop(self, endpoint: Endpoint) -> Endpoint | None:
        return await model_servers.stop(self.fleet, endpoint)

    async def restart(self, endpoint: Endpoint) -> Started:
        return await model_servers.restart(self.fleet, endpoint)

    async def logs(self, endpoint: Endpoint, lines: int) -> tuple[str, list[str]]:
        return await model_servers.logs(self.fleet, endpoint, lines)

    async def close(self) -> None:
        if self._own:
            await self.fleet.close()

"""Where the cockpit's Serving screen gets its endpoints and acts on them: `ServingSource`.

`FleetServing` is the live one (the cluster's fleet, saf.inference.cluster); the snapshot tests
hand the screen a fixed one through `CockpitContext.serving`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from saf.fleet import Fleet
from saf.inference import checks
from saf.inference import cluster as serving
from saf.inference.checks import SavedCheck
from saf.inference.measure import CheckReport
from saf.inference.node import Started
from saf.inference.records import Endpoint
from saf.inventory.model import Inventory


class ServingSource(Protocol):
    def now(self) -> float:
        """The clock the screen's ages are counted on."""
        ...

    async def endpoints(self) -> serving.ClusterServers: ...

    def last_checks(self) -> Mapping[str, SavedCheck]:
        """endpoint -> its last check."""
        ...

    async def check(self, endpoint: Endpoint) -> CheckReport: ...

    async def stop(self, endpoint: Endpoint) -> Endpoint | None: ...

    async def restart(self, endpoint: Endpoint) -> Started: ...

    async def logs(self, endpoint: Endpoint, lines: int) -> tuple[str, list[str]]: ...


class FleetServing:
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

    async def endpoints(self) -> serving.ClusterServers:
        return await serving.list_endpoints(self.fleet, list(self.inventory.nodes))

    def last_checks(self) -> Mapping[str, SavedCheck]:
        return checks.load(self.inventory.cluster.name)

    async def check(self, endpoint: Endpoint) -> CheckReport:
        return await serving.check(self.fleet, endpoint, requests=self.requests,
                                   concurrency=self.concurrency,
                                   save_for=self.inventory.cluster.name)

    async def stop(self, endpoint: Endpoint) -> Endpoint | None:
        return await serving.stop(self.fleet, endpoint)

    async def restart(self, endpoint: Endpoint) -> Started:
        return await serving.restart(self.fleet, endpoint)

    async def logs(self, endpoint: Endpoint, lines: int) -> tuple[str, list[str]]:
        return await serving.logs(self.fleet, endpoint, lines)

    async def close(self) -> None:
        if self._own:
            await self.fleet.close()

"""The Models screen's live source (saf.inference.source.FleetModels) for servers kept as a
service: a model server kept as service `model-NAME` (by the node's init system or saf's
supervisor: `saf up`'s models, `saf run models --var persist=true`) is stopped and restarted
through that service. Signalled, its keeper would only start it again.

Stop stops the service and leaves it installed: `saf up` starts it again while saf.toml
declares the model (`declared_here` says whether it does). Restart restarts the service and
waits until the server on the port answers again with a new process. A server not kept is
stopped and restarted as FleetModels does (its command line on record).
"""

from __future__ import annotations

import asyncio
import time

from saf.errors import SafError
from saf.inference.node import Started, Target, list_servers, server_log
from saf.inference.records import Endpoint
from saf.inference.source import FleetModels
from saf.inventory.model import Inventory
from saf.recipe.kinds.model_kept import service_name
from saf.up.actions import restart_service, stop_service
from saf.up.declared import declared

READY_TIMEOUT = 600.0  # seconds a restarted server has to answer again (as `saf models restart`)
POLL = 1.0
LOG_TAIL = 12


def declared_here(inventory: Inventory, endpoint: Endpoint) -> bool:
    """Whether saf.toml declares the model this kept server serves (its service and port):
    the next `saf up` then starts it again. A declaration that does not read: no."""
    try:
        models = declared(inventory).models
    except SafError:
        return False
    return any(service_name(m.name) == endpoint.kept and m.port == endpoint.port
               for m in models)


class KeptModels(FleetModels):
    """FleetModels, with a kept server stopped and restarted through its service."""

    async def stop(self, endpoint: Endpoint) -> Endpoint | None:
        if not endpoint.kept:
            return await super().stop(endpoint)
        conn = self.fleet.connector(endpoint.node)
        await stop_service(conn.run, endpoint.kept, conn.node.python)
        return endpoint

    async def restart(self, endpoint: Endpoint, timeout: float = READY_TIMEOUT) -> Started:  # noqa: ASYNC109 - how long the server has to answer again
        if not endpoint.kept:
            return await super().restart(endpoint)
        conn = self.fleet.connector(endpoint.node)
        await restart_service(conn.run, endpoint.kept, conn.node.python)
        target = Target.of(conn)
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            found = await list_servers(target)
            now = next((e for e in found.endpoints if e.port == endpoint.port), None)
            if now is not None and now.state == "ready" and now.pid != endpoint.pid:
                return Started("ready", now)
            seen = now.state if now is not None else "no record"
            await asyncio.sleep(POLL)
        try:
            _, tail = await server_log(target, endpoint.port, LOG_TAIL)
        except SafError:
            tail = []
        return Started("failed", why=f"saf-{endpoint.kept} was restarted, but the server on "
                       f"port {endpoint.port} is not ready after {timeout:g} s ({seen})",
                       tail=tail)

"""Reaching a running Ray cluster from the operator's machine: find the head, read the
settings ray-up recorded there (the dashboard's port and address), and open the dashboard
through an SSH forward on the head's connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from saf.connect.base import Connector, RunResult
from saf.errors import RayError
from saf.fleet import Fleet
from saf.inventory.model import Inventory, Node
from saf.ray import command as rc
from saf.ray.dashboard import Dashboard, DashboardSilent, through_forward
from saf.ray.facts import NodeFacts
from saf.ray.node_call import Run, node_facts


@dataclass(frozen=True)
class DashboardPlace:
    port: int
    bind: str
    running: bool  # whether the head runs Ray's GCS of that temp folder


def head_of(inventory: Inventory) -> Node:
    """Ray's head: saf.toml's `[ray].head` when it names one (what `saf up` starts Ray with),
    else the node with roles = ["head"]."""
    declared = inventory.file.ray.head if inventory.file and inventory.file.ray else None
    if declared is not None:
        try:
            return inventory.node(declared)
        except KeyError:
            raise RayError(f"[ray].head names {declared!r}, which is no node of the inventory "
                           f"(nodes: {', '.join(inventory.names)})") from None
    head = inventory.head
    if head is None:
        raise RayError("no node has role head in the inventory: Ray's head is the node with "
                       "roles = [\"head\"], or the one [ray].head names")
    return head


def connector_run(conn: Connector) -> Run:
    async def run(command: str, *, quiet: bool = True) -> RunResult:
        del quiet
        return await conn.run(command)
    return run


def place_from(facts: NodeFacts, port: int | None) -> DashboardPlace:
    """Where the dashboard listens, from the settings recorded by ray-up (or the defaults)."""
    bind, recorded = "127.0.0.1", rc.DEFAULT_DASHBOARD_PORT
    for arg in facts.record.argv if facts.record else ():
        if arg.startswith("--dashboard-port="):
            value = arg.partition("=")[2]
            recorded = int(value) if value.isdigit() and 0 < int(value) < 65536 else recorded
        elif isinstance(arg, str) and arg.startswith("--dashboard-host="):
            bind = arg.partition("=")[2] or bind
    return DashboardPlace(port or recorded, bind, facts.gcs_running)


@contextlib.asynccontextmanager
async def open_dashboard(fleet: Fleet, *, port: int | None = None,
                         temp_dir: str = rc.DEFAULT_TEMP_DIR,
                         request_timeout: float = 10.0) -> AsyncIterator[Dashboard]:
    """The head's dashboard through a forward. Raises RayError, saying how to start Ray,
    when nothing answers there, and what answered when something other than Ray's dashboard
    does. `request_timeout` bounds each of its HTTP requests."""
    head = head_of(fleet.inventory)
    conn = fleet.connector(head)
    declared = fleet.inventory.file.ray if fleet.inventory.file else None
    python = (declared.python if declared else None) or rc.python_of(head)
    facts = await node_facts(connector_run(conn), head.name, python, temp_dir=temp_dir,
                             ports=[], record=rc.RaySettings(temp_dir=temp_dir)
                             .record_path(head.name))
    place = place_from(facts, port)
    async with through_forward(conn.forward, head.host, place.port, place.bind,
                               request_timeout=request_timeout) as dashboard:
        try:
            await dashboard.version()
        except RayError as exc:
            if not place.running and isinstance(exc, DashboardSilent):
                raise RayError(f"Ray is not running on the head {head.name} (nothing answers "
                               f"at {dashboard.url}); start it with `saf run ray-up`") from None
            if not place.running:
                raise RayError(f"Ray is not running on the head {head.name}, and another "
                               f"program has its dashboard's port: {exc.message}; stop that "
                               "program, or start Ray with another port (`saf run ray-up "
                               "--var dashboard_port=PORT`)") from None
            raise RayError(f"Ray runs on the head {head.name} but {exc.message}; see "
                           "`saf doctor`, or restart it with `saf run ray-up --var "
                           "restart=true`") from None
        yield dashboard

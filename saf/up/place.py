"""Where `placement = "auto"` models go: each one's memory need (saf.inference.estimate, from
the model file on this machine) against the nodes' free memory from their agents
(saf.cluster.capacity, read as `saf models fit` reads it), placed by saf.cluster.placement.
A model that fits nowhere is refused before anything runs, with every node's figures."""

from __future__ import annotations

import asyncio
import time

from saf.agentlink.node_links import NodeLinks
from saf.cluster.capacity import Headroom, NodeMemory, nodes_memory
from saf.cluster.placement import ModelDemand, place
from saf.fleet import Fleet
from saf.inference.estimate import estimate
from saf.inventory.model import Node
from saf.metrics.events import NodeStatus
from saf.up.declared import Declared

READING_GRACE = 10.0  # seconds past the connect timeout a node's agent has for one sample


async def memory(fleet: Fleet, nodes: list[Node]) -> list[NodeMemory]:
    """Each node's memory from one sample of its agent (none in time: no reading)."""
    changed = asyncio.Event()
    links = NodeLinks(fleet, nodes, lambda _: changed.set(), interval=0.5)
    await links.start()
    try:
        deadline = time.monotonic() + max(n.connect_timeout for n in nodes) + READING_GRACE
        names = [n.name for n in nodes]

        def settled(name: str) -> bool:
            state = links.store.node(name)
            return state.samples > 0 or state.status == NodeStatus.LOST

        while not all(settled(n) for n in names):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), left)
            except TimeoutError:
                break
        return nodes_memory(links.store, names, time.time())
    finally:
        await links.stop()


async def placement(declared: Declared, fleet: Fleet, headroom: Headroom | None = None
                    ) -> dict[str, tuple[str, ...]]:
    """model name -> its nodes, for every placed model (PlacementRefused when one fits
    nowhere); {} when no model is placed, without asking any agent."""
    placed = [m for m in declared.models if m.placement == "auto"]
    if not placed:
        return {}
    demands = [ModelDemand(m.name, estimate(m.model, ctx=m.ctx_size).total, m.replicas)
               for m in placed]
    found = await memory(fleet, list(fleet.inventory.nodes))
    return {k: tuple(v) for k, v in place(demands, found, headroom or Headroom()).items()}

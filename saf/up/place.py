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
from saf.deadline import within
from saf.fleet import Fleet
from saf.inference.cluster import list_endpoints
from saf.inference.estimate import estimate
from saf.inventory.model import Node
from saf.metrics.events import NodeStatus
from saf.up.declared import Declared

READING_GRACE = 10.0  # seconds past the connect timeout a node's agent has for one sample


async def memory(fleet: Fleet, nodes: list[Node], grace: float = READING_GRACE
                 ) -> list[NodeMemory]:
    """Each node's memory from one sample of its agent (none within its connect timeout and
    `grace` seconds: no reading). `saf up` and `saf models fit` read it so."""
    changed = asyncio.Event()
    links = NodeLinks(fleet, nodes, lambda _: changed.set(), interval=0.5)
    await links.start()
    try:
        deadline = time.monotonic() + max(n.connect_timeout for n in nodes) + grace
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
                await within(changed.wait(), left)
            except TimeoutError:
                break
        return nodes_memory(links.store, names, time.time())
    finally:
        await links.stop()


async def placement(declared: Declared, fleet: Fleet, headroom: Headroom | None = None
                    ) -> dict[str, tuple[str, ...]]:
    """model name -> its nodes, for every placed model (PlacementRefused when one fits
    nowhere); {} when no model is placed, without asking any agent. A replica already
    serving the model on its port stays where it is (a second `saf up` does not move it);
    only the replicas missing are placed, on other nodes."""
    placed = [m for m in declared.models if m.placement == "auto"]
    if not placed:
        return {}
    nodes = list(fleet.inventory.nodes)
    found = await list_endpoints(fleet, nodes, probe=False)
    kept: dict[str, list[str]] = {}
    for model in placed:
        here = sorted({e.node for e in found.endpoints if e.port == model.port and e.up
                       and e.model == model.model})
        kept[model.name] = here[:model.replicas]
    wanted = [m for m in placed if len(kept[m.name]) < m.replicas]
    demands = [ModelDemand(m.name, estimate(m.model, ctx=m.ctx_size).total,
                           m.replicas - len(kept[m.name]),
                           nodes=tuple(n.name for n in nodes if n.name not in kept[m.name]))
               for m in wanted]
    chosen = place(demands, await memory(fleet, nodes), headroom or Headroom()) \
        if demands else {}
    return {m.name: tuple(kept[m.name]) + tuple(chosen.get(m.name, ())) for m in placed}

"""Where `placement = "auto"` models go: each one's memory need (saf.inference.estimate, from
the model file on this machine) against the nodes' free memory from their agents
(saf.cluster.capacity, read as `saf models fit` reads it), placed by saf.cluster.placement.
A model that fits nowhere is refused before anything runs, with every node's figures; when a
node is lost, its replicas are placed on the others (docs/placement.md)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from saf.deadline import within
from saf.fleet import Fleet
from saf.inventory.model import Node
from saf.up import replicas
from saf.up.declared import Declared

if TYPE_CHECKING:  # imported where used: a cluster without `placement = "auto"` never loads
    # the agent link, the metrics store and the model readers (saf up's start-up).
    from saf.cluster.capacity import Headroom, NodeMemory
    from saf.cluster.placement import FitRow, Move

READING_GRACE = 10.0  # seconds past the connect timeout a node's agent has for one sample


async def memory(fleet: Fleet, nodes: list[Node], grace: float = READING_GRACE
                 ) -> list[NodeMemory]:
    """Each node's memory from one sample of its agent (none within its connect timeout and
    `grace` seconds: no reading). `saf up` and `saf models fit` read it so."""
    from saf.agentlink.node_links import NodeLinks
    from saf.cluster.capacity import nodes_memory
    from saf.metrics.events import NodeStatus

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


@dataclass
class Placement:
    """Where `saf up` puts the placed models now, and what that changes: the replicas moved
    off a lost node, the replicas it stops (kept by saf as service model-NAME on a node the
    model is no longer placed on: its node came back after the replica moved, or more run
    than declared), and each model left with fewer replicas than declared (nodes lost and
    none fits: every answering node's figures)."""

    nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    moved: list[Move] = field(default_factory=list)
    surplus: dict[str, tuple[str, ...]] = field(default_factory=dict)
    short: dict[str, list[FitRow]] = field(default_factory=dict)
    record: replicas.Record = field(default_factory=dict)


async def placement(declared: Declared, fleet: Fleet, nodes: list[Node] | None = None,
                    lost: frozenset[str] = frozenset(), headroom: Headroom | None = None
                    ) -> Placement:
    """Each placed model's nodes among `nodes` (the nodes that answer; default all), none
    on a `lost` one. A replica already serving the model on its port stays where it is (a
    second `saf up` does not move it, nor does a lost node coming back: the replicas on the
    nodes of the last placement are kept first); only the replicas missing, or that ran on
    a lost node, are placed, on other nodes (saf.cluster.placement.replace_lost). With no
    node lost, a replica that fits nowhere refuses the run (PlacementRefused); with one
    lost, the model runs with fewer and `short` has the figures. Empty, without asking any
    node, when no model is placed."""
    placed = [m for m in declared.models if m.placement == "auto"]
    if not placed:
        return Placement()
    from saf.cluster.capacity import Headroom
    from saf.cluster.placement import ModelDemand, PlacementRefused, Replaced, replace_lost
    from saf.inference.cluster import list_endpoints
    from saf.inference.estimate import estimate
    from saf.recipe.kinds.model_kept import service_name

    headroom = headroom or Headroom()
    answering = list(fleet.inventory.nodes) if nodes is None else nodes
    before = replicas.load(fleet.inventory.cluster.name)
    found = await list_endpoints(fleet, answering, probe=False)
    running: dict[str, list[str]] = {}
    ours: dict[str, set[str]] = {}
    for model in placed:
        mine = [e for e in found.endpoints if e.port == model.port and e.model == model.model]
        was = [r.node for r in before.get(model.name, [])]
        # The nodes of the last placement first: they keep their replicas.
        up = replicas.keep_order(before, model.name, {e.node for e in mine if e.up})
        running[model.name] = up + [n for n in was if n in lost]
        ours[model.name] = {e.node for e in mine if e.kept == service_name(model.name)}
    kept = {m.name: [n for n in running[m.name] if n not in lost][:m.replicas] for m in placed}
    wanted = [m for m in placed if len(kept[m.name]) < m.replicas]
    replaced = Replaced({}, [], {})
    if wanted:
        demands = [ModelDemand(m.name, estimate(m.model, ctx=m.ctx_size).total, m.replicas)
                   for m in wanted]
        replaced = replace_lost(demands, {m.name: running[m.name] for m in wanted}, lost,
                                await memory(fleet, answering), headroom)
        if replaced.short and not lost:
            name, rows = next(iter(replaced.short.items()))
            model = next(m for m in wanted if m.name == name)
            raise PlacementRefused(name, len(replaced.placement[name]) + 1, model.replicas,
                                   rows, headroom)
    result = Placement(moved=[m for m in replaced.moved if m.lost is not None],
                       short=replaced.short)
    for model in placed:
        chosen = tuple(replaced.placement.get(model.name, kept[model.name]))
        result.nodes[model.name] = chosen
        extra = sorted(ours[model.name] - set(chosen))
        if extra:
            result.surplus[model.name] = tuple(extra)
        moves = {m.to: m.lost for m in result.moved if m.model == model.name}
        result.record[model.name] = [
            replicas.Replica(n, moves.get(n) or replicas.moved_from(before, model.name, n))
            for n in chosen]
    return result

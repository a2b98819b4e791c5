"""NodeLinks: one agent link per node, all feeding one store and one callback.

    links = NodeLinks(fleet, nodes, emit=on_event, interval=1.0)
    await links.start()          # returns at once; links run in the background
    links.store.value("alpha", "cpu.percent")
    links.set_interval(0.5)
    await links.stop()           # agents stopped, every node `stopped`

Each event is applied to `links.store` first, then handed to `emit`, so a consumer reading the
store from its callback sees the event's effect. A callback that raises is logged, never
allowed to stop a link.

It lives with the links it runs (saf.agentlink), above saf.metrics: the metrics package is the
readings' data (events, store, view) and starts nothing, so the links can emit its events
without the two packages importing each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from saf.agentlink.build import AgentBundle, build
from saf.agentlink.link import AgentLink
from saf.events import Emit, Event, ignore
from saf.fleet import Fleet
from saf.inventory.model import Node
from saf.metrics.store import MetricsStore

log = logging.getLogger(__name__)
STOP_WAIT = 20.0  # seconds all links together may take to stop


class NodeLinks:
    def __init__(self, fleet: Fleet, nodes: Iterable[Node], emit: Emit = ignore, *,
                 interval: float = 1.0, store: MetricsStore | None = None,
                 bundle: AgentBundle | None = None) -> None:
        self.fleet = fleet
        self.nodes = list(nodes)
        self.interval = interval
        self.store = store if store is not None else MetricsStore()
        self._emit = emit
        self._bundle = bundle
        self.links: dict[str, AgentLink] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _deliver(self, event: Event) -> None:
        self.store.apply(event)
        try:
            self._emit(event)
        except Exception:  # a consumer's bug must not stop the metrics
            log.exception("metrics consumer failed on %s", event.kind)

    async def start(self) -> None:
        """Start a link per node (deploying the agent where it is missing)."""
        if self._tasks:
            return
        if self._bundle is None:
            self._bundle = await asyncio.to_thread(build)
        bundle = self._bundle
        for node in self.nodes:
            self.store.add_node(node.name)
            link = AgentLink(self.fleet.connector(node), bundle, self._deliver,
                             interval=self.interval)
            self.links[node.name] = link
            self._tasks.append(asyncio.create_task(link.run(), name=f"agent-{node.name}"))

    def set_interval(self, seconds: float) -> None:
        """Ask every running agent to sample every `seconds` from now on."""
        if seconds <= 0:
            raise ValueError("the interval must be positive")
        self.interval = seconds
        for link in self.links.values():
            link.set_interval(seconds)

    async def stop(self) -> None:
        """Stop every agent (closing its stdin) and every link."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # Each link's own stop is bounded (its agent gets EOF, then is killed); this
            # bound is for a link that is somewhere nobody thought of.
            done, pending = await asyncio.wait(tasks, timeout=STOP_WAIT)
            for task in pending:
                log.warning("agent link %s did not stop within %g s", task.get_name(),
                            STOP_WAIT)

    async def __aenter__(self) -> NodeLinks:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

"""The fleet: the inventory's nodes, a pooled connector for each, and fan-out across them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from saf import select as selectors
from saf.connect.base import Connector
from saf.connect.jumps import Jumps
from saf.connect.local import LocalConnector
from saf.connect.ssh import SSHConnector
from saf.defaults import FLEET_CONCURRENCY
from saf.errors import ConnectError
from saf.fanout import fan_out
from saf.inventory.model import Inventory, Node

T = TypeVar("T")
DEFAULT_CONCURRENCY = FLEET_CONCURRENCY

ConnectorFactory = Callable[[Node], Connector]


class Fleet:
    def __init__(self, inventory: Inventory, *, concurrency: int = DEFAULT_CONCURRENCY,
                 connector_factory: ConnectorFactory | None = None) -> None:
        self.inventory = inventory
        self.concurrency = concurrency
        self._factory = connector_factory or self._default_connector
        self._connectors: dict[str, Connector] = {}
        self._os: dict[str, str | None] = {}
        # One connection per jump host, shared by the nodes behind it (saf.connect.jumps).
        self.jumps = Jumps(self._jump_connector)

    def _default_connector(self, node: Node) -> Connector:
        if node.connection == "local":
            return LocalConnector(node)
        return SSHConnector(node, pool=self.jumps)

    def _jump_connector(self, hop: Node) -> SSHConnector:
        """A jump host's connector: the fleet's own when the hop is one of its nodes (one
        connection to it, for its own commands and the tunnels through it)."""
        if hop.name in self.inventory.names and self.inventory.node(hop.name) == hop:
            own = self.connector(hop.name)
            if isinstance(own, SSHConnector):
                return own
        return SSHConnector(hop, pool=self.jumps)

    def connector(self, node: Node | str) -> Connector:
        """The one pooled connector of a node (created on first use)."""
        name = node if isinstance(node, str) else node.name
        if name not in self._connectors:
            self._connectors[name] = self._factory(self.inventory.node(name))
        return self._connectors[name]

    def fresh_connector(self, node: Node) -> Connector:
        """A new connector to `node`, outside the pool; the caller closes it."""
        return self._factory(node)

    async def select(self, selector: str | None, *, allow_empty: bool = False) -> list[Node]:
        """Nodes named by a selector; `os:` terms probe the OS of nodes that do not declare
        it (a node that cannot be reached matches no `os:` term)."""
        if selector and selectors.needs_os(selector):
            unknown = [n for n in self.inventory.nodes if not n.os and n.name not in self._os]
            found = await self.each(unknown, self._probe_os)
            for name, value in found.items():
                self._os[name] = value if isinstance(value, str) else None
        return selectors.select(self.inventory, selector, self._os, allow_empty=allow_empty)

    async def _probe_os(self, conn: Connector) -> str | None:
        result = await conn.run("uname -s", timeout=conn.node.connect_timeout)
        name = result.stdout.strip().lower()
        return {"darwin": "macos", "linux": "linux"}.get(name)

    async def each(self, nodes: Iterable[Node],
                   fn: Callable[[Connector], Awaitable[T]]) -> dict[str, T | Exception]:
        """Run `fn(connector)` on every node at once (at most `concurrency` at a time).
        Each node's result or exception is kept; one node's failure never stops the others."""
        nodes = list(nodes)
        outcomes = await fan_out(nodes, lambda node: fn(self.connector(node)),
                                 limit=self.concurrency)
        return {node.name: outcome for node, outcome in zip(nodes, outcomes, strict=True)}

    async def close(self) -> None:
        # The nodes behind jump hosts first, then the others, then the jump hosts outside the
        # fleet: a tunnel is closed before the connection it runs through.
        behind = [c for c in self._connectors.values() if c.node.jump]
        for group in (behind, [c for c in self._connectors.values() if not c.node.jump]):
            await asyncio.gather(*(c.close() for c in group), return_exceptions=True)
        self._connectors.clear()
        await self.jumps.close()

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def error_reason(exc: BaseException) -> tuple[str, str]:
    """(reason, message) for a node's failure, for tables and events."""
    if isinstance(exc, ConnectError):
        return exc.reason, exc.detail
    return "error", f"{type(exc).__name__}: {exc}"

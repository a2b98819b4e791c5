"""Jump hosts, pooled: one SSH connection to each jump host, shared by every node behind it.

A node's way there is `Node.jump` (the inventory's `jump` key) or else the ProxyJump its
OpenSSH config names; each hop is a Node (saf.inventory.jumps). The pool hands each hop's
connector out once: nodes behind the same bastion tunnel through the same connection, and
a jump host that is itself a node of the fleet is the fleet's own connector for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from saf.connect import hostkeys
from saf.errors import ConnectError, HostKeyError
from saf.inventory.address import AddressError, parse_jump
from saf.inventory.jumps import address_hops
from saf.inventory.model import Node

if TYPE_CHECKING:
    import asyncssh

    from saf.connect.ssh import SSHConnector


class JumpFailed(Exception):
    """A hop could not be reached; the node's connector says so in its own name."""

    def __init__(self, hop: Node, error: ConnectError) -> None:
        super().__init__(f"{hop.name}: {error.detail}")
        self.hop = hop
        self.error = error


def hops_of(node: Node) -> tuple[Node, ...]:
    """The jump hosts on the way to `node`: the inventory's, else its OpenSSH config's
    ProxyJump (read as OpenSSH reads it), else none."""
    if node.jump is not None:
        return node.jump
    spec = hostkeys.resolve(node).jump
    if not spec:
        return ()
    try:
        return address_hops(node, parse_jump(spec))
    except AddressError as exc:
        raise ConnectError(node.name, "config", f"cannot read its ProxyJump: {exc}") from None


def failure(node: Node, failed: JumpFailed) -> ConnectError:
    """The node's error for a jump host that could not be reached: it names the jump host
    (a refusal is the jump host's, not the node's), keeps the reason, and for a host key
    says how to trust it (`saf trust NODE` records the keys of the node's jump hosts too)."""
    error, hop = failed.error, failed.hop
    if isinstance(error, HostKeyError):
        return HostKeyError(
            node.name, f"jump host {hop.name}: " + hostkeys.explain(
                error.fingerprint, error.changed, hostkeys.known_hosts_file(hop), node.name),
            fingerprint=error.fingerprint, changed=error.changed)
    return ConnectError(node.name, error.reason, f"jump host {hop.name}: {error.detail}")


class Jumps:
    """The pool. `make` builds a hop's connector (the fleet's own for a node of the fleet)."""

    def __init__(self, make: Callable[[Node], SSHConnector]) -> None:
        self._make = make
        self._connectors: dict[Node, SSHConnector] = {}

    def connector(self, hop: Node) -> SSHConnector:
        if hop not in self._connectors:
            self._connectors[hop] = self._make(hop)
        return self._connectors[hop]

    async def tunnel(self, hops: Sequence[Node]) -> asyncssh.SSHClientConnection:
        """The connection to the last hop, each hop connected (once, shared) in order; the
        first that cannot be reached raises JumpFailed naming it."""
        assert hops
        for hop in hops:
            try:
                conn = await self.connector(hop).connection()
            except ConnectError as exc:
                raise JumpFailed(hop, exc) from None
        return conn

    async def close(self) -> None:
        """Close what the pool opened, nodes behind others first."""
        order = sorted(self._connectors.items(), key=lambda item: -len(item[0].jump or ()))
        self._connectors.clear()
        for _, connector in order:
            with contextlib.suppress(Exception):
                await asyncio.shield(connector.close())

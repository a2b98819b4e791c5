"""The typed inventory model. Values here are already validated and defaults applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from saf.inventory.address import Address
from saf.inventory.schema import Connection, InventoryFile, Os, Role

# The choices as the file's model declares them (saf.inventory.schema), once.
ROLES: tuple[str, ...] = get_args(Role)
# Words a node selector reads as something other than a node's name (saf.select's grammar):
# a node named so could never be chosen by name, so the inventory refuses them.
SELECTOR_WORDS = frozenset({"all", "head", "worker", "workers", "control"})
OSES: tuple[str, ...] = get_args(Os)
CONNECTIONS: tuple[str, ...] = get_args(Connection)


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    user: str | None = None
    port: int | None = None
    roles: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    python: str = "python3"
    os: str | None = None
    connection: str = "ssh"
    identity: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    connect_timeout: float = 10.0
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    line: int | None = field(default=None, compare=False)
    # The jump hosts on the way, the one dialled first first; each hop is a Node (another
    # node of the inventory, or one made for a `[user@]host[:port]` hop, saf.inventory.jumps)
    # carrying the hops before it. None: the inventory says nothing and the OpenSSH config's
    # ProxyJump (if any) decides; (): straight there, whatever the config says.
    jump: tuple[Node, ...] | None = None

    @property
    def is_head(self) -> bool:
        return "head" in self.roles

    @property
    def address(self) -> str:
        """user@host:port as far as the inventory says; ~/.ssh/config may add more."""
        return str(Address(self.host, self.port, self.user))


@dataclass(frozen=True)
class Defaults:
    user: str | None = None
    port: int | None = None
    python: str = "python3"
    identity: str | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    connect_timeout: float = 10.0
    jump: str | None = None  # as written; each node's is resolved into Node.jump
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Cluster:
    name: str = "saf"


@dataclass(frozen=True)
class Inventory:
    cluster: Cluster
    defaults: Defaults
    nodes: tuple[Node, ...]
    path: Path | None = None
    # Tables that later parts of saf own (e.g. [signals], [cockpit]); kept raw for them.
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # The file as decoded (its shape checked): saf.up.declared reads the declared
    # cluster ([up], [ray], [[services]], [[models]]) from it and checks it whole.
    file: InventoryFile | None = field(default=None, hash=False, compare=False, repr=False)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def head(self) -> Node | None:
        return next((n for n in self.nodes if n.is_head), None)

"""The `jump` key: which jump host (bastion) a node is reached through.

A node's `jump` (or the defaults') is one of
- another node's name: reached as that node is (its own address, user, keys and jump), and
  saf holds one connection to it for everything behind it and for the node itself;
- hops in ProxyJump's form, `[user@]host[:port]` or `ssh://host`, comma-separated, each
  dialled through the one before, with the node's identity, known_hosts and OpenSSH config
  (the same reading as a ProxyJump in the OpenSSH config, saf.connect.ssh);
- `none`: straight to the node, whatever the OpenSSH config's ProxyJump says.
A bare word that names no node is refused rather than taken for a host name: it is far more
often a node's name mistyped (`ssh://bastion` says "the host bastion").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from saf.inventory.address import Address, AddressError, parse_jump
from saf.inventory.model import Node

NONE = "none"
# A word as a node name is written, without a dot: it cannot be a host's address.
_BARE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Written:
    """A node's jump as the file says it, and where (for the error)."""

    text: str
    where: tuple[Any, ...]
    from_defaults: bool = False


# Makes the error for a place in the file; the message starts with the value as written.
Fail = Callable[[tuple[Any, ...], str], Exception]


def route(node: Node) -> str:
    """The jump hosts a node is reached through, as every face shows them: each hop's name
    (a node's, or `[user@]host[:port]`), the one dialled first first, comma-separated as a
    ProxyJump; "" when saf dials none (none written, `none`, or the OpenSSH config's)."""
    return ",".join(hop.name for hop in node.jump or ())


def address_hops(base: Node, addresses: Sequence[Address]) -> tuple[Node, ...]:
    """Nodes for ProxyJump hops, each reached with `base`'s identity, known_hosts, OpenSSH
    config and timeout, through the hops before it. The first hop's own way there is its
    OpenSSH config's (jump None), as OpenSSH reads it. The hops carry nothing of `base`
    that differs between nodes, so two nodes behind the same hop share one connection."""
    hops: list[Node] = []
    for address in addresses:
        hops.append(Node(
            name=str(address), host=address.host, port=address.port, user=address.user,
            identity=base.identity, known_hosts=base.known_hosts, ssh_config=base.ssh_config,
            connect_timeout=base.connect_timeout, line=base.line,
            jump=tuple(hops) if hops else None))
    return tuple(hops)


def resolve(nodes: Sequence[Node], written: Mapping[str, Written], fail: Fail) -> list[Node]:
    """`nodes` with each one's `jump` read from `written` (by node name): a node named as a
    jump host must exist, not be local, and not lead back round to the node."""
    by_name = {n.name: n for n in nodes}
    done: dict[str, Node] = {}

    def resolved(name: str, path: tuple[str, ...]) -> Node:
        if name in done:
            return done[name]
        node = by_name[name]
        spec = written.get(name)
        jump = None if spec is None else _chain(node, spec, path + (name,))
        done[name] = dataclasses.replace(node, jump=jump)
        return done[name]

    def _chain(node: Node, spec: Written, path: tuple[str, ...]) -> tuple[Node, ...] | None:
        text = spec.text.strip()
        if text.lower() == NONE:
            return ()
        if text in by_name:
            if text == node.name:
                if spec.from_defaults:
                    return None  # the defaults' jump host is itself reached directly
                raise fail(spec.where, f"{text!r} is the node itself")
            if text in path:
                ring = " -> ".join(path[path.index(text):] + (text,))
                raise fail(spec.where, f"{text!r} leads round in a ring of jump hosts "
                           f"({ring}); one of them must be reached directly")
            host = by_name[text]
            if host.connection == "local":
                raise fail(spec.where, f"{text!r} is a local node (connection = \"local\"), "
                           "not an SSH server to go through")
            through = resolved(text, path)
            return (*(through.jump or ()), through)
        if _BARE.match(text):
            names = ", ".join(sorted(by_name))
            raise fail(spec.where, f"{text!r} names no node of the inventory ({names}); "
                       f"a host outside it is written as an address: ssh://{text}, "
                       f"user@{text} or {text}:22")
        try:
            addresses = parse_jump(text)
        except AddressError as exc:
            raise fail(spec.where, f"{text!r} is neither a node's name nor "
                       f"[user@]host[:port] hops separated by commas: {exc}") from None
        return address_hops(node, addresses)

    return [resolved(n.name, ()) for n in nodes]

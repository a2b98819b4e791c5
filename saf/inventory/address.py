"""`[user@]host[:port]`, read and written one way everywhere (ProxyJump hops, signal
endpoints, messages that name a node).

An IPv6 address is written in brackets when a port follows or may follow (`[::1]:22`,
`user@[fe80::1%eth0]:2222`), as OpenSSH and ZeroMQ write it; a bare `::1` is an address
without a port, never host `:` and port `1`.
"""

from __future__ import annotations

from dataclasses import dataclass


class AddressError(ValueError):
    """Text that is not `[user@]host[:port]`; the message says what is wrong."""


@dataclass(frozen=True)
class Address:
    host: str  # without brackets: "::1", "fe80::1%eth0", "beta"
    port: int | None = None
    user: str | None = None

    def __str__(self) -> str:
        text = host_port(self.host, self.port)
        return f"{self.user}@{text}" if self.user else text


def host_port(host: str, port: int | None) -> str:
    """`host:port`, with an IPv6 host in brackets; just the host when there is no port."""
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> Address:
    """Read `[user@]host[:port]`; an IPv6 host with a port is in brackets."""
    user, at, rest = text.strip().rpartition("@")
    if at and not user:
        raise AddressError(f"{text!r}: nothing before '@'")
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket:
            raise AddressError(f"{text!r}: '[' without a matching ']'")
        if after and not after.startswith(":"):
            raise AddressError(f"{text!r}: expected ':PORT' after ']'")
        port_text = after[1:] if after else None
    elif rest.count(":") > 1:
        host, port_text = rest, None  # a bare IPv6 address: its colons are not a port
    else:
        host, colon, port_text_or_empty = rest.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host:
        raise AddressError(f"{text!r}: no host")
    if any(c in host for c in "/[] \t"):
        raise AddressError(f"{text!r}: {host!r} is not a host name or address")
    return Address(host, _port(text, port_text), user or None)


def _port(text: str, port_text: str | None) -> int | None:
    if port_text is None:
        return None
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise AddressError(f"{text!r}: port {port_text or '(none)'} is not a number from 1 "
                           "to 65535")
    return int(port_text)


def parse_jump(spec: str) -> list[Address]:
    """OpenSSH's ProxyJump: comma-separated hops, each `[user@]host[:port]` or
    `ssh://[user@]host[:port]`."""
    hops = []
    for hop in spec.split(","):
        hop = hop.strip()
        hops.append(parse_address(hop.removeprefix("ssh://")))
    return hops

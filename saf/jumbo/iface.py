"""Which interface carries a node's cluster address, read from the node's own tools.

Linux: `ip -j addr show` (JSON). macOS: `ifconfig` (the interfaces, their MTU, addresses and
media) and `networksetup -listallhardwareports` (the hardware port, i.e. the name
`networksetup -setMTU` takes, of each device). Every parser takes the tool's text and raises
`FactError` with what is wrong; output from a node is never trusted to be well formed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any


class FactError(ValueError):
    """A node's tool said something saf cannot read, or not what saf needs."""


@dataclass(frozen=True)
class Interface:
    name: str
    mtu: int
    up: bool
    addresses: tuple[str, ...] = ()
    loopback: bool = False
    media: str | None = None  # macOS: the selected media ("autoselect", "10Gbase-T <full-duplex>")
    active_media: str | None = None  # macOS: what the link runs at now
    kind: str | None = None  # Linux link_type / info_kind (ether, veth, bridge...)


@dataclass(frozen=True)
class Found:
    """The interface carrying the cluster address, and that address."""

    interface: Interface
    address: str
    port: str | None = None  # macOS hardware port ("Ethernet"), for networksetup
    others: tuple[str, ...] = field(default=())


def _mtu(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 65536:
        raise FactError(f"{where}: MTU {value!r} is not a number from 68 to 65536")
    return value


def _address(text: str) -> str:
    return str(ipaddress.ip_address(text.split("%", 1)[0]))


def parse_ip_addr(text: str) -> list[Interface]:
    """`ip -j addr show` -> interfaces."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise FactError(f"`ip -j addr` did not print JSON ({exc})") from None
    if not isinstance(data, list):
        raise FactError("`ip -j addr` printed JSON that is not a list of interfaces")
    out = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("ifname"), str):
            raise FactError("`ip -j addr` listed an interface without a name")
        name = entry["ifname"]
        raw_flags = entry.get("flags")
        flags: list[Any] = raw_flags if isinstance(raw_flags, list) else []
        addresses = []
        for info in entry.get("addr_info") or []:
            if isinstance(info, dict) and isinstance(info.get("local"), str):
                try:
                    addresses.append(_address(info["local"]))
                except ValueError:
                    raise FactError(f"`ip -j addr`: {name} has a bad address "
                                    f"{info['local']!r}") from None
        linkinfo = entry.get("linkinfo")
        kind = (linkinfo.get("info_kind") if isinstance(linkinfo, dict) else None) \
            or entry.get("link_type")
        out.append(Interface(name, _mtu(entry.get("mtu"), f"`ip -j addr`: {name}"),
                             "UP" in flags, tuple(addresses), "LOOPBACK" in flags,
                             kind=kind if isinstance(kind, str) else None))
    return out


_IFCONFIG_HEAD = re.compile(r"^([A-Za-z0-9._-]+): flags=\w+<([^>]*)> mtu (\d+)")
_INET = re.compile(r"^\s+inet6? ([0-9A-Fa-f.:%a-z]+)")
_MEDIA = re.compile(r"^\s+media: (.*?)\s*$")


def parse_ifconfig(text: str) -> list[Interface]:
    """macOS `ifconfig` (all interfaces) -> interfaces."""
    out: list[Interface] = []
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            out.append(Interface(current["name"], current["mtu"], current["up"],
                                 tuple(current["addresses"]), current["loopback"],
                                 current["media"], current["active"]))

    for line in text.splitlines():
        head = _IFCONFIG_HEAD.match(line)
        if head:
            close()
            flags = head.group(2).split(",")
            current = {"name": head.group(1), "mtu": _mtu(int(head.group(3)),
                                                         f"ifconfig: {head.group(1)}"),
                       "up": "UP" in flags, "loopback": "LOOPBACK" in flags,
                       "addresses": [], "media": None, "active": None}
            continue
        if current is None:
            if line.strip():
                raise FactError(f"ifconfig: a line before any interface: {line.strip()!r}")
            continue
        inet = _INET.match(line)
        if inet:
            try:
                current["addresses"].append(_address(inet.group(1)))
            except ValueError:
                raise FactError(f"ifconfig: {current['name']} has a bad address "
                                f"{inet.group(1)!r}") from None
            continue
        media = _MEDIA.match(line)
        if media:
            # "autoselect (1000baseT <full-duplex>)": the selection, then what is active.
            value = media.group(1)
            selected, _, active = value.partition(" (")
            current["media"] = selected.strip()
            current["active"] = active.rstrip(")").strip() or None
    close()
    if not out:
        raise FactError("ifconfig listed no interfaces")
    return out


def parse_hardware_ports(text: str) -> dict[str, str]:
    """`networksetup -listallhardwareports` -> {device: hardware port}."""
    ports: dict[str, str] = {}
    port: str | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key == "Hardware Port":
            port = value.strip()
        elif key == "Device" and port is not None:
            ports[value.strip()] = port
            port = None
    return ports


def carrying(interfaces: list[Interface], wanted: list[str], *,
             named: str | None = None) -> Found:
    """The interface that holds one of `wanted` (the node's cluster address as the inventory
    resolves, then as the node's SSH server saw it), or the one `named` by the recipe."""
    if named is not None:
        for iface in interfaces:
            if iface.name == named:
                address = next((a for a in iface.addresses if ":" not in a),
                               iface.addresses[0] if iface.addresses else "")
                if not address:
                    raise FactError(f"interface {named} has no address to check the links on")
                return Found(iface, address)
        raise FactError(f"there is no interface {named} (there are: "
                        f"{', '.join(i.name for i in interfaces)})")
    normal = []
    for text in wanted:
        try:
            normal.append(_address(text))
        except ValueError:
            continue
    on_loopback: tuple[str, str] | None = None
    for address in normal:
        for iface in interfaces:
            if address in iface.addresses:
                if iface.loopback:  # e.g. an inventory that reaches the node via a tunnel
                    on_loopback = on_loopback or (address, iface.name)
                    continue
                return Found(iface, address)
    if on_loopback:
        raise FactError(f"the cluster address {on_loopback[0]} is on the loopback interface "
                        f"{on_loopback[1]}, which carries no link (name one with `interface`)")
    raise FactError(f"no interface holds the cluster address "
                    f"({', '.join(normal) or 'none could be resolved'}); name one with "
                    "`interface`")

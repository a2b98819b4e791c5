"""One remote call that tells saf a node's network: its OS, its interfaces, the address its
SSH server was reached on, and (Linux) which network manager would keep an MTU over a reboot.
"""

from __future__ import annotations

from dataclasses import dataclass

from saf.jumbo.iface import (
    FactError,
    Found,
    Interface,
    carrying,
    parse_hardware_ports,
    parse_ifconfig,
    parse_ip_addr,
)
from saf.shell import quote

SCRIPT = """case "$(uname -s)" in
Darwin)
  echo @@os macos
  echo @@ifconfig; ifconfig
  echo @@ports; networksetup -listallhardwareports
  ;;
*)
  echo @@os linux
  echo @@ip; ip -j addr show
  echo @@nm
  if command -v nmcli >/dev/null 2>&1; then nmcli -t -f RUNNING general 2>/dev/null; fi
  echo @@netplan
  if command -v netplan >/dev/null 2>&1; then ls /etc/netplan/ 2>/dev/null | grep '\\.yaml$'; fi
  ;;
esac
echo @@ssh; echo "${SSH_CONNECTION:-}"
"""


@dataclass(frozen=True)
class NodeNet:
    os: str  # linux | macos
    found: Found
    manager: str | None = None  # Linux: "networkmanager" | "netplan" | None


def sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            name, _, rest = line[2:].partition(" ")
            current = out.setdefault(name, [])
            if rest:
                current.append(rest)
            continue
        if current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def read(text: str, wanted: list[str], *, interface: str | None = None) -> NodeNet:
    """The facts script's output -> the node's OS, the interface carrying its cluster address
    (`wanted`: what the inventory's host resolves to; the SSH server's own address is tried
    after it) and its network manager."""
    parts = sections(text)
    os_name = parts.get("os", "").strip()
    server = parts.get("ssh", "").split()
    if len(server) == 4:
        wanted = [*wanted, server[2]]
    if os_name == "macos":
        interfaces: list[Interface] = parse_ifconfig(parts.get("ifconfig", ""))
        ports = parse_hardware_ports(parts.get("ports", ""))
        found = carrying(interfaces, wanted, named=interface)
        port = ports.get(found.interface.name)
        if port is None:
            raise FactError(f"{found.interface.name} is not a hardware port networksetup "
                            f"knows (it knows: {', '.join(sorted(ports)) or 'none'})")
        return NodeNet("macos", Found(found.interface, found.address, port))
    if os_name == "linux":
        found = carrying(parse_ip_addr(parts.get("ip", "")), wanted, named=interface)
        manager = None
        if parts.get("nm", "").strip() == "running":
            manager = "networkmanager"
        elif parts.get("netplan", "").strip():
            manager = "netplan"
        return NodeNet("linux", found, manager)
    raise FactError(f"unknown operating system {os_name or '(none)'!r}")


def nm_connection_command(interface: str) -> str:
    """The NetworkManager connection active on `interface` (empty when unmanaged)."""
    return f"nmcli -g GENERAL.CONNECTION device show {quote(interface)} 2>/dev/null || true"

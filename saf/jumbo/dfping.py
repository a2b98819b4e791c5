"""The don't-fragment ping of the largest payload an MTU carries, between nodes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from saf.shell import quote

IPV4_HEADERS = 20 + 8  # IPv4 header + ICMP header
IPV6_HEADERS = 40 + 8


def payload(mtu: int, address: str) -> int:
    """The ICMP payload that fills one frame of `mtu` exactly (8972 for 9000 over IPv4)."""
    v6 = ipaddress.ip_address(address).version == 6
    return mtu - (IPV6_HEADERS if v6 else IPV4_HEADERS)


def ping_command(os_name: str, address: str, mtu: int) -> str:
    """One DF ping command: two echoes 0.2 s apart, all over within 2 s (a frame the link
    refuses can make ping back off for seconds: the deadline bounds it)."""
    size = payload(mtu, address)
    v6 = ipaddress.ip_address(address).version == 6
    if os_name == "macos":
        if v6:
            raise ValueError("the don't-fragment check over IPv6 is not supported on macOS")
        return f"ping -D -c 2 -i 0.2 -t 2 -s {size} {quote(address)}"
    return f"ping {'-6 ' if v6 else ''}-M do -c 2 -i 0.2 -W 1 -w 2 -s {size} {quote(address)}"


@dataclass(frozen=True)
class PingResult:
    address: str
    ok: bool
    detail: str = ""


MARK = "saf-ping"
ANSWER = "saf-pings"  # the script's first line: the node's shell answered


def pings_script(os_name: str, addresses: list[str], mtu: int) -> str:
    """Ping every address at once; one line per address: `saf-ping RC ADDRESS LAST-LINE`."""
    lines = [f"echo {ANSWER}"]
    for address in addresses:
        command = ping_command(os_name, address, mtu)
        lines.append(f'( out=$({command} 2>&1); rc=$?; '
                     f'printf "{MARK} %s %s %s\\n" "$rc" {quote(address)} '
                     '"$(printf "%s\\n" "$out" | grep . | tail -n 1)" ) &')
    lines.append("wait")
    return "\n".join(lines)


def parse_pings(text: str, addresses: list[str]) -> dict[str, PingResult]:
    """The script's lines -> a result per address (an address with no line failed)."""
    out: dict[str, PingResult] = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[0] != MARK or parts[2] not in addresses:
            continue
        detail = parts[3].strip() if len(parts) > 3 else ""
        out[parts[2]] = PingResult(parts[2], parts[1] == "0", detail)
    for address in addresses:
        out.setdefault(address, PingResult(address, False, "no answer from ping"))
    return out

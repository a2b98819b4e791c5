"""Network interfaces: byte and packet rates in and out, errors and drops, MTU, link speed,
duplex, up/down, addresses, and which interface carries the cluster's address.

Linux reads /proc/net/dev and /sys/class/net/<nic>/ directly; addresses come from psutil
when importable, else from /proc/net/if_inet6 and an ioctl (primary IPv4 only). Elsewhere
(macOS) everything comes from psutil. Link attributes (MTU, speed, duplex, addresses) change
rarely and are re-read every LINK_REFRESH seconds; up/down is read every sample.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable
from types import ModuleType

from ..collectors import Collector, Rates, Reading

LINK_REFRESH = 5.0
IFF_UP = 0x1
SIOCGIFADDR = 0x8915
COUNTERS = ("rx_bytes", "rx_packets", "rx_errors", "rx_drops",
            "tx_bytes", "tx_packets", "tx_errors", "tx_drops")


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """{nic: {counter: int}} from /proc/net/dev."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        f = rest.split()
        if len(f) < 16:
            continue
        out[name.strip()] = {
            "rx_bytes": int(f[0]), "rx_packets": int(f[1]), "rx_errors": int(f[2]),
            "rx_drops": int(f[3]), "tx_bytes": int(f[8]), "tx_packets": int(f[9]),
            "tx_errors": int(f[10]), "tx_drops": int(f[11]),
        }
    return out


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


def _ipv6_addresses(text: str) -> dict[str, list[str]]:
    """{nic: [addr]} from /proc/net/if_inet6."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 6:
            raw = f[0]
            groups = [raw[i:i + 4] for i in range(0, 32, 4)]
            addr = socket.inet_ntop(socket.AF_INET6, bytes.fromhex("".join(groups)))
            out.setdefault(f[5], []).append(addr)
    return out


def printable(name: str) -> str:
    """A name as a frame carries it: bytes that are not UTF-8 backslash-escaped (b"v\\xff0"
    becomes "v\\\\xff0"), so one odd interface never stops the others being reported."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _ipv4_address(name: str) -> str | None:
    try:
        import fcntl
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                 struct.pack("256s", os.fsencode(name)[:15]))
        return socket.inet_ntoa(packed[20:24])
    except (OSError, ImportError):
        return None


class NicCollector(Collector):
    name = "nics"
    section = "nics"

    def start(self) -> str | None:
        self.rates = Rates()
        self.links: dict[str, Reading] = {}
        self.addresses: dict[str, list[str]] = {}
        self.refreshed = 0.0
        self.psutil: ModuleType | None
        self.psutil, why = self.machine.module("psutil")
        if self.machine.linux and self.machine.read("/proc/net/dev"):
            self.source = "/proc/net/dev, /sys/class/net"
            if self.psutil is None:
                self.note = why + ": addresses from /proc/net/if_inet6 and the primary IPv4"
            self.collect()
            return None
        if self.psutil is None:
            return "no /proc/net/dev and " + why
        self.source = "psutil"
        self.collect()
        return None

    # -- reading ---------------------------------------------------------------------------
    def _counters(self) -> dict[str, dict[str, int]]:
        if self.psutil is None or self.source.startswith("/proc"):
            return parse_net_dev(self.machine.read("/proc/net/dev") or "")
        out = {}
        for name, c in self.psutil.net_io_counters(pernic=True).items():
            out[name] = {"rx_bytes": c.bytes_recv, "rx_packets": c.packets_recv,
                         "rx_errors": c.errin, "rx_drops": c.dropin, "tx_bytes": c.bytes_sent,
                         "tx_packets": c.packets_sent, "tx_errors": c.errout,
                         "tx_drops": c.dropout}
        return out

    def _refresh_links(self, names: Iterable[str]) -> None:
        self.links = {}
        if self.psutil is None or self.source.startswith("/proc"):
            for name in names:
                base = ("/sys/class/net", name)
                speed = _int(self.machine.read(*base, "speed"))
                duplex = (self.machine.read(*base, "duplex") or "").strip() or None
                self.links[name] = {
                    "mtu": _int(self.machine.read(*base, "mtu")),
                    # sysfs says -1 (or EINVAL) when the link has no speed: unknown, not 0.
                    "speed_mbps": speed if speed is not None and speed > 0 else None,
                    "duplex": duplex if duplex in ("full", "half") else None,
                }
        else:
            try:
                stats = self.psutil.net_if_stats()
            except UnicodeError:  # psutil fails whole on a name that is not UTF-8
                stats = {}
            for name, st in stats.items():
                duplex = {2: "full", 1: "half"}.get(int(st.duplex))
                self.links[name] = {"mtu": st.mtu, "speed_mbps": st.speed or None,
                                    "duplex": duplex, "up": bool(st.isup)}
        self.addresses = self._addresses(names)

    def _addresses(self, names: Iterable[str]) -> dict[str, list[str]]:
        if self.psutil is not None:
            out: dict[str, list[str]] = {}
            families = (socket.AF_INET, socket.AF_INET6)
            try:
                found = self.psutil.net_if_addrs()
            except UnicodeError:
                found = {}
            for name, addrs in found.items():
                out[name] = [a.address.split("%")[0] for a in addrs if a.family in families]
            return out
        out = _ipv6_addresses(self.machine.read("/proc/net/if_inet6") or "")
        if self.machine.root in ("/", ""):  # the ioctl asks this machine's kernel
            for name in names:
                v4 = _ipv4_address(name)
                if v4:
                    out.setdefault(name, []).insert(0, v4)
        return out

    def collect(self) -> list[Reading]:
        now = time.monotonic()
        counters = self._counters()
        if now - self.refreshed >= LINK_REFRESH or set(counters) != set(self.links):
            self._refresh_links(counters)
            self.refreshed = now
        out = []
        for name in sorted(counters):
            c = counters[name]
            item: Reading = {"name": printable(name)}

            item.update(self.links.get(name, {}))
            if self.source.startswith("/proc"):
                flags = _int(self.machine.read("/sys/class/net", name, "flags"))
                item["up"] = None if flags is None else bool(flags & IFF_UP)
                # operstate: up, down, dormant, or unknown (loopback, many virtual links).
                item["operstate"] = (self.machine.read("/sys/class/net", name, "operstate")
                                     or "").strip() or None
            addrs = self.addresses.get(name, [])
            item["addresses"] = addrs
            item["cluster"] = bool(self.machine.cluster_addresses.intersection(addrs))
            item.update(c)
            rates = self.rates.update(name, now, c)
            for key, out_key in (("rx_bytes", "rx_bps"), ("tx_bytes", "tx_bps"),
                                 ("rx_packets", "rx_pps"), ("tx_packets", "tx_pps")):
                rate = rates.get(key)
                item[out_key] = None if rate is None else round(rate, 1)
            missing = {k: "not reported for this interface" for k in ("speed_mbps", "duplex")
                       if item.get(k) is None}
            if missing:
                item["missing"] = missing
            out.append(item)
        self.rates.forget_except(counters)
        return out

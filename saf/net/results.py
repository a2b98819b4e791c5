"""A speed test's results: each node's cluster link, every measurement, and what they mean
(the matrix, each link as a fraction of the slower end's line rate, the warnings), as JSON.

Throughput is in bits per second as measured by the receiving end; `gbps` is that / 1e9.
A link is "well under line rate" below WELL_UNDER of the slower end's link speed. A test
"retransmitted much" when the retransmits the receiver did not report as duplicates are over
RETRANSMIT_WARN of the data segments sent (retransmit_rate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from saf.errors import SafError
from saf.format import fmt_count, fmt_gbps, fmt_link, fmt_percent

WELL_UNDER = 0.7      # a link measured under 70 % of its line rate gets a warning
# Retransmitted segments / data segments sent over which a test gets a warning (TCP's own
# figures; nstat's TcpRetransSegs / TcpOutSegs read the same way). A healthy veth pair
# retransmits 0.05-1.2 % of its segments, nearly all of them needless (the receiver reports
# them as duplicates: D-SACK), which saf does not count where the tester knows them; a sound
# LAN link loses nothing. At 1 % loss one TCP stream with a 0.2 ms round trip is held to about
# 0.7 Gbit/s (Mathis et al.: MSS / (RTT * sqrt(p))).
RETRANSMIT_WARN = 0.01
SCHEMA = 1


class ResultError(SafError):
    title = "Speed test results"


@dataclass
class NodeLink:
    """A node's cluster interface, as its agent saw it before the test."""

    node: str
    address: str = ""
    interface: str | None = None
    mtu: int | None = None
    speed_mbps: int | None = None
    iperf3: bool = False
    error: str | None = None


@dataclass
class Measurement:
    """One direction of one pair with one stream count."""

    sender: str
    receiver: str
    streams: int
    tool: str = "saf"
    bits_per_second: float | None = None
    seconds: float | None = None
    rtt_ms: float | None = None          # idle round trip between the pair (saf's tester)
    loaded_rtt_ms: float | None = None   # the sender's smoothed RTT under load (TCP_INFO)
    retransmits: int | None = None
    pmtu: int | None = None              # the kernel's path MTU while data crossed (TCP_INFO)
    segments: int | None = None          # data segments sent in the counted seconds
    spurious: int | None = None          # retransmits the receiver reported as duplicates
    sender_cpu_s: float | None = None
    receiver_cpu_s: float | None = None
    error: str | None = None

    @property
    def gbps(self) -> float | None:
        return None if self.bits_per_second is None else self.bits_per_second / 1e9

    @property
    def ok(self) -> bool:
        return self.error is None and self.bits_per_second is not None

    @property
    def retransmit_rate(self) -> float | None:
        """Retransmitted segments / data segments sent, less those the receiver reported as
        duplicates where the tool says (saf's tester on Linux 5.0+); None when the tool gave
        no segment count (macOS, a result saved by an older saf)."""
        if self.retransmits is None or not self.segments:
            return None
        needless = min(self.spurious or 0, self.retransmits)
        return (self.retransmits - needless) / self.segments

    @property
    def retransmits_much(self) -> bool:
        """Over RETRANSMIT_WARN: the warning and the matrices' ↻ say so."""
        rate = self.retransmit_rate
        return rate is not None and rate > RETRANSMIT_WARN


# A speed test's state: running, then ok, failed (a pair not measured, or a link's error)
# or cancelled; stored as these words.
RunStatus = Literal["running", "ok", "failed", "cancelled"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)


@dataclass
class NetResult:
    run: str
    cluster: str
    nodes: list[str]
    pairs: str = "all"
    streams: int = 4
    duration: float = 5.0
    warmup: float = 1.0
    tool: str = "saf"
    started: float = 0.0
    finished: float | None = None
    status: RunStatus = "running"
    rounds: list[list[list[str]]] = field(default_factory=list)
    links: dict[str, NodeLink] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)

    # -- reading ----------------------------------------------------------------------------
    def stream_counts(self) -> list[int]:
        return sorted({1, self.streams})

    def find(self, sender: str, receiver: str, streams: int | None = None
             ) -> Measurement | None:
        """The measurement sender -> receiver with `streams` (default: the most streams)."""
        want = self.streams if streams is None else streams
        for m in self.measurements:
            if m.sender == sender and m.receiver == receiver and m.streams == want:
                return m
        return None

    def pair_rtt_ms(self, a: str, b: str) -> float | None:
        rtts = [m.rtt_ms if m.rtt_ms is not None else m.loaded_rtt_ms for m in self.measurements
                if {m.sender, m.receiver} == {a, b}]
        found = [r for r in rtts if r is not None]
        return min(found) if found else None

    def line_rate_mbps(self, a: str, b: str) -> int | None:
        """The slower end's link speed; None when either end's is unknown."""
        speeds = [self.links[n].speed_mbps if n in self.links else None for n in (a, b)]
        if any(s is None for s in speeds):
            return None
        return min(s for s in speeds if s is not None)

    def fraction(self, m: Measurement) -> float | None:
        """The measurement as a fraction of the slower end's line rate (0.945 = 94.5 %)."""
        line = self.line_rate_mbps(m.sender, m.receiver)
        if not line or m.bits_per_second is None:
            return None
        return m.bits_per_second / (line * 1e6)

    def interface_mtu(self, a: str, b: str) -> int | None:
        """The smaller configured MTU of the two ends' interfaces (`ip link`)."""
        mtus = [self.links[n].mtu if n in self.links else None for n in (a, b)]
        return None if any(m is None for m in mtus) else min(m for m in mtus if m is not None)

    def measured_pmtu(self, a: str, b: str) -> int | None:
        """The kernel's path MTU a -> b while data crossed (the smallest of a's tests)."""
        seen = [m.pmtu for m in self.measurements
                if m.sender == a and m.receiver == b and m.ok and m.pmtu]
        return min(seen) if seen else None

    def path_mtu(self, a: str, b: str) -> int | None:
        """The path MTU a -> b that every face prints: the kernel's, as measured (TCP_INFO,
        iperf3's pmtu: the same field `saf net test` prints per test), else, where no tool
        reported one, the smaller interface MTU. On loopback the two differ: lo's MTU is
        65536, but an IPv4 packet, so the path MTU, ends at 65535."""
        measured = self.measured_pmtu(a, b)
        return measured if measured is not None else self.interface_mtu(a, b)

    def mtu_verified(self, a: str, b: str) -> bool | None:
        """True when data crossed a -> b in segments of the full path MTU (the kernel's path
        MTU equals both ends' MTU and bytes arrived); False when the path MTU came out
        smaller; None when nothing says (no TCP_INFO, or no test ran)."""
        want = self.interface_mtu(a, b)
        seen = self.measured_pmtu(a, b)
        if want is None or seen is None:
            return None
        return seen >= min(want, 65535)  # an IP packet (so the path MTU) ends at 65535

    def warnings(self) -> list[str]:
        out = []
        for node, link in self.links.items():
            if link.error:
                out.append(f"{node}: {link.error}")
        for m in self.measurements:
            what = f"{m.sender} → {m.receiver} ({m.streams} stream{'s' * (m.streams > 1)})"
            if m.error:
                out.append(f"{what}: {m.error}")
                continue
            frac = self.fraction(m)
            line = self.line_rate_mbps(m.sender, m.receiver)
            said = []
            if frac is not None and line and frac < WELL_UNDER and m.streams == self.streams:
                said.append(f"{fmt_gbps(m.bits_per_second)} Gbit/s is {fmt_percent(frac, 0)} "
                            f"of the {fmt_link(line)} line rate")
            if m.retransmits_much:
                rate = m.retransmit_rate or 0.0
                said.append(f"{fmt_percent(rate, 1)} of segments retransmitted "
                            f"({fmt_count(round(rate * (m.segments or 0)))}; saf warns over "
                            f"{fmt_percent(RETRANSMIT_WARN, 0)})")
            if said:
                out.append(f"{what}: {'; '.join(said)}")
        return out

    # -- JSON -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["schema"] = SCHEMA
        data["links"] = {k: asdict(v) for k, v in self.links.items()}
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "results") -> NetResult:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ResultError(f"{where}: not a saf speed-test result (schema {SCHEMA})")
        try:
            links = {str(k): NodeLink(**v) for k, v in (data.get("links") or {}).items()}
            measurements = [Measurement(**m) for m in data.get("measurements") or []]
            fields = {k: v for k, v in data.items()
                      if k not in ("schema", "links", "measurements")}
            result = cls(**fields, links=links, measurements=measurements)
        except TypeError as exc:
            raise ResultError(f"{where}: {exc}") from None
        if result.status not in RUN_STATUSES:
            raise ResultError(f"{where}: status {result.status!r} is not one of "
                              f"{', '.join(RUN_STATUSES)}")
        for m in result.measurements:
            for name in ("bits_per_second", "rtt_ms", "loaded_rtt_ms", "seconds"):
                value = getattr(m, name)
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, (int, float))
                                          or not math.isfinite(value) or value < 0):
                    raise ResultError(f"{where}: {m.sender} → {m.receiver}: bad {name} "
                                      f"{value!r}")
        return result


@dataclass(frozen=True)
class Change:
    sender: str
    receiver: str
    streams: int
    before: float | None  # Gbit/s
    after: float | None

    @property
    def ratio(self) -> float | None:
        if not self.before or self.after is None:
            return None
        return self.after / self.before


def compare(before: NetResult, after: NetResult) -> list[Change]:
    """Every (sender, receiver, streams) measured in either run, with both figures."""
    keys: list[tuple[str, str, int]] = []
    for m in before.measurements + after.measurements:
        key = (m.sender, m.receiver, m.streams)
        if key not in keys:
            keys.append(key)
    out = []
    for s, r, n in keys:
        a, b = before.find(s, r, n), after.find(s, r, n)
        out.append(Change(s, r, n, a.gbps if a else None, b.gbps if b else None))
    return out


GOOD = 0.9  # at or above 90 % of line rate a link is "good"


def grade(fraction: float | None) -> str | None:
    """good (>= 90 % of line rate), fair, poor (< WELL_UNDER), or None (line rate unknown):
    every face colours a link by this."""
    if fraction is None:
        return None
    return "good" if fraction >= GOOD else ("fair" if fraction >= WELL_UNDER else "poor")

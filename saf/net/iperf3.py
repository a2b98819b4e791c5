"""Reading `iperf3 -J` output (a client's view of one test) into saf's figures.

Throughput is what the receiver counted (`end.sum_received`, the honest figure; iperf3's
sender figure counts bytes still in buffers), retransmits come from `end.sum_sent` (the
sender's TCP_INFO), RTT from the streams' `mean_rtt` (or the intervals' `rtt`) in
microseconds, the path MTU from the intervals' `pmtu`, the data segments sent as
`end.sum_sent.bytes` / `start.tcp_mss_default` (iperf3 counts no segments; bytes over the MSS
is the fewest that could carry them). Figures iperf3 did not report (macOS
reports no retransmits; a reverse test's client has no RTT) stay None. What comes from a node
is untrusted: anything of the wrong type or range is an Iperf3Error naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from saf.errors import SafError
from saf.net.results import Measurement


class Iperf3Error(SafError):
    title = "iperf3 output"


@dataclass(frozen=True)
class Iperf3Figures:
    bits_per_second: float
    sent_bits_per_second: float | None
    seconds: float
    retransmits: int | None
    rtt_us: float | None
    pmtu: int | None
    segments: int | None
    streams: int
    host_cpu_percent: float | None
    remote_cpu_percent: float | None


def _num(value: Any, where: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Iperf3Error(f"iperf3 -J: {where} is not a number ({value!r})")
    if value < 0:
        raise Iperf3Error(f"iperf3 -J: {where} is negative ({value!r})")
    if integer and value != int(value):
        raise Iperf3Error(f"iperf3 -J: {where} is not a whole number ({value!r})")
    return value


def _opt(obj: dict[str, Any], key: str, where: str, *, integer: bool = False) -> float | None:
    value = obj.get(key)
    return None if value is None else _num(value, f"{where}.{key}", integer=integer)


def parse(text: str) -> Iperf3Figures:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Iperf3Error(f"iperf3 -J printed no JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Iperf3Error("iperf3 -J: not a JSON object")
    if isinstance(data.get("error"), str):
        raise Iperf3Error(f"iperf3: {data['error']}")
    end = data.get("end")
    if not isinstance(end, dict):
        raise Iperf3Error("iperf3 -J: no `end` section")
    received = end.get("sum_received")
    sent = end.get("sum_sent")
    if not isinstance(received, dict):
        raise Iperf3Error("iperf3 -J: no `end.sum_received`")
    bps = _num(received.get("bits_per_second"), "end.sum_received.bits_per_second")
    seconds = _num(received.get("seconds"), "end.sum_received.seconds")
    sent = sent if isinstance(sent, dict) else {}
    retransmits = _opt(sent, "retransmits", "end.sum_sent", integer=True)
    streams: list[Any] = end["streams"] if isinstance(end.get("streams"), list) else []
    rtts = []
    for i, stream in enumerate(streams):
        sender = stream.get("sender") if isinstance(stream, dict) else None
        if isinstance(sender, dict):
            rtt = _opt(sender, "mean_rtt", f"end.streams[{i}].sender")
            if rtt:
                rtts.append(rtt)
    pmtus = []
    intervals: list[Any] = data["intervals"] if isinstance(data.get("intervals"), list) else []
    for i, interval in enumerate(intervals):
        inner = interval.get("streams") if isinstance(interval, dict) else None
        for j, stream in enumerate(inner if isinstance(inner, list) else []):
            if not isinstance(stream, dict):
                continue
            where = f"intervals[{i}].streams[{j}]"
            pmtu = _opt(stream, "pmtu", where, integer=True)
            if pmtu:
                pmtus.append(int(pmtu))
            if not rtts and stream.get("rtt"):
                rtts.append(_num(stream["rtt"], where + ".rtt"))
    start: dict[str, Any] = data["start"] if isinstance(data.get("start"), dict) else {}
    mss = _opt(start, "tcp_mss_default", "start", integer=True)
    sent_bytes = _opt(sent, "bytes", "end.sum_sent", integer=True)
    segments = math.ceil(sent_bytes / mss) if mss and sent_bytes is not None else None
    cpu: dict[str, Any] = end.get("cpu_utilization_percent") or {}
    if not isinstance(cpu, dict):
        cpu = {}
    return Iperf3Figures(
        bits_per_second=bps,
        sent_bits_per_second=_opt(sent, "bits_per_second", "end.sum_sent"),
        seconds=seconds,
        retransmits=None if retransmits is None else int(retransmits),
        rtt_us=sum(rtts) / len(rtts) if rtts else None,
        pmtu=min(pmtus) if pmtus else None,
        segments=segments,
        streams=len(streams) or 1,
        host_cpu_percent=_opt(cpu, "host_total", "end.cpu_utilization_percent"),
        remote_cpu_percent=_opt(cpu, "remote_total", "end.cpu_utilization_percent"))


def fill(m: Measurement, fig: Iperf3Figures, *, reverse: bool) -> None:
    """A measurement's figures from iperf3's (`reverse`: the client received, so the CPU
    figures are the other way round)."""
    m.bits_per_second, m.seconds = fig.bits_per_second, fig.seconds
    m.retransmits, m.pmtu, m.segments = fig.retransmits, fig.pmtu, fig.segments
    m.loaded_rtt_ms = None if fig.rtt_us is None else fig.rtt_us / 1000
    if fig.host_cpu_percent is not None and fig.remote_cpu_percent is not None:
        mine = fig.host_cpu_percent * fig.seconds / 100
        theirs = fig.remote_cpu_percent * fig.seconds / 100
        m.sender_cpu_s, m.receiver_cpu_s = (theirs, mine) if reverse else (mine, theirs)

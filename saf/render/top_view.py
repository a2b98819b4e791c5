"""`saf top` as a Rich table: one row per node, built from the metrics store."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text

from saf.metrics.events import CONNECTING, LOST, STOPPED, UP
from saf.metrics.store import MetricsStore, NodeState
from saf.render.console import human_bytes

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], top: float = 100.0) -> str:
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            out.append(SPARK[min(len(SPARK) - 1, max(0, int(v / top * (len(SPARK) - 1) + 0.5)))])
    return "".join(out)


def rate(value: float | None) -> str:
    return "—" if value is None else f"{human_bytes(value)}/s"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{value:.0f}%"


def cluster_nic(sample: dict[str, Any]) -> dict[str, Any] | None:
    """The interface that carries the cluster's address, else the busiest non-loopback one."""
    nics = [n for n in sample.get("nics") or () if isinstance(n, dict)]
    for nic in nics:
        if nic.get("cluster"):
            return nic
    others = [n for n in nics if n.get("name") != "lo"]
    return max(others, key=lambda n: (n.get("rx_bps") or 0) + (n.get("tx_bps") or 0),
               default=None)


def gpu_text(sample: dict[str, Any]) -> Text:
    gpus = sample.get("gpus")
    if not gpus:
        reason = (sample.get("missing") or {}).get("gpus")
        return Text("none" if reason else "—", style="dim")
    parts = []
    for gpu in gpus:
        bits = [_pct(gpu.get("util"))]
        if gpu.get("mem_used") is not None and gpu.get("mem_total"):
            bits.append(f"{human_bytes(gpu['mem_used'])}/{human_bytes(gpu['mem_total'])}")
        if gpu.get("temp") is not None:
            bits.append(f"{gpu['temp']:.0f}°C")
        if gpu.get("power_w") is not None:
            bits.append(f"{gpu['power_w']:.0f} W")
        parts.append(" ".join(bits))
    return Text(" | ".join(parts))


def _state(state: NodeState, now: float) -> Text:
    if state.status == UP and not state.stale(now):
        return Text("up", style="green")
    if state.status == UP:
        return Text("stale", style="yellow")
    if state.status == LOST:
        retry = f", retry {state.retry_in:.1f}s" if state.retry_in else ""
        return Text(f"lost: {state.reason}{retry}", style="red")
    if state.status == STOPPED:
        return Text("stopped", style="dim")
    return Text("connecting" if state.status == CONNECTING else state.status, style="cyan")


def top_table(store: MetricsStore, names: list[str], now: float | None = None,
              spark: int = 20) -> Table:
    now = time.time() if now is None else now
    table = Table(box=None, header_style="bold")
    for column, right in (("NODE", False), ("STATE", False), ("CPU", True), ("HISTORY", False),
                          ("LOAD", True), ("MEM", True), ("SWAP", True), ("GPU", False),
                          ("NIC", False), ("RX", True), ("TX", True), ("DISK R/W", True),
                          ("NUMA", True)):
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for name in names:
        try:
            state = store.node(name)
        except KeyError:
            continue
        sample = state.sample or {}
        dim = "dim" if state.stale(now) else ""
        cpu = sample.get("cpu") or {}
        mem = sample.get("memory") or {}
        load = cpu.get("load")
        nic = cluster_nic(sample) or {}
        disks = sample.get("disks") or []
        read = sum(d.get("read_bps") or 0 for d in disks) if disks else None
        write = sum(d.get("write_bps") or 0 for d in disks) if disks else None
        numa = sample.get("numa")
        table.add_row(
            Text(name, style="bold"), _state(state, now),
            Text(_pct(cpu.get("percent")), style=dim),
            Text(sparkline(store.values(name, "cpu.percent", last=spark)), style="cyan"),
            Text(f"{load[0]:.2f}" if load else "—", style=dim),
            Text(f"{_pct(mem.get('percent'))} of {human_bytes(mem.get('total'))}"
                 if mem else "—", style=dim),
            Text(_pct(mem.get("swap_percent")) if mem.get("swap_total") else "—", style=dim),
            gpu_text(sample) if sample else Text("—"),
            Text(str(nic.get("name", "—")) + (" ★" if nic.get("cluster") else ""), style=dim),
            Text(rate(nic.get("rx_bps")), style=dim), Text(rate(nic.get("tx_bps")), style=dim),
            Text(f"{rate(read)} / {rate(write)}" if disks else "—", style=dim),
            Text(str(len(numa)) if numa else "—", style=dim),
        )
    return table


def problems(store: MetricsStore, names: list[str]) -> list[Text]:
    """Lines under the table: why nodes are lost, and bad frames counted."""
    lines = []
    for name in names:
        try:
            state = store.node(name)
        except KeyError:
            continue
        if state.status == LOST and state.message:
            lines.append(Text(f"{name}: {state.message}", style="red"))
        if state.bad_frames:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(state.bad_frames.items()))
            lines.append(Text(f"{name}: bad frames: {counts}", style="yellow"))
    return lines

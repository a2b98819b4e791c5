"""`saf top` as a Rich table: one row per node, read through the core's view model (the same
statuses, cluster interface and number formats as the cockpit)."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text

from saf.format import MISSING, fmt_byte_rate, fmt_bytes, fmt_num, fmt_rate, fmt_used, sparkline
from saf.metrics.store import MetricsStore
from saf.metrics.view import NodeStatus, NodeView, lost_words, node_view
from saf.render.columns import Column, fitted_table, left_out_words

STATE_STYLES = {NodeStatus.UP: "green", NodeStatus.STALE: "yellow", NodeStatus.LOST: "red",
                NodeStatus.STOPPED: "dim", NodeStatus.CONNECTING: "cyan"}


def gpu_text(view: NodeView) -> Text:
    if not view.gpus:
        return Text("none" if "gpus" in view.missing else MISSING, style="dim")
    parts = []
    for gpu in view.gpus:
        bits = [fmt_num(gpu.util, "%")]
        if gpu.mem_used is not None and gpu.mem_total:
            bits.append(fmt_used(gpu.mem_used, gpu.mem_total))
        if gpu.temp is not None:
            bits.append(f"{gpu.temp:.0f}°C")
        if gpu.power is not None:
            bits.append(f"{gpu.power:.0f} W")
        parts.append(" ".join(bits))
    return Text(" | ".join(parts))


def state_text(view: NodeView) -> Text:
    word = view.status.value
    if view.status is NodeStatus.LOST:
        word = f"lost: {lost_words(view)}"
    return Text(word, style=STATE_STYLES[view.status])


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# A narrow terminal drops the highest priority numbers first (RX and TX together); NODE and
# STATE always stay.
COLUMNS = (Column("NODE", "left"), Column("STATE", "left"), Column("CPU", priority=1),
           Column("HISTORY", "left", 8), Column("LOAD", priority=6), Column("MEM", priority=2),
           Column("SWAP", priority=7), Column("GPU", "left", 3), Column("NIC", "left", 9),
           Column("RX b/s", priority=4), Column("TX b/s", priority=4),
           Column("DISK R/W", priority=10), Column("NUMA", priority=11))
STATE_WIDTH = 30  # a longer state ends in "…"; the whole message goes under the table


def top_table(store: MetricsStore, names: list[str], now: float | None = None,
              spark: int = 20, width: int | None = None) -> Table:
    """The nodes' table; with `width`, columns are dropped by priority until it fits."""
    now = time.time() if now is None else now
    rows = []
    for name in names:
        try:
            view = node_view(store, name, now)
        except KeyError:
            continue
        dim = "" if view.live else "dim"
        nic = view.cluster_nic
        disks = view.disks
        state = state_text(view)
        state.truncate(STATE_WIDTH, overflow="ellipsis")
        rows.append([
            Text(name, style="bold"), state,
            Text(fmt_num(view.cpu, "%"), style=dim),
            Text(sparkline(store.values(name, "cpu.percent", last=spark), spark, top=100.0),
                 style="cyan"),
            Text(fmt_num(view.load[0], digits=2) if view.load else MISSING, style=dim),
            Text(f"{fmt_num(view.mem_pct, '%')} of {fmt_bytes(view.mem_total)}"
                 if view.mem_total else MISSING, style=dim),
            Text(fmt_num(view.swap_pct, "%") if view.swap_total else MISSING, style=dim),
            gpu_text(view) if view.has_sample else Text(MISSING),
            Text(nic.name + (" ★" if nic.cluster else "") if nic else MISSING, style=dim),
            Text(fmt_rate(nic.rx if nic else None), style=dim),
            Text(fmt_rate(nic.tx if nic else None), style=dim),
            Text(f"{fmt_byte_rate(_total([d.read for d in disks]))} / "
                 f"{fmt_byte_rate(_total([d.write for d in disks]))}" if disks else MISSING,
                 style=dim),
            Text(str(len(view.numa)) if view.numa else MISSING, style=dim),
        ])
    table, left_out = fitted_table(COLUMNS, rows, width, header_style="bold")
    if left_out:
        table.caption = f"{left_out_words(left_out)}: a wider terminal shows them"
        table.caption_justify = "left"
    return table


def problems(store: MetricsStore, names: list[str]) -> list[Text]:
    """Lines under the table: why nodes are lost, and bad frames counted."""
    lines = []
    for name in names:
        try:
            state = store.node(name)
        except KeyError:
            continue
        message = state.failure_message or (
            state.message if state.status == NodeStatus.LOST else "")
        if message and state.status != NodeStatus.UP:
            lines.append(Text(f"{name}: {message}", style="red"))
        if state.bad_frames:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(state.bad_frames.items()))
            lines.append(Text(f"{name}: bad frames: {counts}", style="yellow"))
    return lines

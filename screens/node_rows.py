"""What a row of the dashboard's node table says: the columns, which give way by priority when
the terminal is narrow (OS and power go first; node, state, CPU and memory stay), and each
cell's text and style name for a node's view (a cell too long for its column ends in "…").
The table (node_table.py) turns them into a line on the screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rich.cells import cell_len

from saf.format import MISSING, fmt_num, fmt_rate, fmt_speed, fmt_used, sparkline
from saf.inventory.model import Node
from saf.metrics.thresholds import Level, Thresholds, level
from saf.metrics.view import NodeStatus, NodeView
from saf.render.columns import choose

HISTORY = 120  # samples fed to a row's sparklines (downsampled to the cell width)


@dataclass(frozen=True)
class NodeTableColumn:
    """A column of the dashboard's node table: a fixed width of cells, the cell it shows by
    `key`. Not saf.render.columns.Column, whose width is measured from its cells: this table
    draws its own lines (node_table.py) and must know its widths before any row is made."""

    key: str
    title: str
    width: int
    priority: int  # lower stays longer when the terminal is narrow
    align: str = "right"


COLUMNS = (
    NodeTableColumn("node", "NODE", 10, 0, "left"),
    NodeTableColumn("state", "STATE", 10, 1, "left"),
    NodeTableColumn("role", "ROLE", 6, 9, "left"),
    NodeTableColumn("os", "OS", 6, 12, "left"),
    NodeTableColumn("cpu", "CPU", 5, 2),
    NodeTableColumn("cpu_spark", "CPU HISTORY", 12, 7, "left"),
    NodeTableColumn("mem", "MEMORY", 10, 3),
    NodeTableColumn("gpu", "GPU", 5, 4),
    NodeTableColumn("gpu_mem", "GPU MEM", 11, 9),
    NodeTableColumn("temp", "TEMP", 5, 5),
    NodeTableColumn("power", "POWER", 6, 11),
    NodeTableColumn("net_in", "NET IN", 7, 6),
    NodeTableColumn("net_out", "NET OUT", 7, 6),
    NodeTableColumn("net_spark", "NET HISTORY", 11, 10, "left"),
    NodeTableColumn("link", "LINK MTU b/s", 13, 8, "left"),  # its cell: name, MTU, speed
)

# The STATE cell: what a person reads for each status (a lost node shows its reason).
STATE_CELLS: dict[NodeStatus, tuple[str, str]] = {
    NodeStatus.UP: ("● up", "good"),
    NodeStatus.CONNECTING: ("◌ connecting", "dim"),
    NodeStatus.STALE: ("◌ stale", "warn"),
    NodeStatus.STOPPED: ("■ stopped", "dim"),
}
_LEVEL_STYLE = {Level.OK: "ok", Level.WARN: "warn", Level.ALERT: "alert"}


def fit_columns(width: int, name_width: int) -> list[NodeTableColumn]:
    """The columns that fit `width`, in display order, dropping by priority (NET IN and NET
    OUT together). Each cell is followed by a space, the last one too. The table does not
    `fill` spare room with less wanted columns: at the widths people know (120 and 80
    columns) it shows what it always showed."""
    cols = [replace(c, width=name_width) if c.key == "node" else c for c in COLUMNS]
    keep = choose([c.priority for c in cols], [c.width for c in cols], width - 1, gap=1,
                  fill=False)
    return [cols[i] for i in keep]


def clip(text: str, width: int) -> str:
    """`text` in `width` cells: cut with "…" rather than mid-word without a sign."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


def row_cells(view: NodeView, node: Node | None, th: Thresholds) -> dict[str, tuple[str, str]]:
    """column key -> (text, style name) for one node's row (sparklines are drawn apart)."""
    gone = not view.live
    dim = "dim" if gone else "ok"

    def levelled(value: float | None, warn: float, alert: float) -> str:
        return dim if gone else _LEVEL_STYLE[level(value, warn, alert)]

    cells: dict[str, tuple[str, str]] = {
        "node": (view.name, "title" if not gone else dim),
        "state": STATE_CELLS.get(view.status, (f"✖ {view.reason or 'lost'}", "alert")),
        "role": (",".join(node.roles) if node and node.roles else MISSING, dim),
        "os": (view.os, dim),
        "cpu": (fmt_num(view.cpu, "%"), levelled(view.cpu, th.cpu_warn, th.cpu_alert)),
        "mem": (fmt_used(view.mem_used, view.mem_total),
                levelled(view.mem_pct, th.mem_warn, th.mem_alert)),
    }
    if view.gpus:
        hot = view.hottest_gpu
        used, total = view.gpu_mem()
        temp = hot.temp if hot else None
        cells["gpu"] = (fmt_num(view.gpu_util(), "%"), dim)
        cells["gpu_mem"] = (fmt_used(used, total) if total else "shared", dim)
        cells["temp"] = (fmt_num(temp, "°"), levelled(temp, th.gpu_temp_warn,
                                                       th.gpu_temp_alert))
        cells["power"] = (fmt_num(view.gpu_power(), "W"), dim)
    else:
        for key in ("gpu", "gpu_mem", "temp", "power"):
            cells[key] = ("·", "dim")
    cells["net_in"] = (fmt_rate(view.net_in), dim)
    cells["net_out"] = (fmt_rate(view.net_out), dim)
    nic = view.cluster_nic
    if nic is not None:
        # Jumbo frames are what a 10G+ cluster link wants: a small MTU there is worth a look.
        bad = nic.mtu is not None and nic.mtu < 9000 and (nic.speed or 0) >= 10000
        cells["link"] = (f"{nic.name} {fmt_num(nic.mtu)} {fmt_speed(nic.speed)}",
                         "warn" if bad and not gone else dim)
    else:
        cells["link"] = (MISSING, "dim")
    return cells


History = Callable[[str, str, int], Sequence[float | None]]  # (node, metric, last) -> values


def row_parts(view: NodeView, node: Node | None, th: Thresholds, columns: Sequence[NodeTableColumn],
              values: History) -> tuple[list[tuple[str, str]], bool]:
    """The row's text as (text, style name) parts, each cell padded to its column and
    followed by a space, neighbours of one style joined (every line filter and the
    compositor work per segment); and whether every character is one cell wide."""
    name = view.name
    cells = row_cells(view, node, th)
    parts: list[tuple[str, str]] = []
    narrow = True
    for col in columns:
        if col.key == "cpu_spark":
            text = sparkline(values(name, "cpu.percent", HISTORY), col.width, top=100.0)
            style = "spark"
        elif col.key == "net_spark":
            nic = view.cluster_nic
            series = values(name, f"nic.{nic.name}.rx_bps", HISTORY) if nic else []
            text, style = sparkline(series, col.width), "spark2"
        else:
            text, style = cells[col.key]
            width = col.width
            if len(text) > width:
                text = clip(text, width)
            text = text.ljust(width) if col.align == "left" else text.rjust(width)
            if narrow and not text.isascii():
                narrow = len(text) == cell_len(text)
        if parts and parts[-1][1] == style:
            parts[-1] = (parts[-1][0] + text + " ", style)
        else:
            parts.append((text + " ", style))
    return parts, narrow

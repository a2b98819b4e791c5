"""One node in detail: every core, memory and swap, NUMA nodes, each GPU with its processes,
each network interface with graphs, disks, and what the node cannot measure (and why)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static

from saf.metrics.format import (MISSING, bar, fmt_byte_rate, fmt_bytes, fmt_count, fmt_num,
                                fmt_rate, fmt_speed)
from saf.metrics.thresholds import Level, level
from saf.metrics.view import Gpu, Nic, NodeStatus, NodeView, lost_words
from saf.render.columns import Column, fitted_table
from saf.screens.footer import FittingFooter
from saf.screens.base import SafScreen, cockpit_of
from saf.screens.confirm import ConfirmScreen
from saf.screens.messages import NodesChanged
from saf.screens.widgets import Graph, StatusLine, palette

HISTORY = 300  # samples offered to a graph (it keeps min/max per cell of its width)


def _level_style(app: Any, lvl: Level) -> str:
    v = palette(app)
    return {Level.WARN: f"bold {v['warning']}", Level.ALERT: f"bold {v['error']}"}.get(lvl, "")


class Part(Widget):
    """A piece of the node screen drawn from the node's view at its own width."""

    DEFAULT_CSS = "Part { height: auto; }"

    def __init__(self, node: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.node = node

    @property
    def view(self) -> NodeView:
        return cockpit_of(self).view(self.node)


class Title(Part):
    def render(self) -> Text:
        app = cockpit_of(self)
        v = palette(app)
        view = self.view
        info = app.node_info(self.node)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {view.name} ", style=f"bold reverse {v['primary']}")
        colour = {NodeStatus.UP: v["success"], NodeStatus.LOST: v["error"],
                  NodeStatus.STALE: v["warning"]}.get(view.status, v["foreground"])
        lost = view.status is NodeStatus.LOST
        # The words every face uses (saf.metrics.view): "up", "lost: refused · retrying".
        state = f"lost: {lost_words(view)}" if lost else view.status.value
        text.append(f"  {state}", style=f"bold {colour}")
        if lost and view.message:
            text.append(f" ({view.message})", style=colour)
        bits = [view.os + (f"/{view.arch}" if view.arch else "")]
        if info is not None:
            bits.append(info.address)
            if info.roles:
                bits.append(",".join(info.roles))
        if view.age is not None and not view.live:
            bits.append(f"last sample {view.age:.0f}s ago")
        text.append("   " + "  ·  ".join(b for b in bits if b), style="dim")
        return text


class Cores(Part):
    """A bar per core, in as many columns as fit."""

    CELL = 18  # "  0 " + a 9-cell bar + "  59%", then a space before the next column

    @classmethod
    def columns_in(cls, width: int) -> int:
        """How many cells fit in `width`: the last needs no space after it."""
        return max(1, (width + 1) // (cls.CELL + 1))

    def _columns(self) -> int:
        return self.columns_in(self.size.width or 80)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        cores = len(self.view.cores)
        cols = self.columns_in(width)
        return max(1, -(-cores // cols)) + 1

    def render(self) -> Text:
        app = cockpit_of(self)
        view = self.view
        th = app.ctx.settings.thresholds
        cols = self._columns()
        rows = -(-len(view.cores) // cols) if view.cores else 0
        text = Text(no_wrap=True)
        load = " ".join(fmt_num(x, digits=2) for x in view.load) or MISSING
        text.append(f"total {fmt_num(view.cpu, '%')}", style="bold")
        text.append(f"   {int(view.cpu_count or 0)} cores   load {load}", style="dim")
        for r in range(rows):
            text.append("\n")
            for c in range(cols):
                i = c * rows + r  # column-major: core numbers run down, like htop
                if i >= len(view.cores):
                    break
                value = view.cores[i]
                text.append(f"{i:>3} ", style="dim")
                text.append(bar(None if value is None else value / 100, self.CELL - 9),
                            style=_level_style(app, level(value, th.cpu_warn, th.cpu_alert))
                            or palette(app)["primary"])
                text.append(f"{fmt_num(value, '%'):>5} ")
        return text


class Memory(Part):
    def render(self) -> Text:
        app = cockpit_of(self)
        view = self.view
        th = app.ctx.settings.thresholds
        width = max(10, min(50, (self.size.width or 60) - 28))
        text = Text(no_wrap=True)
        pct = view.mem_pct
        text.append("memory ", style="bold")
        text.append(bar(None if pct is None else pct / 100, width),
                    style=_level_style(app, level(pct, th.mem_warn, th.mem_alert))
                    or palette(app)["primary"])
        text.append(f" {fmt_bytes(view.mem_used)}/{fmt_bytes(view.mem_total)}")
        text.append("\nswap   ", style="bold")
        if view.swap_total:
            frac = (view.swap_used or 0) / view.swap_total
            style = palette(app)["warning"] if view.swap_used else ""
            text.append(bar(frac, width), style=style or palette(app)["primary"])
            text.append(f" {fmt_bytes(view.swap_used)}/{fmt_bytes(view.swap_total)}")
        else:
            text.append("none configured", style="dim")
        return text


# The NUMA table's columns; a narrow screen leaves out foreign/s first, then the CPU lists,
# rather than squeezing miss/s and miss % into two cells that both read "miss…".
NUMA_COLUMNS = (Column("node"), Column("CPUs", "left", 3), Column("memory used", "left", 2),
                Column("hit/s", priority=1), Column("miss/s"), Column("foreign/s", priority=4),
                Column("miss %"))


class NumaTable(Part):
    def render(self) -> Table:
        rows = []
        for n in self.view.numa:
            frac = (n.mem_used / n.mem_total) if n.mem_used is not None and n.mem_total else None
            miss_pct = (100 * n.miss / (n.hit + n.miss)) if n.hit and n.miss is not None else None
            rows.append([Text(str(n.node)), Text(n.cpus),
                         Text(f"{bar(frac, 10)} {fmt_bytes(n.mem_used, digits=0)}/"
                              f"{fmt_bytes(n.mem_total, digits=0)}"),
                         Text(fmt_count(n.hit)), Text(fmt_count(n.miss)),
                         Text(fmt_count(n.foreign)), Text(fmt_num(miss_pct, "%", 2))])
        table, _ = fitted_table(NUMA_COLUMNS, rows, self.size.width or None, padding=2,
                                pad_edge=True, header_style="bold")
        return table


class GpuStats(Part):
    def __init__(self, node: str, index: int, **kw: Any) -> None:
        super().__init__(node, **kw)
        self.index = index

    def gpu(self) -> Gpu | None:
        return next((g for g in self.view.gpus if g.index == self.index), None)

    def render(self) -> Text:
        app = cockpit_of(self)
        th = app.ctx.settings.thresholds
        g = self.gpu()
        text = Text(no_wrap=True, overflow="ellipsis")
        if g is None:
            return Text("gone", style="dim")
        width = max(8, min(30, (self.size.width or 60) - 50))
        primary = palette(app)["primary"]
        text.append("use  ", style="bold")
        text.append(bar(None if g.util is None else g.util / 100, width), style=primary)
        text.append(f" {fmt_num(g.util, '%'):>4}   ")
        text.append("temp ", style="bold")
        text.append(fmt_num(g.temp, "°C"),
                    style=_level_style(app, level(g.temp, th.gpu_temp_warn, th.gpu_temp_alert)))
        text.append("   power ", style="bold")
        text.append(fmt_num(g.power, " W", 1))
        if g.power_limit:
            text.append(f" / {g.power_limit:.0f} W", style="dim")
        text.append("\nmem  ", style="bold")
        pct = g.mem_pct
        if g.mem_total and not g.unified:
            text.append(bar(None if pct is None else pct / 100, width),
                        style=_level_style(app, level(pct, th.gpu_mem_warn, 101)) or primary)
            text.append(f" {fmt_bytes(g.mem_used)}/{fmt_bytes(g.mem_total)}")
        elif g.unified:
            text.append("unified with system memory", style="dim")
        else:
            text.append("not measured", style="dim")
        text.append("   clock ", style="bold")
        text.append(fmt_num(g.clock_mhz, " MHz"))
        text.append("   fan ", style="bold")
        text.append(fmt_num(g.fan, "%"))
        # Why a figure is absent (e.g. an Intel GPU without intel_gpu_top), once per reason.
        shown = {"util": "use", "mem_used": "mem", "mem_total": "mem", "power_w": "power",
                 "temp": "temp"}
        reasons: dict[str, list[str]] = {}
        for key, why in g.missing.items():
            if key in shown and shown[key] not in reasons.get(why, []):
                reasons.setdefault(why, []).append(shown[key])
        for why, what in reasons.items():
            text.append(f"\n{', '.join(what)}: ", style="bold dim")
            text.append(why, style="dim")
        return text


class NicLine(Part):
    def __init__(self, node: str, name: str, **kw: Any) -> None:
        super().__init__(node, **kw)
        self.nic_name = name

    def nic(self) -> Nic | None:
        return next((n for n in self.view.nics if n.name == self.nic_name), None)

    def render(self) -> Text:
        app = cockpit_of(self)
        v = palette(app)
        n = self.nic()
        text = Text(no_wrap=True, overflow="ellipsis")
        if n is None:
            return Text(f"{self.nic_name}: gone", style="dim")
        text.append(f"{n.name:<8}", style="bold")
        if n.up is False:
            text.append(" down ", style=f"bold {v['error']}")
        if n.cluster:
            text.append(" cluster ", style=f"reverse {v['primary']}")
        text.append(f" in {fmt_rate(n.rx):>6}  out {fmt_rate(n.tx):>6}")
        text.append(f"   MTU {fmt_num(n.mtu)}  {fmt_speed(n.speed)}", style="dim")
        err_style = f"bold {v['warning']}" if (n.errors or n.drops) else "dim"
        text.append(f"   errors {n.errors:.0f}  drops {n.drops:.0f}", style=err_style)
        if n.error_rate or n.drop_rate:
            text.append(f" (+{n.error_rate + n.drop_rate:.0f}/s)", style=err_style)
        if n.addresses:
            text.append("   " + " ".join(n.addresses), style="dim")
        return text


class DiskTable(Part):
    def render(self) -> Text:
        text = Text(no_wrap=True)
        for i, d in enumerate(self.view.disks):
            if i:
                text.append("\n")
            text.append(f"{d.name:<10}", style="bold")
            text.append(f" read {fmt_byte_rate(d.read):>9}   write {fmt_byte_rate(d.write):>9}")
        if not self.view.disks:
            text.append("no disks reported", style="dim")
        return text


class Missing(Part):
    def render(self) -> Text:
        view = self.view
        text = Text()
        reasons = dict(view.missing)
        for name, info in view.collectors.items():
            if isinstance(info, dict) and info.get("ok") is False and name not in reasons:
                reasons[name] = str(info.get("reason") or "unavailable")
        for i, (name, why) in enumerate(sorted(reasons.items())):
            text.append(("\n" if i else "") + f"{name}: ", style="bold")
            text.append(why)
        return text


def _section(title: str, *children: Widget, ident: str = "") -> Vertical:
    box = Vertical(*children, classes="panel section", id=ident or None)
    box.border_title = title
    return box


class NodeScreen(SafScreen[None]):
    BINDING_GROUP_TITLE = "Node"
    BINDINGS = [
        Binding("escape", "back", "Back", id="node.back", tooltip="Back to the dashboard"),
        Binding("s", "signal", "Signal process", id="node.signal",
                tooltip="Send TERM (or KILL, after a second confirm) to the GPU process "
                        "selected in a process list"),
        Binding("tab", "app.focus_next", "Next list", id="node.next", show=False,
                tooltip="Move to the next process list"),
    ]

    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node
        self._shape: tuple[Any, ...] | None = None

    @property
    def selected_node(self) -> str:
        return self.node

    def compose(self) -> ComposeResult:
        yield Title(self.node, id="node-title", classes="screen-header")
        yield VerticalScroll(id="node-body")
        yield StatusLine()
        yield FittingFooter()

    def on_mount(self) -> None:
        self.redraw()

    def on_screen_resume(self) -> None:
        self.redraw()

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- building ---------------------------------------------------------------------------
    def _shape_of(self, view: NodeView) -> tuple[Any, ...]:
        return (len(view.cores) > 0, tuple(n.node for n in view.numa),
                tuple(g.index for g in view.gpus), tuple(n.name for n in view.nics),
                tuple(d.name for d in view.disks), bool(view.missing or view.collectors))

    def _build(self, view: NodeView) -> list[Widget]:
        node = self.node
        parts: list[Widget] = [
            _section("CPU", Cores(node, classes="cores"),
                     Graph("cpu.percent", top=100.0)),
            _section("Memory", Memory(node)),
        ]
        if view.numa:
            count = len(view.numa)
            parts.append(_section(f"NUMA · {count} node{'s' if count != 1 else ''}",
                                  NumaTable(node)))
        for g in view.gpus:
            table: DataTable[Any] = DataTable(id=f"procs-{g.index}", cursor_type="row",
                                              zebra_stripes=False)
            table.add_columns("PID", "PROCESS", "GPU MEMORY")
            kids: list[Widget] = [GpuStats(node, g.index),
                                  Graph(f"gpu.{g.index}.util", top=100.0)]
            if g.processes or view.os == "linux":
                kids.append(table)
            parts.append(_section(f"GPU {g.index} · {g.name}", *kids, ident=f"gpu-{g.index}"))
        nic_parts: list[Widget] = []
        for n in view.nics:
            if n.loopback:
                continue
            nic_parts += [NicLine(node, n.name),
                          Horizontal(Vertical(Static("in", classes="caption"),
                                              Graph(f"nic.{n.name}.rx_bps"), classes="half"),
                                     Vertical(Static("out", classes="caption"),
                                              Graph(f"nic.{n.name}.tx_bps",
                                                    colour_var="secondary"),
                                              classes="half"), classes="row")]
        if nic_parts:
            parts.append(_section("Network interfaces", *nic_parts))
        parts.append(_section("Disks", DiskTable(node)))
        if view.missing or any(isinstance(i, dict) and i.get("ok") is False
                               for i in view.collectors.values()):
            parts.append(_section("Not measured on this node", Missing(node, classes="missing")))
        return parts

    def redraw(self) -> None:
        app = self.cockpit
        if self.node not in app.node_names:
            return
        view = app.view(self.node)
        shape = self._shape_of(view)
        body = self.query_one("#node-body", VerticalScroll)
        if shape != self._shape:
            self._shape = shape
            body.remove_children()
            body.mount_all(self._build(view))
            self.call_after_refresh(self._fill, view)
        else:
            self._fill(view)

    def _fill(self, view: NodeView) -> None:
        """Push the newest figures into the graphs and tables, and repaint the parts."""
        app = self.cockpit
        store = app.store
        self.query_one(Title).refresh()
        for part in self.query(Part):
            part.refresh(layout=isinstance(part, Cores))
        for graph in self.query(Graph):
            graph.values = tuple(store.values(self.node, graph.metric, last=HISTORY))
        for g in view.gpus:
            for table in self.query(f"#procs-{g.index}").results(DataTable):
                rows = [(str(p.pid), p.name, fmt_bytes(p.mem)) for p in g.processes]
                current = [tuple(str(c) for c in table.get_row_at(i))
                           for i in range(table.row_count)]
                if rows != current:
                    cursor = table.cursor_row
                    table.clear()
                    for row in rows:
                        table.add_row(*row, key=row[0])
                    if rows:
                        table.move_cursor(row=min(cursor, len(rows) - 1))
        for section in self.query(".section"):
            if section.id and section.id.startswith("gpu-"):
                g = next((x for x in view.gpus if f"gpu-{x.index}" == section.id), None)
                hot = (g is not None and g.temp is not None
                       and g.temp >= app.ctx.settings.thresholds.gpu_temp_alert)
                section.set_class(hot, "alert")
        self.query_one(StatusLine).refresh()

    # -- updates from the app ---------------------------------------------------------------
    def on_nodes_changed(self, message: NodesChanged) -> None:
        if self.node in message.nodes and self.is_mounted:
            self.redraw()

    # -- signalling a GPU process -----------------------------------------------------------
    def _selected_process(self) -> tuple[int, str, int] | None:
        view = self.cockpit.view(self.node)
        focused = self.focused
        tables = [focused] if isinstance(focused, DataTable) else list(self.query(DataTable))
        for table in tables:
            if not isinstance(table, DataTable) or not (table.id or "").startswith("procs-"):
                continue
            if table.row_count == 0:
                continue
            index = int(table.id.removeprefix("procs-"))  # type: ignore[union-attr]
            pid = int(str(table.get_row_at(table.cursor_row)[0]))
            gpu = next((g for g in view.gpus if g.index == index), None)
            name = next((p.name for p in (gpu.processes if gpu else ()) if p.pid == pid), "?")
            return pid, name, index
        return None

    def action_signal(self) -> None:
        app = self.cockpit
        if app.refuse_if_readonly("Signalling a process"):
            return
        if app.ctx.actions is None:
            app.notify("Signalling needs a live cluster; this is a replay.",
                       title="Not available", severity="warning")
            return
        chosen = self._selected_process()
        if chosen is None:
            app.notify("No GPU process to signal on this node.", severity="warning")
            return
        pid, name, index = chosen

        def first(answer: str | None) -> None:
            if answer == "term":
                self._send(pid, "TERM")
            elif answer == "kill":
                app.push_screen(ConfirmScreen(
                    "Really KILL?",
                    f"KILL cannot be caught: {name} dies at once, without saving or freeing "
                    "anything itself. The GPU memory is released by the driver.",
                    f"{self.node}$ kill -KILL {pid}",
                    [("kill", "Send KILL", "error")], danger=True),
                    lambda a: self._send(pid, "KILL") if a == "kill" else None)

        app.push_screen(ConfirmScreen(
            "Signal a GPU process",
            f"Process {pid} ({name}) on GPU {index} of {self.node}. TERM asks it to stop "
            "cleanly; KILL ends it at once (asks again).",
            f"{self.node}$ kill -TERM {pid}",
            [("term", "Send TERM", "warning"), ("kill", "KILL…", "error")]), first)

    @work(group="signal")
    async def _send(self, pid: int, signal: str) -> None:
        app = self.cockpit
        actions = app.ctx.actions
        assert actions is not None  # action_signal asks only when there are actions
        try:
            result = await actions.signal(self.node, pid, signal)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            app.notify(str(exc), title=f"{signal} failed", severity="error")
            return
        app.notify(result, title=f"{signal} sent to {pid}")

"""The node screen's parts: each draws one piece of a node (its title, cores, memory, NUMA
nodes, a GPU, an interface, disks, what it cannot measure) from the node's view, at its own
width. The screen (node.py) lays them out and redraws them as samples come."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from saf.screens.base import cockpit_of
from saf.screens.widgets import palette
from textual.widget import Widget

from saf.format import (
    MISSING,
    bar,
    fmt_byte_rate,
    fmt_bytes,
    fmt_count,
    fmt_num,
    fmt_rate,
    fmt_speed,
    fmt_used,
)
from saf.inventory.jumps import route
from saf.metrics.thresholds import Level, level
from saf.metrics.view import Gpu, Nic, NodeStatus, NodeView, lost_words
from saf.render.columns import Column, choose, fitted_line, fitted_table


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
    """The node's name and state, then what it is (its address and the jump hosts saf
    reaches it through): one line, leaving out the jump hosts, then the address, then the OS,
    then the roles rather than wrap (a tablet held upright)."""

    def render(self) -> Text:
        app = cockpit_of(self)
        v = palette(app)
        view = self.view
        info = app.node_info(self.node)
        colour = {NodeStatus.UP: v["success"], NodeStatus.LOST: v["error"],
                  NodeStatus.STALE: v["warning"]}.get(view.status, v["foreground"])
        lost = view.status is NodeStatus.LOST
        # The words every face uses (saf.metrics.view): "up", "lost: refused · retrying".
        state = f"lost: {lost_words(view)}" if lost else view.status.value
        parts: list[tuple[Text, int]] = [
            (Text(f" {view.name} ", style=f"bold reverse {v['primary']}"), 0),
            (Text(f"  {state}", style=f"bold {colour}"), 0)]
        if lost and view.message:
            parts.append((Text(f" ({view.message})", style=colour), 2))
        bits = [(view.os + (f"/{view.arch}" if view.arch else ""), 4)]
        if info is not None:
            bits.append((info.address, 5))
            if route(info):  # left out before the address on a narrow screen
                bits.append((f"via {route(info)}", 6))
            if info.roles:
                bits.append((",".join(info.roles), 3))
        if view.age is not None and not view.live:
            bits.append((f"last sample {view.age:.0f}s ago", 1))
        bits = [(bit, priority) for bit, priority in bits if bit]
        width = self.size.width or None
        # Which bits fit, each counted with the "  ·  " before it; the first shown then
        # stands after "   " (shorter), so the line still fits.
        head = fitted_line(parts, width)
        room = None if width is None else width - head.cell_len
        shown = range(len(bits)) if room is None else choose(
            [p for _, p in bits], [cell_len(b) + 5 for b, _ in bits], room, 0)
        for n, i in enumerate(shown):
            head.append(("   " if n == 0 else "  ·  ") + bits[i][0], style="dim")
        return head


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
        th = app.setup.settings.thresholds
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
        th = app.setup.settings.thresholds
        width = max(10, min(50, (self.size.width or 60) - 28))
        text = Text(no_wrap=True)
        pct = view.mem_pct
        text.append("memory ", style="bold")
        text.append(bar(None if pct is None else pct / 100, width),
                    style=_level_style(app, level(pct, th.mem_warn, th.mem_alert))
                    or palette(app)["primary"])
        text.append(f" {fmt_used(view.mem_used, view.mem_total)}")
        text.append("\nswap   ", style="bold")
        if view.swap_total:
            frac = (view.swap_used or 0) / view.swap_total
            style = palette(app)["warning"] if view.swap_used else ""
            text.append(bar(frac, width), style=style or palette(app)["primary"])
            text.append(f" {fmt_used(view.swap_used, view.swap_total)}")
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
                         Text(f"{bar(frac, 10)} {fmt_used(n.mem_used, n.mem_total)}"),
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
        th = app.setup.settings.thresholds
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
            text.append(f" {fmt_used(g.mem_used, g.mem_total)}")
        elif g.unified:
            text.append("unified with system memory", style="dim")
        else:
            text.append("not measured", style="dim")
        if g.gtt_total:  # AMD: the system RAM it maps, apart (an APU's VRAM is a carve-out)
            text.append("   gtt ", style="bold")
            text.append(fmt_used(g.gtt_used, g.gtt_total))
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


class FilesystemTable(Part):
    """Each filesystem: mount point, type, used of size, a bar, and what is free (amber, then
    red, under cockpit.toml's disk_free_warn / disk_free_alert)."""

    def render(self) -> Text:
        app = cockpit_of(self)
        th = app.setup.settings.thresholds
        text = Text(no_wrap=True, overflow="ellipsis")
        filesystems = self.view.filesystems
        width = max((cell_len(f.mount) for f in filesystems), default=1)
        for i, f in enumerate(filesystems):
            if i:
                text.append("\n")
            text.append(f"{f.mount:<{width}}", style="bold")
            text.append(f"  {f.fstype:<6}", style="dim")
            if f.missing:
                text.append(f"  {f.missing}", style="dim")
                continue
            pct = f.free_pct
            lvl = (Level.OK if pct is None else Level.ALERT if pct < th.disk_free_alert
                   else Level.WARN if pct < th.disk_free_warn else Level.OK)
            used = f.used / f.total if f.used is not None and f.total else None
            text.append(f"  {fmt_used(f.used, f.total):>10} ")
            text.append(bar(used, 12), style=_level_style(app, lvl) or "")
            free = f"  {fmt_bytes(f.free)} free"
            if pct is not None:
                free += f" ({pct:.0f}%)"
            text.append(free, style=_level_style(app, lvl))
        if not filesystems:
            text.append("no filesystems reported", style="dim")
        return text


class Missing(Part):
    def render(self) -> Text:
        view = self.view
        text = Text()
        reasons = dict(view.missing)
        for name, info in view.collectors.items():
            if info.ok is False and name not in reasons:
                reasons[name] = info.reason or "unavailable"
        for i, (name, why) in enumerate(sorted(reasons.items())):
            text.append(("\n" if i else "") + f"{name}: ", style="bold")
            text.append(why)
        return text

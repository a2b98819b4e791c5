"""The dashboard: every node at a glance, with cluster totals and alerts on top.

The node table draws with Textual's line API and keeps one rendered strip per row: a sample
of one node re-renders that row only, so 64 nodes at 1 Hz cost little. Columns give way by
priority when the terminal is narrow (OS and power go first; node, state, CPU and memory
stay).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input

from saf.screens.view import ALERT, OK, WARN, NodeView, alerts, level
from saf.screens.widgets import (StatusLine, fmt_bytes, fmt_num, fmt_rate, fmt_speed, palette,
                             sparkline)

HISTORY = 120  # samples fed to a row's sparklines (downsampled to the cell width)


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int
    priority: int  # lower stays longer when the terminal is narrow
    align: str = "right"


COLUMNS = (
    Column("node", "NODE", 10, 0, "left"),
    Column("state", "STATE", 10, 1, "left"),
    Column("role", "ROLE", 6, 9, "left"),
    Column("os", "OS", 6, 12, "left"),
    Column("cpu", "CPU", 5, 2),
    Column("cpu_spark", "CPU HISTORY", 12, 7, "left"),
    Column("mem", "MEMORY", 10, 3),
    Column("gpu", "GPU", 5, 4),
    Column("gpu_mem", "GPU MEM", 11, 9),
    Column("temp", "TEMP", 5, 5),
    Column("power", "POWER", 6, 11),
    Column("net_in", "NET IN", 7, 6),
    Column("net_out", "NET OUT", 7, 6),
    Column("net_spark", "NET HISTORY", 11, 10, "left"),
    Column("link", "LINK", 13, 8, "left"),
)


def fit_columns(width: int, name_width: int) -> list[Column]:
    """The columns that fit `width`, in display order, dropping by priority."""
    cols = [Column(c.key, c.title, name_width, c.priority, c.align) if c.key == "node" else c
            for c in COLUMNS]
    chosen = sorted(cols, key=lambda c: c.priority)
    while chosen and sum(c.width + 1 for c in chosen) > width and len(chosen) > 1:
        chosen.pop()
    keys = {c.key for c in chosen}
    return [c for c in cols if c.key in keys]


class NodeTable(Widget, can_focus=True):
    """The dashboard's table of nodes (line API, one cached strip per row)."""

    BINDING_GROUP_TITLE = "Nodes"
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", id="dashboard.up", show=False,
                tooltip="Select the node above"),
        Binding("down,j", "cursor(1)", "Down", id="dashboard.down", show=False,
                tooltip="Select the node below"),
        Binding("home,g", "cursor_to(0)", "First", id="dashboard.first", show=False,
                tooltip="Select the first node"),
        Binding("end,G", "cursor_to(-1)", "Last", id="dashboard.last", show=False,
                tooltip="Select the last node"),
        Binding("pageup", "page(-1)", "Page up", id="dashboard.page_up", show=False,
                tooltip="Move the selection a page up"),
        Binding("pagedown", "page(1)", "Page down", id="dashboard.page_down", show=False,
                tooltip="Move the selection a page down"),
        Binding("enter", "open", "Open", id="dashboard.open",
                tooltip="Open the selected node: cores, NUMA, GPUs, interfaces, disks"),
    ]

    cursor: reactive[int] = reactive(0, layout=False)

    class Opened(Message):
        def __init__(self, node: str) -> None:
            super().__init__()
            self.node = node

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: list[str] = []
        self._position: dict[str, int] = {}  # node -> its row
        self.filter = ""
        self.top = 0
        self._cache: dict[str, Strip] = {}
        self._columns: list[Column] = []
        self._layout_width = -1
        self._styles: dict[str, Style] = {}

    # -- data -------------------------------------------------------------------------------
    def set_rows(self) -> None:
        app: Any = self.app
        selected = self.selected
        names = app.node_names
        if self.filter:
            names = [n for n in names if self._matches(n, self.filter)]
        self.rows = names
        self._position = {name: i for i, name in enumerate(names)}
        self.cursor = self.rows.index(selected) if selected in self.rows else min(
            self.cursor, max(0, len(self.rows) - 1))
        self._cache.clear()
        self._layout_width = -1
        self._scroll_to_cursor()
        self.refresh()

    def _matches(self, name: str, text: str) -> bool:
        app: Any = self.app
        view: NodeView = app.view(name)
        node = app.node_info(name)
        words = [name, view.status, view.os, view.reason]
        if node is not None:
            words += list(node.roles) + list(node.tags) + [node.host]
        return any(text.lower() in w.lower() for w in words if w)

    @property
    def selected(self) -> str | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def update_node(self, name: str) -> None:
        """Re-render one node's row (and nothing else)."""
        self.update_nodes((name,))

    def update_nodes(self, names: Iterable[str]) -> None:
        """Re-render these nodes' rows (and nothing else)."""
        lines = []
        position = self._position
        height = self.size.height
        for name in names:
            self._cache.pop(name, None)
            row = position.get(name)
            if row is None:  # filtered out, or a node the table has not heard of
                if name in self.app.node_names:  # type: ignore[attr-defined]
                    self.set_rows()
                    return
                continue
            y = row - self.top + 1
            if 1 <= y < height:
                lines.append(y)
        # Only the changed lines, with runs of adjacent lines as one region (fewer regions
        # for the compositor to cut; a whole-table refresh draws more than it saves).
        lines.sort()
        regions = []
        for y in lines:
            if regions and regions[-1][1] == y:
                regions[-1][1] = y + 1
            else:
                regions.append([y, y + 1])
        width = self.size.width
        if regions:
            self.refresh(*(Region(0, top, width, end - top) for top, end in regions))

    def refresh_line(self, y: int) -> None:
        self.refresh(Region(0, y, self.size.width, 1))

    def invalidate(self) -> None:
        self._cache.clear()
        self._styles.clear()
        self.refresh()

    # -- navigation -------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        for row in (old, new):
            if 0 <= row < len(self.rows):
                self._cache.pop(self.rows[row], None)
        self._scroll_to_cursor()
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        visible = max(1, self.size.height - 1)
        if self.cursor < self.top:
            self.top = self.cursor
        elif self.cursor >= self.top + visible:
            self.top = self.cursor - visible + 1
        self.top = max(0, min(self.top, max(0, len(self.rows) - visible)))

    def action_cursor(self, step: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + step))

    def action_cursor_to(self, row: int) -> None:
        if self.rows:
            self.cursor = row % len(self.rows)

    def action_page(self, pages: int) -> None:
        self.action_cursor(pages * max(1, self.size.height - 2))

    def action_open(self) -> None:
        if self.selected:
            self.post_message(self.Opened(self.selected))

    def on_click(self, event: events.Click) -> None:
        row = self.top + event.y - 1
        if event.y >= 1 and 0 <= row < len(self.rows):
            if row == self.cursor and event.chain >= 2:
                self.action_open()
            self.cursor = row

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self.action_cursor(1)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.action_cursor(-1)

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self._scroll_to_cursor()

    # -- drawing ----------------------------------------------------------------------------
    def _style(self, name: str) -> Style:
        if not self._styles:
            v = palette(self.app)
            self._styles = {
                OK: Style(), WARN: Style(color=v["warning"], bold=True),
                ALERT: Style(color=v["error"], bold=True),
                "dim": Style(color=v.get("foreground-muted", v["foreground"]), dim=True),
                "title": Style(color=v["primary"], bold=True),
                "good": Style(color=v["success"]),
                "spark": Style(color=v["primary"]),
                "spark2": Style(color=v["secondary"]),
                "cursor": Style(bgcolor=v.get("block-cursor-background", v["primary"]),
                                color=v.get("block-cursor-foreground")),
                "cursor-blur": Style(bgcolor=v["panel"]),
            }
        return self._styles[name]

    def _layout(self) -> list[Column]:
        width = self.size.width
        if width != self._layout_width:
            app: Any = self.app
            longest = max((len(n) for n in app.node_names), default=4)
            self._columns = fit_columns(width, max(6, min(longest + 1, 16)))
            self._layout_width = width
        return self._columns

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        columns = self._layout()
        if y == 0:
            return self._header(columns, width)
        row = self.top + y - 1
        if row >= len(self.rows):
            if not self.rows and y == 2:
                text = "no node matches the filter" if self.filter else "no nodes"
                return Strip([Segment(f"  {text}", self._style("dim"))], width).extend_cell_length(width)
            return Strip.blank(width)
        name = self.rows[row]
        strip = self._cache.get(name)
        if strip is None:
            strip = self._render_row(name, columns, width, row == self.cursor)
            self._cache[name] = strip
        return strip

    def _header(self, columns: list[Column], width: int) -> Strip:
        style = self._style("title")
        segments = []
        for col in columns:
            title = col.title[:col.width]
            cell = title.ljust(col.width) if col.align == "left" else title.rjust(col.width)
            segments.append(Segment(cell + " ", style))
        return Strip(segments).extend_cell_length(width).crop(0, width)

    def _cells(self, view: NodeView) -> dict[str, tuple[str, str]]:
        """column key -> (text, style name)."""
        app: Any = self.app
        th = app.thresholds
        node = app.node_info(view.name)
        gone = view.status in ("lost", "stale", "stopped", "connecting")
        dim = "dim" if gone else OK
        status = {"connected": ("● up", "good"), "connecting": ("◌ connecting", "dim"),
                  "stale": ("◌ stale", WARN), "stopped": ("■ stopped", "dim")}.get(
            view.status, (f"✖ {view.reason or 'lost'}", ALERT))
        cells: dict[str, tuple[str, str]] = {
            "node": (view.name, "title" if not gone else dim),
            "state": status,
            "role": (",".join(node.roles) if node and node.roles else "–", dim),
            "os": (view.os, dim),
        }
        cells["cpu"] = (fmt_num(view.cpu, "%"),
                        dim if gone else level(view.cpu, th.cpu_warn, th.cpu_alert))
        cells["mem"] = (f"{fmt_bytes(view.mem_used, digits=0)}/"
                        f"{fmt_bytes(view.mem_total, digits=0)}" if view.mem_total else "–",
                        dim if gone else level(view.mem_pct, th.mem_warn, th.mem_alert))
        if view.gpus:
            hot = view.hottest_gpu
            used, total = view.gpu_mem()
            cells["gpu"] = (fmt_num(view.gpu_util(), "%"), dim)
            cells["gpu_mem"] = ((f"{fmt_bytes(used, digits=0)}/{fmt_bytes(total, digits=0)}"
                                 if total else "shared"), dim)
            temp = hot.temp if hot else None
            cells["temp"] = (fmt_num(temp, "°"), dim if gone else
                             level(temp, th.gpu_temp_warn, th.gpu_temp_alert))
            cells["power"] = (fmt_num(view.gpu_power(), "W"), dim)
        else:
            for key in ("gpu", "gpu_mem", "temp", "power"):
                cells[key] = ("·", "dim")
        cells["net_in"] = (fmt_rate(view.net_in), dim)
        cells["net_out"] = (fmt_rate(view.net_out), dim)
        nic = view.cluster_nic
        if nic is not None:
            link = f"{nic.name} {fmt_num(nic.mtu)} {fmt_speed(nic.speed)}"
            bad = nic.mtu is not None and nic.mtu < 9000 and (nic.speed or 0) >= 10000
            cells["link"] = (link, WARN if bad and not gone else dim)
        else:
            cells["link"] = ("–", "dim")
        return cells

    def _render_row(self, name: str, columns: list[Column], width: int,
                    selected: bool) -> Strip:
        app: Any = self.app
        view = app.view(name)
        cells = self._cells(view)
        segments: list[Segment] = []
        space = Segment(" ")
        narrow = True  # every character one cell wide: the strip's length is known
        for col in columns:
            if col.key == "cpu_spark":
                values = app.store.values(name, "cpu.percent", last=HISTORY)
                segments.append(Segment(sparkline(values, col.width, top=100.0),
                                        self._style("spark")))
            elif col.key == "net_spark":
                nic = view.cluster_nic
                values = (app.store.values(name, f"nic.{nic.name}.rx_bps", last=HISTORY)
                          if nic else [])
                segments.append(Segment(sparkline(values, col.width), self._style("spark2")))
            else:
                text, style = cells.get(col.key, ("", OK))
                text = text[:col.width]
                text = text.ljust(col.width) if col.align == "left" else text.rjust(col.width)
                if narrow and not text.isascii():
                    narrow = len(text) == cell_len(text)
                segments.append(Segment(text, self._style(style)))
            segments.append(space)
        if narrow:  # cells are padded to their widths: no need to measure every segment
            length = sum(c.width + 1 for c in columns)
            if length < width:
                segments.append(Segment(" " * (width - length)))
            strip = Strip(segments, max(width, length)).crop(0, width)
        else:
            strip = Strip(segments).extend_cell_length(width).crop(0, width)
        if selected:
            cursor = self._style("cursor" if self.has_focus else "cursor-blur")
            strip = strip.apply_style(cursor)
        return strip

    def on_focus(self) -> None:
        self._drop_cursor_row()

    def on_blur(self) -> None:
        self._drop_cursor_row()

    def _drop_cursor_row(self) -> None:
        if self.selected:
            self._cache.pop(self.selected, None)
            self.refresh()


class ClusterHeader(Widget):
    """Cluster totals and alerts, two lines (more when alerts do not fit)."""

    DEFAULT_CSS = """
    ClusterHeader { height: auto; }
    """
    _lines = 0

    def changed(self) -> None:
        """Repaint; lay out again only when the number of lines changed (layout is costly)."""
        self.refresh()

    def render(self) -> Text:
        app: Any = self.app
        v = palette(app)
        views = [app.view(n) for n in app.node_names]
        up = sum(1 for x in views if x.status == "connected")
        cpus = sum(int(x.cpu_count or 0) for x in views if x.has_sample)
        mem_used = sum(x.mem_used or 0 for x in views if x.status == "connected")
        mem_total = sum(x.mem_total or 0 for x in views if x.has_sample)
        gpus = sum(len(x.gpus) for x in views)
        gpu_used = sum(x.gpu_mem()[0] or 0 for x in views if x.status == "connected")
        gpu_total = sum(x.gpu_mem()[1] or 0 for x in views)
        text = Text(no_wrap=False, overflow="fold")
        text.append(f" {app.cluster} ", style=f"bold reverse {v['primary']}")
        up_style = v["success"] if up == len(views) else v["warning"] if up else v["error"]
        text.append("  nodes ", style="dim")
        text.append(f"{up}/{len(views)} up", style=f"bold {up_style}")
        text.append("  CPUs ", style="dim")
        text.append(str(cpus))
        text.append("  memory ", style="dim")
        text.append(f"{fmt_bytes(mem_used, digits=0)}/{fmt_bytes(mem_total, digits=0)}")
        text.append("  GPUs ", style="dim")
        text.append(str(gpus))
        if gpu_total:
            text.append("  GPU memory ", style="dim")
            text.append(f"{fmt_bytes(gpu_used, digits=0)}/{fmt_bytes(gpu_total, digits=0)}")
        text.append("\n")
        found = alerts(views, app.thresholds)
        if not found:
            text.append(" ✓ no alerts", style=v["success"])
        for i, alert in enumerate(sorted(found, key=lambda a: a.level != ALERT)):
            colour = v["error"] if alert.level == ALERT else v["warning"]
            text.append(" ▲ " if alert.level == ALERT else " ● ", style=f"bold {colour}")
            text.append(alert.text, style=colour)
        width = max(1, self.size.width or 80)
        lines = 1 + sum(-(-max(1, cell_len(part)) // width)
                        for part in text.plain.split("\n")[1:])
        if lines != self._lines:
            self._lines = lines
            self.call_after_refresh(self.refresh, layout=True)
        return text


class DashboardScreen(Screen[None]):
    """Home: one row per node."""

    BINDING_GROUP_TITLE = "Dashboard"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="dashboard.filter",
                tooltip="Show only nodes whose name, role, tag, OS or state contains a text"),
        Binding("escape", "clear_filter", "Clear filter", id="dashboard.clear_filter",
                show=False, tooltip="Show every node again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._pending: set[str] = set()
        self._flush_timer: Timer | None = None
        self._flush_at = 0.0
        self._status_dirty = False
        self._flushed_at = 0.0
        self._shown: dict[str, tuple[str, bool]] = {}  # node -> (status, has a sample)

    def compose(self) -> ComposeResult:
        yield ClusterHeader(id="cluster-header")
        yield NodeTable(id="nodes")
        yield Input(placeholder="filter nodes: name, role, tag, OS or state  (Esc clears)",
                    id="filter")
        yield StatusLine(id="status")
        yield Footer()

    @property
    def table(self) -> NodeTable:
        return self.query_one(NodeTable)

    @property
    def selected_node(self) -> str | None:
        return self.table.selected

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.table.set_rows()
        self.table.focus()
        self.app.theme_changed_signal.subscribe(self, lambda _: self.table.invalidate())

    def on_screen_resume(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        self.table.set_rows()
        self.query_one(ClusterHeader).changed()
        self.query_one(StatusLine).refresh()

    # -- updates from the app (only while on view) ------------------------------------------
    # Updates are gathered and drawn together: one screen update for many nodes' samples
    # instead of one each (64 nodes at 1 Hz would be 64 updates/s). The table repaints at
    # most once a second (samples come once a second; top does the same), and GATHER after
    # the first change following a quiet spell, so a lone change (a first sample, a node
    # lost) shows at once. The header and the status line join the same update.
    FLUSH_EVERY = 1.0
    GATHER = 0.05

    def node_updated(self, node: str) -> None:
        if not self.is_mounted:
            return  # on_mount draws everything there is
        self._pending.add(node)
        # A node whose state changed (connected, lost, its first sample) is shown at once;
        # new figures of a node already shown wait for the next turn.
        state = self.app.store.node(node)  # type: ignore[attr-defined]
        shown = (state.status, state.sample is not None)
        urgent = self._shown.get(node) != shown
        self._shown[node] = shown
        self._schedule(urgent)

    def _schedule(self, urgent: bool = False) -> None:
        now = time.monotonic()
        at = now + (self.GATHER if urgent else
                    max(self.GATHER, self._flushed_at + self.FLUSH_EVERY - now))
        if self._flush_timer is not None:
            if self._flush_at <= at:
                return  # already due soon enough
            self._flush_timer.stop()
        self._flush_at = at
        self._flush_timer = self.set_timer(at - now, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        self._flushed_at = time.monotonic()
        pending, self._pending = self._pending, set()
        self.table.update_nodes(pending)
        if self._status_dirty:
            self._status_dirty = False
            self.query_one(StatusLine).refresh()
        self.query_one(ClusterHeader).changed()

    def replay_moved(self, _: object) -> None:
        self._status_changed()

    def tick(self, _: float) -> None:
        self._status_changed()

    def _status_changed(self) -> None:
        """The status line (clock, replay position) is drawn with the next gathered update,
        not on its own: one screen update instead of two."""
        if not self.is_mounted:
            return
        self._status_dirty = True
        self._schedule()

    # -- actions ----------------------------------------------------------------------------
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display or self.table.filter:
            box.value = ""
            box.display = False
            self.table.filter = ""
            self.table.set_rows()
            self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.table.filter = event.value.strip()
        self.table.set_rows()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.table.focus()

    def on_node_table_opened(self, message: NodeTable.Opened) -> None:
        self.app.open_node(message.node)  # type: ignore[attr-defined]

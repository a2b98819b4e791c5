"""One node in detail: every core, memory and swap, NUMA nodes, each GPU with its processes,
each network interface with graphs, disks, and what the node cannot measure (and why)."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET
from saf.screens.base import SafScreen
from saf.screens.confirm import ConfirmScreen
from saf.screens.footer import FittingFooter
from saf.screens.messages import NodesChanged
from saf.screens.node_parts import (
    Cores,
    DiskTable,
    FilesystemTable,
    GpuStats,
    Memory,
    Missing,
    NicLine,
    NumaTable,
    Part,
    Title,
)
from saf.screens.widgets import Graph, StatusLine
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Static

from saf.format import fmt_bytes
from saf.metrics.view import NodeView

HISTORY = 300  # samples offered to a graph (it keeps min/max per cell of its width)


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
        yield Title(self.node, id="node-title", classes="screen-header one-line")
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
                tuple(d.name for d in view.disks), view.sample.filesystems is not UNSET,
                bool(view.missing or view.collectors))

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
        if view.sample.filesystems is not UNSET:  # an agent (or recording) from before: none
            parts.append(_section("Filesystems", FilesystemTable(node)))
        if view.missing or any(i.ok is False for i in view.collectors.values()):
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
                shown = next((x for x in view.gpus if f"gpu-{x.index}" == section.id), None)
                hot = (shown is not None and shown.temp is not None
                       and shown.temp >= app.setup.settings.thresholds.gpu_temp_alert)
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
            index = int((table.id or "").removeprefix("procs-"))
            pid = int(str(table.get_row_at(table.cursor_row)[0]))
            gpu = next((g for g in view.gpus if g.index == index), None)
            name = next((p.name for p in (gpu.processes if gpu else ()) if p.pid == pid), "?")
            return pid, name, index
        return None

    def action_signal(self) -> None:
        app = self.cockpit
        if app.refuse_if_readonly("Signalling a process"):
            return
        if app.setup.actions is None:
            app.notify("Signalling needs a live cluster; this is a replay.",
                       title="Not available", severity="warning")
            return
        chosen = self._selected_process()
        if chosen is None:
            app.notify("No GPU process to signal on this node.", severity="warning")
            return
        pid, name, index = chosen

        def kill_confirmed(answer: str | None) -> None:
            if answer == "kill":
                self._send(pid, "KILL")

        def first(answer: str | None) -> None:
            if answer == "term":
                self._send(pid, "TERM")
            elif answer == "kill":
                app.push_screen(ConfirmScreen(
                    "Really KILL?",
                    f"KILL cannot be caught: {name} dies at once, without saving or freeing "
                    "anything itself. The GPU memory is released by the driver.",
                    f"{self.node}$ kill -KILL {pid}",
                    [("kill", "Send KILL", "error")], danger=True), kill_confirmed)

        app.push_screen(ConfirmScreen(
            "Signal a GPU process",
            f"Process {pid} ({name}) on GPU {index} of {self.node}. TERM asks it to stop "
            "cleanly; KILL ends it at once (asks again).",
            f"{self.node}$ kill -TERM {pid}",
            [("term", "Send TERM", "warning"), ("kill", "KILL…", "error")]), first)

    @work(group="signal")
    async def _send(self, pid: int, signal: str) -> None:
        app = self.cockpit
        actions = app.setup.actions
        assert actions is not None  # action_signal asks only when there are actions
        try:
            result = await actions.signal(self.node, pid, signal)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            app.notify(str(exc), title=f"{signal} failed", severity="error")
            return
        app.notify(result, title=f"{signal} sent to {pid}")

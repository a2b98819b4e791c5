"""The dashboard: every node at a glance, with cluster totals and alerts on top.

The screen hands the app's updates (once a second, see saf.screens.app) to its widgets (the
node table in node_table.py, the header in cluster_header.py) in one screen update; the table
tells the screen a node was opened with a message.
"""

from __future__ import annotations

from saf.screens.base import SafScreen
from saf.screens.cluster_header import ClusterHeader
from saf.screens.footer import FittingFooter
from saf.screens.messages import NodesChanged, Tick
from saf.screens.node_table import NodeTable
from saf.screens.widgets import StatusLine
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input


class DashboardScreen(SafScreen[None]):
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
        self._status_dirty = False
        self._flush_queued = False

    def compose(self) -> ComposeResult:
        yield ClusterHeader(id="cluster-header", classes="screen-header")
        yield NodeTable(id="nodes")
        yield Input(placeholder="filter nodes: name, role, tag, OS or state  (Esc clears)",
                    id="filter", classes="filter")
        yield StatusLine(id="status")
        yield FittingFooter()

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
        self.query_one(ClusterHeader).show_totals()
        self.query_one(StatusLine).refresh()

    # -- updates from the app (only while on view) ------------------------------------------
    # The app hands on samples once a second with the clock's tick (and a node's new state at
    # once). What it posts together (the nodes, then the tick's status line) is drawn
    # together: the flush is queued behind the messages already waiting, not timed.

    def on_nodes_changed(self, message: NodesChanged) -> None:
        if self.is_mounted and message.nodes:  # else on_mount draws everything there is
            self._pending.update(message.nodes)
            self._schedule()

    def on_tick(self, _: Tick) -> None:
        # A lost node's row counts down to its next try: it is drawn again each second.
        # SafScreen.on_tick runs next (Textual calls each class's handler): status_moved.
        store = self.cockpit.store
        self._pending.update(n for n in store.nodes if store.node(n).retry_at is not None)

    def status_moved(self) -> None:
        if self.is_mounted:
            self._status_dirty = True
            self._schedule()

    def _schedule(self) -> None:
        if not self._flush_queued:
            self._flush_queued = True
            self.call_later(self._flush)

    def _flush(self) -> None:
        self._flush_queued = False
        if self._pending:
            pending, self._pending = self._pending, set()
            self.table.update_nodes(pending)
            self.query_one(ClusterHeader).show_totals()
        if self._status_dirty:
            self._status_dirty = False
            self.query_one(StatusLine).refresh()

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
        self.cockpit.open_node(message.node)

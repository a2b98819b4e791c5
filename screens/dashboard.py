"""The dashboard: every node at a glance, with cluster totals and alerts on top.

The screen gathers the app's updates and hands them to its widgets (the node table in
node_table.py, the header in cluster_header.py) at most once a second; the table tells the
screen a node was opened with a message.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.timer import Timer
from textual.widgets import Input

from saf.screens.footer import FittingFooter
from saf.screens.base import SafScreen
from saf.screens.cluster_header import ClusterHeader
from saf.screens.messages import NodesChanged, Tick
from saf.screens.node_table import NodeTable
from saf.screens.widgets import StatusLine


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
        self.query_one(ClusterHeader).refresh()
        self.query_one(StatusLine).refresh()

    # -- updates from the app (only while on view) ------------------------------------------
    # Updates are gathered and drawn together: one screen update for many nodes' samples
    # instead of one each (64 nodes at 1 Hz would be 64 updates/s). The table repaints at
    # most once a second (samples come once a second; top does the same), and GATHER after
    # the first change following a quiet spell, so a lone change (a first sample, a node
    # lost) shows at once. The header and the status line join the same update.
    FLUSH_EVERY = 1.0
    GATHER = 0.05

    def on_nodes_changed(self, message: NodesChanged) -> None:
        if not self.is_mounted or not message.nodes:
            return  # on_mount draws everything there is
        store = self.cockpit.store
        urgent = False
        for node in message.nodes:
            self._pending.add(node)
            # A node whose state changed (connected, lost, its first sample) is shown at once;
            # new figures of a node already shown wait for the next turn.
            state = store.node(node)
            shown = (state.status, state.sample is not None)
            urgent = urgent or self._shown.get(node) != shown
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
        self.query_one(ClusterHeader).refresh()

    def on_tick(self, _: Tick) -> None:
        # A lost node's row counts down to its next try: it is drawn again each second.
        # SafScreen.on_tick runs next and calls status_moved, which draws them.
        store = self.cockpit.store
        self._pending.update(n for n in store.nodes if store.node(n).retry_at is not None)

    def status_moved(self) -> None:
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
        self.cockpit.open_node(message.node)

"""The Network screen: the links between the nodes, and each node's interfaces, live.

Top: the node x node matrix of the last speed test (saf.net.store, the context's `net_dir`):
each cell the Gbit/s with the most streams, row sending to column, and its fraction of the
slower end's line rate, coloured by saf.net.results.grade; under it the pair's RTT and the
path MTU (NetResult.path_mtu, the figure `saf net show` prints), ✓ when full-size frames
crossed. Then the test's warnings. Below: every node's interfaces from the agent frames the
dashboard gets (rates in and out, MTU, link speed, errors and drops; ● marks the cluster
interface).

`s` runs a speed test (the shipped `netperf` recipe with its defaults, down the same path as
`saf net test`); the engine saves the result after every measurement, and the screen reads it
again at each step of the run, so the matrix fills in as it goes. `x` cancels it; `j` opens
the jumbo-frames recipe on the Recipes screen.
"""

from __future__ import annotations

import datetime

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from saf.screens.base import SafScreen
from saf.screens.footer import FittingFooter
from saf.screens.widgets import StatusLine, palette
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from saf.errors import SafError
from saf.events import Event
from saf.fleet import Fleet
from saf.format import MISSING, fmt_count, fmt_gbps, fmt_ms, fmt_percent, fmt_rate, fmt_speed
from saf.net import store
from saf.net.results import NetResult, ResultError, grade
from saf.recipe import library
from saf.recipe.events import NodeStepFinished, RunFinished, StepOutput
from saf.recipe.log import new_run_id
from saf.recipe.run import RunPlan, run_recipe
from saf.render.columns import Column, choose, fitted_line, fitted_table, left_out_words

JUMBO_RECIPE = "jumbo-frames"
IFACE_COLUMNS = (Column("NODE", "left"), Column("INTERFACE", "left"), Column("IN"),
                 Column("OUT"), Column("MTU", priority=2), Column("LINK", priority=1),
                 Column("ERRORS", priority=3), Column("DROPS", priority=4),
                 Column("ADDRESS", "left", priority=5))


class NetworkScreen(SafScreen[None]):
    BINDING_GROUP_TITLE = "Network"
    BINDINGS = [
        Binding("escape", "back", "Back", id="network.back",
                tooltip="Go back to the previous screen"),
        Binding("s", "speed_test", "Speed test", id="network.test",
                tooltip="Measure every pair of nodes (the netperf recipe) and fill the matrix"),
        Binding("x", "cancel", "Cancel test", id="network.cancel",
                tooltip="Stop the running speed test"),
        Binding("j", "jumbo", "Jumbo frames", id="network.jumbo",
                tooltip="Open the jumbo-frames recipe on the Recipes screen"),
    ]

    DEFAULT_CSS = """
    NetworkScreen #net-matrix-box {
        height: auto;
        max-height: 60%;
    }
    NetworkScreen #net-ifaces-box {
        height: 1fr;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.result: NetResult | None = None
        self.problem: str | None = None
        self.running: str | None = None  # the run id of a test started here
        self.run_status: str | None = None
        # The netperf recipe's variables for `s` (empty: the recipe's defaults).
        self.overrides: dict[str, str] = {}
        self.seen: list[int] = []  # measurements shown at each step of a run (for tests)

    def compose(self) -> ComposeResult:
        yield Static(id="net-header", classes="screen-header one-line")
        matrix = VerticalScroll(Static(id="net-matrix"), id="net-matrix-box", classes="panel")
        matrix.border_title = "Links (last speed test)"
        yield matrix
        ifaces = VerticalScroll(Static(id="net-ifaces"), id="net-ifaces-box", classes="panel")
        ifaces.border_title = "Interfaces"
        yield ifaces
        yield StatusLine()
        yield FittingFooter()

    def on_mount(self) -> None:
        self.load()
        self.redraw()

    def on_screen_resume(self) -> None:
        if self.running is None:
            self.load()
        self.redraw()

    def on_nodes_changed(self) -> None:
        self.redraw_interfaces()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    # -- data -------------------------------------------------------------------------------
    def load(self, run: str | None = None) -> None:
        """The result of `run`, or the cluster's last one."""
        try:
            if run is not None:
                self.result = store.load(store.path_of(run, self.setup.net_dir))
            else:
                self.result = store.find("last", self.setup.net_dir, cluster=self.setup.cluster)
            self.problem = None
        except ResultError as exc:
            if run is None and "no speed-test results" in str(exc):
                self.result, self.problem = None, None
            else:
                self.problem = str(exc)

    # -- actions ----------------------------------------------------------------------------
    def action_back(self) -> None:
        self.cockpit.go_back()

    def action_speed_test(self) -> None:
        if self.running is not None:
            self.notify("A speed test is already running (x cancels it).", title="Speed test")
            return
        if self.cockpit.refuse_if_readonly("Running a speed test"):
            return
        if self.setup.inventory is None:
            self.notify("There is no inventory: speed tests need a live cluster.",
                        title="Speed test", severity="warning")
            return
        self.running = new_run_id()
        self.run_status = "starting"
        self._run(self.running)
        self.redraw()

    def action_cancel(self) -> None:
        if self.running is None:
            self.notify("No speed test is running.", title="Speed test")
            return
        self.workers.cancel_group(self, "net-test")

    async def action_jumbo(self) -> None:
        names = {found.name for found in self.setup.recipe_library()}
        if JUMBO_RECIPE not in names:
            self.notify(f"There is no {JUMBO_RECIPE} recipe here.", title="Jumbo frames",
                        severity="warning")
            return
        await self.cockpit.show_recipe(JUMBO_RECIPE)

    @work(exclusive=True, group="net-test", exit_on_error=False)
    async def _run(self, run_id: str) -> None:
        inventory = self.setup.inventory
        assert inventory is not None
        plan = RunPlan(library.load("netperf"), dict(self.overrides))

        def show(event: Event) -> None:
            if isinstance(event, (StepOutput, NodeStepFinished)):
                self.run_status = "running"
                self.load(run_id)
                if self.result is not None and self.result.run == run_id:
                    self.seen.append(len(self.result.measurements))
                self.redraw()
            elif isinstance(event, RunFinished):
                self.run_status = event.status

        own = None
        fleet = self.setup.fleet
        try:
            if fleet is None:
                fleet = own = Fleet(inventory)
            await run_recipe(plan, fleet, show, run_id=run_id)
        except SafError as exc:
            self.notify(str(exc), title="Speed test not run", severity="error")
        finally:
            if own is not None:
                await own.close()
            self.running = None
            self.load(run_id)
            if self.result is not None and self.result.run == run_id:
                self.notify(f"Speed test {run_id}: {self.result.status}", title="Speed test")
            self.redraw()

    # -- drawing ----------------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        v = palette(self.app)
        self.query_one("#net-header", Static).update(self._header(v))
        self.query_one("#net-matrix", Static).update(self._matrix(v))
        self.redraw_interfaces()

    def redraw_interfaces(self) -> None:
        if not self.is_mounted:
            return
        table = self._interfaces(palette(self.app))
        self.query_one("#net-ifaces", Static).update(table)

    def _header(self, v: dict[str, str]) -> Text:
        """One line: the test's state, leaving out its run id, then how it was run, then
        when, rather than wrap (a tablet held upright)."""
        parts: list[tuple[Text, int]] = [(Text(" Network ", style=f"bold {v['primary']}"), 0)]
        r = self.result
        if self.running is not None:
            done = len(r.measurements) if r is not None and r.run == self.running else 0
            total = (sum(len(x) for x in r.rounds) * len(r.stream_counts()) * 2
                     if r is not None and r.run == self.running else 0)
            accent = f"bold {v['accent']}"
            parts += [(Text(" speed test", style=accent), 0),
                      (Text(f" {self.running}", style=accent), 3),
                      (Text(f" {self.run_status or ''} ", style=accent), 0),
                      (Text(f" {done}/{total or '?'} measured"), 0), (Text("  x cancels"), 2)]
        elif r is not None:
            when = datetime.datetime.fromtimestamp(r.started).strftime("%Y-%m-%d %H:%M")
            style = v["success"] if r.status == "ok" else v["error"]
            parts += [(Text(r.status, style=f"bold {style}"), 0), (Text(f"  {when}"), 1),
                      (Text(f"  {r.tool} · {r.pairs} pairs · {r.streams} streams"), 2),
                      (Text(f"  {r.run}"), 3)]
        else:
            parts.append((Text("no speed test yet: s runs one (or `saf net test`)"), 0))
        return fitted_line(parts, self.size.width or None)

    @staticmethod
    def _room(box: Widget, lines: int, fallback: int) -> int:
        """The cells a box's content has across once `lines` lines are in it: less its
        scrollbar when they will not fit its height (a table measured for the width without
        it would be squeezed by Rich, `ERRO…`)."""
        width = box.content_size.width or fallback
        if box.content_size.height and lines > box.content_size.height:
            width -= box.styles.scrollbar_size_vertical
        return max(1, width)

    def _warning_rows(self, matrix_lines: int, interface_rows: int) -> int:
        """How many lines the test's warnings may take under the matrix: the room its box
        has (at most 60 % of the screen) once the interfaces below have theirs, and never
        fewer than 5 (four warnings and how many more) while the box allows."""
        height = self.size.height or self.app.size.height
        fixed = 4 + 2  # the header and its rule, the status line and footer; the box's border
        # 60 % of what the docked status line and footer leave (Textual's percentage).
        cap = (height - 2) * 60 // 100 - 2 - matrix_lines
        spare = height - fixed - (interface_rows + 1 + 2) - matrix_lines
        return max(min(cap, spare), min(cap, 5), 1)

    def _matrix(self, v: dict[str, str]) -> RenderableType:
        muted = v.get("text-muted", v["foreground"])
        box = self.query_one("#net-matrix-box")
        box.border_title = "Links (last speed test)"
        if self.problem:
            return Text(self.problem, style=v["error"])
        r = self.result
        if r is None:
            return Text("The matrix of Gbit/s and RTT between every pair of nodes shows here "
                        "after a speed test.", style=muted)
        colour = {"good": v["success"], "fair": v["warning"], "poor": f"bold {v['error']}",
                  None: ""}
        cells: dict[tuple[str, str], Text] = {}
        for a in r.nodes:
            for b in r.nodes:
                if a == b:
                    cells[a, b] = Text("·", style=muted)
                    continue
                m = r.find(a, b)
                if m is None:
                    top = Text("…" if self.running else MISSING, style=muted)
                elif not m.ok:
                    top = Text("✗ failed", style=f"bold {v['error']}")
                else:
                    frac = r.fraction(m)
                    top = Text(fmt_gbps(m.bits_per_second) + " G"
                               + ("" if frac is None else f" {fmt_percent(frac, 0)}"),
                               style=colour[grade(frac)])
                    if m.retransmits_much:
                        top.append(" ↻", style=v["warning"])
                verified = r.mtu_verified(a, b)
                mtu = r.path_mtu(a, b)  # the figure `saf net test` and `saf net show` print
                bottom = Text(f"{fmt_ms(r.pair_rtt_ms(a, b))} {mtu or MISSING}", style=muted)
                if verified is not None:
                    bottom.append("✓" if verified else "✗",
                                  style=v["success"] if verified else v["error"])
                cells[a, b] = Text("\n").join([top, bottom])
        # Whole cells, as saf.render.columns does: receivers' columns are left out from the
        # last one while they do not fit, never cut ("6553…" is no MTU).
        corner = "from \\ to"
        lines = 1 + 2 * len(r.nodes)
        room = self._room(box, lines + 1 + min(len(r.warnings()), 4),
                          self.app.size.width - 4)
        widths = [max(cell_len(corner), *(cell_len(n) for n in r.nodes))]
        widths += [max([cell_len(b)] + [max(cell_len(line) for line in
                                            cells[a, b].plain.split("\n"))
                                        for a in r.nodes]) for b in r.nodes]
        shown = choose([0] + list(range(1, len(r.nodes) + 1)), widths, room, 2)
        receivers = [r.nodes[i - 1] for i in shown if i > 0]
        table = Table(box=None, padding=(0, 1), pad_edge=False,
                      header_style=f"bold {v['primary']}")
        table.add_column(corner, no_wrap=True)
        for n in receivers:
            table.add_column(n, justify="right", no_wrap=True)
        for a in r.nodes:
            table.add_row(Text(a, style="bold"), *(cells[a, b] for b in receivers))
        left_out = len(r.nodes) - len(receivers)
        if left_out:
            box.border_title += f" · {left_out_words(left_out)}"
        parts: list[RenderableType] = [table]
        warnings = r.warnings()
        if warnings:
            rows = self._warning_rows(lines, self._interface_rows())
            shown_w = warnings if len(warnings) <= rows else warnings[:max(rows - 1, 0)]
            parts += [Text(f"⚠ {w}", style=v["warning"], no_wrap=True, overflow="ellipsis")
                      for w in shown_w]
            if len(shown_w) < len(warnings):
                parts.append(Text(f"(and {len(warnings) - len(shown_w)} more: saf net show)",
                                  style=muted))
        return Group(*parts)

    def _interface_rows(self) -> int:
        return sum(1 for name in self.cockpit.node_names for nic in self.cockpit.view(name).nics
                   if not (nic.loopback and not nic.cluster))

    def _interfaces(self, v: dict[str, str]) -> RenderableType:
        rows = []
        brief = []  # the same rows with one address and how many more: "192.0.2.2 +2"
        for name in self.cockpit.node_names:
            view = self.cockpit.view(name)
            for nic in view.nics:
                if nic.loopback and not nic.cluster:
                    continue
                label = Text(("● " if nic.cluster else "  ") + nic.name,
                             style=f"bold {v['primary']}" if nic.cluster else "")
                errors = Text(fmt_count(nic.errors), style=v["error"] if nic.error_rate else "")
                drops = Text(fmt_count(nic.drops), style=v["warning"] if nic.drop_rate else "")
                row = [Text(name, style="bold"), label, Text(fmt_rate(nic.rx)),
                       Text(fmt_rate(nic.tx)), Text(f"{nic.mtu:.0f}" if nic.mtu else MISSING),
                       Text(fmt_speed(nic.speed)), errors, drops]
                addresses = list(nic.addresses)
                rows.append([*row, Text(", ".join(addresses) or MISSING)])
                brief.append([*row, Text(addresses[0] + (f" +{len(addresses) - 1}"
                                                         if len(addresses) > 1 else "")
                                         if addresses else MISSING)])
        if not rows:
            return Text("waiting for the nodes' agents…", style=v.get("text-muted", ""))
        box = self.query_one("#net-ifaces-box")
        width = self._room(box, len(rows) + 1, self.app.size.width - 4)
        style = f"bold {v['primary']}"
        table, left_out = fitted_table(IFACE_COLUMNS, rows, width, header_style=style)
        if left_out:  # every address did not fit: the first of each, and how many more
            table, left_out = fitted_table(IFACE_COLUMNS, brief, width, header_style=style)
        box.border_title = "Interfaces" + (f" · {left_out_words(left_out)}"
                                           if left_out else "")
        return table

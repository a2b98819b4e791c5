"""The Cluster screen: `saf status` live. Every node, Ray, each declared service and model
with its verdict (saf.up.status), read again every REFRESH_S seconds by a worker re-armed only
after the previous read ended (saf.toml's declaration only when the file changed); keys to
restart the highlighted part, and to bring it up or take it down alone (that part of `saf up`
/ `saf down`, saf.up.part), each asking first. A part's run is shown as the Recipes screen
shows a run (its steps x nodes matrix and the selected cell's output: the same widgets) in
place of the tables until Esc; the tables are read again when it ends.

The data comes from `setup.cluster_status` when the front door gave one (snapshot tests),
else from saf.up.gather on the cockpit's fleet (or one of its own over the inventory).
Restarts, ups and downs go through `setup.actions` (saf serve's hub for a served cockpit,
which refuses read-only sessions) and are refused here first when the cockpit is read-only.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.text import Text
from saf.screens.base import SafScreen
from saf.screens.confirm import ConfirmScreen
from saf.screens.footer import FittingFooter
from saf.screens.recipe_matrix import RunMatrix
from saf.screens.recipe_output import RunOutput
from saf.screens.recipe_run import RunController
from saf.screens.widgets import StatusLine, palette
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from saf.cockpit.actions import FleetActions
from saf.errors import SafError
from saf.events import Emit
from saf.fleet import Fleet
from saf.recipe.events import RunStatus
from saf.recipe.runner import AskPassword
from saf.recipe.state import RunState
from saf.render.columns import Column, fitted_table
from saf.render.status_view import (
    MODEL_COLUMNS,
    NODE_COLUMNS,
    RAY_COLUMNS,
    SERVICE_COLUMNS,
    model_rows,
    node_rows,
    ray_rows,
    service_rows,
    summary,
)
from saf.up.declared import Reread
from saf.up.gather import gather
from saf.up.part import Kind, Verb, command, describe, named
from saf.up.status import ClusterStatus

REFRESH_S = 5.0


@dataclass(frozen=True)
class Part:
    """One selectable row: what a key acts on."""

    kind: Kind
    node: str
    name: str
    port: int = 0

    @property
    def label(self) -> str:
        if self.kind in ("node", "ray"):
            return f"{self.kind} on {self.node}"
        return f"{self.kind} {self.name} on {self.node}"


def parts(status: ClusterStatus) -> list[Part]:
    """The rows in the order they are drawn (nodes, Ray, services, models)."""
    return ([Part("node", n.node, n.node) for n in status.nodes]
            + [Part("ray", r.node, "ray") for r in status.ray]
            + [Part("service", s.node, s.service) for s in status.services]
            + [Part("model", m.node, m.model, m.port) for m in status.models])


class ClusterScreen(SafScreen[None]):
    BINDING_GROUP_TITLE = "Cluster"
    BINDINGS = [
        Binding("escape", "back", "Back", id="cluster.back",
                tooltip="Go back to the previous screen"),
        Binding("up,k", "move(-1)", "Up", id="cluster.up", show=False,
                tooltip="Highlight the part above"),
        Binding("down,j", "move(1)", "Down", id="cluster.down", show=False,
                tooltip="Highlight the part below"),
        Binding("r", "restart", "Restart", id="cluster.restart",
                tooltip="Restart the highlighted service or model (asks first)"),
        Binding("u", "bring('up')", "Bring up", id="cluster.bring_up",
                tooltip="Bring the highlighted part up as saf.toml declares it: that part "
                        "of saf up (asks first)"),
        Binding("d", "bring('down')", "Take down", id="cluster.bring_down",
                tooltip="Take the highlighted part down: that part of saf down (asks first)"),
        Binding("x", "cancel", "Cancel run", id="cluster.cancel",
                tooltip="Stop the part's run: every remote command is stopped"),
        Binding("f", "refresh", "Refresh", id="cluster.refresh",
                tooltip="Look at every node again now"),
    ]

    DEFAULT_CSS = """
    ClusterScreen #cluster-scroll {
        height: 1fr;
    }
    ClusterScreen .cluster-box {
        height: auto;
    }
    ClusterScreen #recipes-matrix { height: 1fr; display: none; }
    ClusterScreen #recipes-log-box { height: 12; display: none; }
    ClusterScreen.running-view #cluster-scroll { display: none; }
    ClusterScreen.running-view #recipes-matrix { display: block; }
    ClusterScreen.running-view #recipes-log-box { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.status: ClusterStatus | None = None
        self.problem = ""
        self.busy = ""
        self.selected = 0
        self.own_fleet: Fleet | None = None
        self.declaration: Reread | None = None  # saf.toml's declaration, read on change only
        self.running = ""  # what the part's run going on does ("service beat up on alpha")
        self.run_state: RunState | None = None  # the part's run on view

    def compose(self) -> ComposeResult:
        yield Static(id="cluster-header", classes="screen-header one-line")
        boxes = []
        for name in ("nodes", "ray", "services", "models"):
            box = Static(id=f"cluster-{name}", classes="cluster-box panel")
            box.border_title = name.capitalize() if name != "ray" else "Ray"
            boxes.append(box)
        scroll = VerticalScroll(*boxes, id="cluster-scroll")
        scroll.can_focus = False  # up/down move the highlight; the screen scrolls to it
        yield scroll
        yield RunMatrix()
        yield RunOutput()
        yield StatusLine()
        yield FittingFooter()
        yield RunController()

    def on_mount(self) -> None:
        self._run_view(False)
        self.redraw()
        self.poll()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    async def on_unmount(self) -> None:
        if self.own_fleet is not None:
            await self.own_fleet.close()

    # -- reading ------------------------------------------------------------------------------
    def fleet(self) -> Fleet:
        if self.setup.fleet is not None:
            return self.setup.fleet
        if self.setup.inventory is None:
            raise SafError("no cluster to look at (a replay without an inventory)")
        if self.own_fleet is None:
            self.own_fleet = Fleet(self.setup.inventory)
        return self.own_fleet

    def poll(self) -> None:
        self.run_worker(self._read(), exclusive=True, group="cluster-status")

    async def _read(self) -> None:
        source = self.setup.cluster_status
        try:
            if source is not None:
                self.status = await source()
            else:
                fleet = self.fleet()
                if self.declaration is None:
                    self.declaration = Reread(fleet.inventory)
                self.status = await gather(fleet, self.declaration(),
                                           list(fleet.inventory.nodes))
            self.problem = ""
        except Exception as exc:  # noqa: BLE001 - shown in the header; the screen stays up
            self.problem = str(exc) or type(exc).__name__
        self.redraw()
        if source is None and (self.setup.fleet is not None or self.setup.inventory):
            self.set_timer(REFRESH_S, self.poll, name="cluster-poll")

    def current(self) -> Part | None:
        found = parts(self.status) if self.status else []
        if not found:
            return None
        self.selected = min(max(self.selected, 0), len(found) - 1)
        return found[self.selected]

    # -- actions ------------------------------------------------------------------------------
    def action_back(self) -> None:
        if self.has_class("running-view"):  # back to the tables; a run goes on (x stops it)
            self._run_view(False)
            self.redraw()
            return
        self.cockpit.go_back()

    def action_move(self, step: int) -> None:
        self.selected += step
        self.current()
        self.redraw()

    def action_refresh(self) -> None:
        self.poll()

    def action_bring(self, verb: Verb) -> None:
        part = self.current()
        if part is None or self.cockpit.refuse_if_readonly(f"Bringing {part.label} {verb}"):
            return
        if self.running:  # one run at a time: the one going on is shown again
            self._run_view(True)
            self.notify(f"{self.running} is going on; x cancels it.", severity="warning",
                        markup=False)
            return
        what = describe(verb, part.kind, part.node, part.name)
        words = named(verb, part.kind, part.node, part.name)
        body = (f"Bring {words} up as saf.toml declares it? This runs that part of `saf up`: "
                "what is missing or differs there is installed, started or changed, then "
                "checked." if verb == "up" else
                f"Take {words} down as saf.toml declares it? This runs that part of "
                "`saf down`: stopped, disabled and removed, then checked gone.")

        def answered(choice: str | None) -> None:
            if choice == verb:
                self._bring(verb, part, what)

        label = "Bring up" if verb == "up" else "Take down"
        self.app.push_screen(ConfirmScreen(
            f"{label} a part", body,
            f"{command(verb, part.kind, part.node)}  # the same for every part there",
            [(verb, label, "primary" if verb == "up" else "error")], danger=verb == "down"),
            answered)

    def _bring(self, verb: Verb, part: Part, what: str) -> None:
        actions = self.setup.actions or FleetActions(self.fleet())

        async def go(show: Emit, ask_password: AskPassword) -> str:
            return await actions.bring_part(verb, part.kind, part.node, part.name, show,
                                            ask_password)

        self.running = what
        self.busy = f"{what}…"
        self.show_run(self.query_one(RunController).start_with(go))
        self.redraw()  # the header says what runs

    def action_cancel(self) -> None:
        if not self.running:
            self.notify("No run to cancel.", severity="information")
            return
        self.query_one(RunController).cancel()
        self.notify("Cancelling: stopping every remote command…")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Cancel is about a part's run: offered (and in the footer) only while one goes;
        # the keys about the highlighted part only while the tables are on view.
        if action == "cancel":
            return bool(self.running)
        if action in ("restart", "bring", "refresh"):
            return not self.has_class("running-view")
        return True

    # -- a part's run -------------------------------------------------------------------------
    def show_run(self, state: RunState) -> None:
        self.run_state = state
        self._run_view(True)
        self.query_one(RunMatrix).show(state)
        self.refresh_bindings()
        self._draw_run()

    def _run_view(self, on: bool) -> None:
        """The run in place of the tables (its matrix has the keys: arrows move over its
        cells), or the tables (the arrows move the highlight; the matrix takes no focus)."""
        self.set_class(on, "running-view")
        self.refresh_bindings()
        matrix, output = self.query_one(RunMatrix), self.query_one(RunOutput)
        matrix.can_focus = output.can_focus = on
        if on:
            matrix.focus()
        elif matrix.has_focus or output.has_focus:
            self.set_focus(None)

    def _draw_run(self) -> None:
        # Drawn on each Changed (a part's run has few steps; a newer Changed replaces any
        # not yet handled), so what is drawn is never a tick behind the run.
        matrix = self.query_one(RunMatrix)
        matrix.draw()
        self.query_one(RunOutput).show(self.run_state, matrix.selected)

    def on_run_controller_changed(self, message: RunController.Changed) -> None:
        self._draw_run()
        state = self.run_state
        # Changed comes with each event and once more when the run's worker ends: a state
        # still idle then is a run that ended before its first event.
        if not self.running or state is None or state.status == RunStatus.RUNNING:
            return
        done, self.running, self.busy = self.running, "", ""
        self.refresh_bindings()
        fine = state.status == RunStatus.OK
        ended = "ended before it started" if state.status == RunStatus.IDLE else state.status
        self.notify(f"{done}: {ended}" + ("" if fine else
                    " (the run's cells say where and why; Esc for the tables)"),
                    title="Part done" if fine else "Part not done",
                    severity="information" if fine else "error", markup=False)
        self.poll()

    def on_run_controller_not_run(self, message: RunController.NotRun) -> None:
        # markup=False: an error names saf.toml's [tables] and a node's own words
        self.notify(str(message.error), title=f"{self.running or 'Part'}: not run",
                    severity="error", timeout=15, markup=False)
        self.running, self.busy = "", ""
        self._run_view(False)
        self.refresh_bindings()
        self.redraw()

    def on_run_matrix_cell_selected(self, message: RunMatrix.CellSelected) -> None:
        self.query_one(RunOutput).show(self.run_state, (message.step, message.node))

    def action_restart(self) -> None:
        part = self.current()
        if part is None or self.cockpit.refuse_if_readonly(f"Restarting {part.label}"):
            return
        if part.kind not in ("service", "model"):
            self.notify(f"{part.label}: restarting it is `saf up`'s work "
                        f"(run `saf up --on {part.node}`)", title="Restart",
                        severity="warning", markup=False)
            return

        def answered(choice: str | None) -> None:
            if choice == "restart":
                self._restart(part)

        self.app.push_screen(ConfirmScreen(
            "Restart a part", f"Restart {part.label}? It is stopped and started again by "
            "what keeps it (its unit, saf's supervisor, or its command line on record).",
            f"saf status --on {part.node}  # afterwards, to see it",
            [("restart", "Restart", "error")], danger=True), answered)

    @work(exclusive=True, group="cluster-action", exit_on_error=False)
    async def _restart(self, part: Part) -> None:
        self.busy = f"restarting {part.label}…"
        self.redraw()
        try:
            actions = self.setup.actions or FleetActions(self.fleet())
            message = await actions.restart_part(part.node, part.kind, part.name, part.port)
            self.notify(message, title="Restarted", markup=False)
        except Exception as exc:  # noqa: BLE001 - any failure is the user's news, not a crash
            self.notify(f"{part.label}: {exc}", title="Restart failed", severity="error",
                        markup=False)
        self.busy = ""
        self.poll()

    # -- drawing ------------------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        v = palette(self.app)
        self.query_one("#cluster-header", Static).update(self._header(v))
        status = self.status
        boxes = {name: self.query_one(f"#cluster-{name}", Static)
                 for name in ("nodes", "ray", "services", "models")}
        if status is None:
            for name, box in boxes.items():
                box.display = name == "nodes"
            boxes["nodes"].update(Text(self.problem or "looking at the nodes…",
                                       style=v.get("text-muted", v["foreground"])))
            return
        current = self.current()
        width = max(20, self.size.width - 4)
        offset = 0
        sections: list[tuple[str, tuple[Column, ...], list[list[Text]], bool]] = [
            ("nodes", NODE_COLUMNS, node_rows(status), True),
            ("ray", RAY_COLUMNS, ray_rows(status.ray), status.ray_declared),
            ("services", SERVICE_COLUMNS, service_rows(status.services), True),
            ("models", MODEL_COLUMNS, model_rows(status.models), True)]
        for name, columns, rows, shown in sections:
            box = boxes[name]
            box.display = shown
            if not shown:
                continue
            box.update(self._table(columns, rows, offset, current, width, v, name, status))
            if current is not None and offset <= self.selected < offset + len(rows):
                # The highlighted row's section in view (a short terminal scrolls).
                self.call_after_refresh(self.query_one("#cluster-scroll").scroll_to_widget,
                                        box, animate=False)
            offset += len(rows)

    def _table(self, columns: tuple[Column, ...], rows: list[list[Text]], offset: int,
               current: Part | None, width: int, v: dict[str, str], name: str,
               status: ClusterStatus) -> RenderableType:
        if not rows:
            return Text(f"No {name} declared in saf.toml ([[{name}]]).",
                        style=v.get("text-muted", v["foreground"]))
        table, _ = fitted_table(columns, rows, width, header_style="bold", expand=False)
        index = self.selected - offset
        if current is not None and 0 <= index < len(rows):
            table.rows[index].style = f"reverse {v['accent']}"
        if name == "ray" and status.ray_problem:
            return Group(Text(status.ray_problem, style=v["warning"]), table)
        return table

    def _header(self, v: dict[str, str]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" Cluster ", style=f"bold {v['primary']}")
        if self.busy:  # first: what saf is doing now must not be cut off a narrow header
            text.append(f"{self.busy} · ", style=v["accent"])
        if self.status is not None:
            text.append_text(summary(self.status))
        if self.problem:
            text.append(f" · {self.problem}", style=v["error"])
        return text

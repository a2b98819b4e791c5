"""The Ray screen: the cluster's nodes (alive or dead, address, CPUs and GPUs used of total,
memory, object store used of total, custom resources), the totals, the jobs with their state
and duration, and the dashboard's URL, live through an SSH forward to the head.

The status is read every POLL_S seconds by a worker that is re-armed only after the previous
read ended, so reads never overlap; from `setup.ray_source` when the front door gave one (tests,
snapshots), else through `saf.ray.watch.RayWatch` on the cockpit's fleet. When Ray does not
answer, the screen says so and `u` opens ray-up on the Recipes screen.
"""

from __future__ import annotations

from rich.text import Text
from saf.screens.base import SafScreen
from saf.screens.footer import FittingFooter
from saf.screens.widgets import StatusLine
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from saf.errors import RayError
from saf.ray.status import RayStatus
from saf.ray.watch import RayWatch
from saf.render.ray_view import jobs_table, nodes_table, summary

POLL_S = 2.0


class RayScreen(SafScreen[None]):
    BINDING_GROUP_TITLE = "Ray"
    BINDINGS = [
        Binding("u", "ray_up", "ray-up", id="ray.up",
                tooltip="Open the Recipes screen on ray-up, to start the Ray cluster"),
        Binding("r", "refresh", "Refresh", id="ray.refresh",
                tooltip="Read the cluster's status again now"),
    ]

    DEFAULT_CSS = """
    RayScreen #ray-header {
        padding: 0 1;
    }
    RayScreen .ray-box {
        height: auto;
    }
    RayScreen #ray-scroll {
        height: 1fr;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.status: RayStatus | None = None
        self.problem: str | None = "reading the cluster's status…"
        # Not `watch`: that is DOMNode.watch, Textual's method this attribute would hide.
        self.ray_watch: RayWatch | None = None
        self.reads = 0

    def compose(self) -> ComposeResult:
        yield Static(id="ray-header", classes="screen-header one-line")
        nodes = Static(id="ray-nodes", classes="ray-box panel")
        nodes.border_title = "Nodes"
        jobs = Static(id="ray-jobs", classes="ray-box panel")
        jobs.border_title = "Jobs"
        yield VerticalScroll(nodes, jobs, id="ray-scroll")
        yield StatusLine()
        yield FittingFooter()

    def on_mount(self) -> None:
        self.redraw()
        self.poll()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    async def on_unmount(self) -> None:
        if self.ray_watch is not None:
            await self.ray_watch.close()

    # -- reading ------------------------------------------------------------------------------
    def poll(self) -> None:
        self.run_worker(self._read(), exclusive=True, group="ray-status")

    async def _read(self) -> None:
        try:
            source = self.setup.ray_source
            if source is not None:
                status = await source()
            else:
                if self.setup.fleet is None:
                    raise RayError("no live cluster here (a replay): Ray's status comes from "
                                   "a live cockpit")
                if self.ray_watch is None:
                    self.ray_watch = RayWatch(self.setup.fleet)
                status = await self.ray_watch.read()
            self.status, self.problem = status, None
        except RayError as exc:
            self.status, self.problem = None, exc.message
        self.reads += 1
        self.redraw()
        if self.setup.ray_source is None or self.setup.fleet is not None:
            self.set_timer(POLL_S, self.poll, name="ray-poll")

    # -- drawing ------------------------------------------------------------------------------
    def redraw(self) -> None:
        if not self.is_mounted:
            return
        header = self.query_one("#ray-header", Static)
        nodes = self.query_one("#ray-nodes", Static)
        jobs = self.query_one("#ray-jobs", Static)
        width = max(20, self.size.width - 4)
        if self.status is None:
            header.update(Text("Ray is not running" if self.reads else "Ray",
                               style="bold yellow" if self.reads else "bold"))
            message = Text(self.problem or "")
            if self.reads:
                message.append("\n\nPress ", style="dim")
                message.append("u", style="bold")
                message.append(" to open ray-up on the Recipes screen "
                               "(or run `saf run ray-up`).", style="dim")
            nodes.border_title = "Ray"
            nodes.update(message)
            jobs.display = False
            return
        nodes.border_title = "Nodes"
        jobs.display = True
        header.update(summary(self.status, max(1, self.size.width - 2)))
        nodes.update(nodes_table(self.status, width))
        jobs.update(jobs_table(self.status.jobs[:50], width))

    # -- actions ------------------------------------------------------------------------------
    async def action_ray_up(self) -> None:
        await self.cockpit.show_recipe("ray-up")

    def action_refresh(self) -> None:
        self.poll()

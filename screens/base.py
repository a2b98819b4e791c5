"""How a screen or widget reaches the cockpit, typed: `SafScreen.cockpit` (the app) and
`SafScreen.setup` (what the front door gave it), and `cockpit_of(widget)` for widgets.

Every SafScreen keeps its status line (the clock, the replay's position) moving: the app's
`Tick` and `ReplayMoved` redraw it through `status_moved`, which a screen that gathers its
redraws overrides. A screen whose picture is frozen sets `paused`, and the status line says
so instead of "live"."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

from saf.screens.messages import ReplayMoved, Tick
from textual.dom import DOMNode
from textual.reactive import reactive
from textual.screen import Screen

from saf.cockpit.context import CockpitContext

if TYPE_CHECKING:
    from saf.screens.app import SafApp

ResultT = TypeVar("ResultT")


def cockpit_of(node: DOMNode) -> SafApp:
    """The cockpit app a widget or screen is mounted in."""
    return cast("SafApp", node.app)


class SafScreen(Screen[ResultT]):
    # The screen's picture is frozen (the Signals screen's `p`): the status line says paused.
    paused: reactive[bool] = reactive(False, init=False)

    @property
    def cockpit(self) -> SafApp:
        return cockpit_of(self)

    @property
    def setup(self) -> CockpitContext:
        return self.cockpit.setup


    def on_tick(self, _: Tick) -> None:
        self.status_moved()

    def on_replay_moved(self, _: ReplayMoved) -> None:
        self.status_moved()

    def watch_paused(self) -> None:
        self.status_moved()

    def status_moved(self) -> None:
        """The clock, the replay's position or `paused` changed: redraw the status line."""
        if self.is_mounted:
            # By name: saf.screens.widgets imports this module.
            for line in self.query("StatusLine"):
                line.refresh()

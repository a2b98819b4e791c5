"""How a screen or widget reaches the cockpit, typed: `SafScreen.cockpit` (the app) and
`SafScreen.ctx` (what the front door gave it), and `cockpit_of(widget)` for widgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

from textual.dom import DOMNode
from textual.screen import Screen

from saf.cockpit.context import CockpitContext

if TYPE_CHECKING:
    from saf.screens.app import SafApp

ResultT = TypeVar("ResultT")


def cockpit_of(node: DOMNode) -> SafApp:
    """The cockpit app a widget or screen is mounted in."""
    return cast("SafApp", node.app)


class SafScreen(Screen[ResultT]):
    @property
    def cockpit(self) -> SafApp:
        return cockpit_of(self)

    @property
    def ctx(self) -> CockpitContext:
        return self.cockpit.ctx

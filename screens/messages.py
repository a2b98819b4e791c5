"""What the app tells the screen on view, as typed messages. Each is posted to that screen
alone and does not bubble back up to the app; a screen not on view hears nothing and redraws
from the store when it returns."""

from __future__ import annotations

from textual.message import Message

from saf.recording import ReplayPosition


class NodesChanged(Message, bubble=False):
    """Something about these nodes changed in the store since the screen last heard."""

    def __init__(self, nodes: frozenset[str]) -> None:
        super().__init__()
        self.nodes = nodes


class ReplayMoved(Message, bubble=False):
    """The replay played on, paused, sought or changed speed."""

    def __init__(self, position: ReplayPosition) -> None:
        super().__init__()
        self.position = position

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ReplayMoved)


class Tick(Message, bubble=False):
    """Once a second (and when recording starts or stops): the clock and status line moved."""

    def __init__(self, now: float) -> None:
        super().__init__()
        self.now = now

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Tick)

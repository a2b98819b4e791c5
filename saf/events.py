"""Typed events: everything that happens in saf, as the faces (TUI, Rich, JSONL) see it.

Core code produces events; the faces only consume them. Each domain defines its own event
classes next to the code that emits them, all deriving from `Event`, so every face can render
or serialise any of them the same way (`to_json`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    time: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        data = {"event": self.kind}
        data.update(dataclasses.asdict(self))
        return data


Emit = Callable[[Event], None]


def ignore(_: Event) -> None:
    """An Emit that drops events."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputLine(Event):
    kind: ClassVar[str] = "output"
    node: str
    stream: str
    line: str

"""Typed events: everything that happens in saf, as the faces (TUI, Rich, JSONL) see it.

Core code produces events; the faces only consume them. Each domain defines its own event
classes next to the code that emits them, all deriving from `Event`, so every face can render
or serialise any of them the same way (`to_json`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    time: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        data = {"event": self.kind}
        data.update(dataclasses.asdict(self))
        return data


class UnknownEvent(ValueError):
    """A line holds an event of a kind this saf does not know (a newer saf wrote it, or the
    line is not an event at all)."""


class EventTypes:
    """The events one kind of file or stream holds (a run log, a recording), by kind, and the
    one way they are read back from `to_json()`: a kind not known raises UnknownEvent (a
    reader that skips what it cannot read skips it; one that must be whole names the line),
    and a field this saf does not know (a newer one added it) is left out."""

    def __init__(self, what: str, *classes: type[Event]) -> None:
        self.what = what  # "an agent event": for the message
        self.by_kind = {cls.kind: cls for cls in classes}
        self._fields = {cls.kind: frozenset(f.name for f in dataclasses.fields(cls))
                        for cls in classes}

    def decode(self, data: Mapping[str, Any]) -> Event:
        kind = data.get("event") if isinstance(data, Mapping) else None  # JSON: any value
        cls = self.by_kind.get(kind) if isinstance(kind, str) else None
        if cls is None or not isinstance(kind, str):
            raise UnknownEvent(f"not {self.what}: {kind!r}")
        names = self._fields[kind]
        return cls(**{k: v for k, v in data.items() if k in names})


Emit = Callable[[Event], None]


def ignore(_: Event) -> None:
    """An Emit that drops events."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputLine(Event):
    kind: ClassVar[str] = "output"
    node: str
    stream: str
    line: str

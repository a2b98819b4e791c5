"""Typed events of the agent link: frames received, frames rejected, and the link's status.

Every frame event carries the decoded `frame` as sent (every key, a newer agent's too: what
`saf top --json` prints), its checked form `typed` (the Struct of saf.metrics.frames: what the
store and the view read), the `raw` line exactly as it arrived (without its newline) and, in
the base `time` field, when saf received it. An event made without `typed` (read back from
JSON, made by a test) passes the gate's check as it is made: a bad frame raises FrameError.
Recording a session is writing `event.to_json()` per line; replaying it is
`event_from_json()` per line fed to the same consumers (`MetricsStore.apply`, a screen),
with no cluster.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any, ClassVar

from saf.events import Event, EventTypes
from saf.metrics.frames import Frame, check


class NodeStatus(StrEnum):
    """A node's status, one type for every face. The agent link says CONNECTING, UP, LOST or
    STOPPED (`AgentStatus.status`); STALE is what saf.metrics.view reads when samples stopped
    coming while the link says up. A StrEnum: recordings, snapshots and the hub's wire carry
    these very words."""

    UP = "up"                  # hello received, samples flowing
    CONNECTING = "connecting"  # reaching the node / deploying / starting the agent
    STALE = "stale"            # the link is up, the samples stopped
    LOST = "lost"              # connection or agent gone (or silent for two intervals); retries
    STOPPED = "stopped"        # the hub was stopped; no retry


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentFrameEvent(Event):
    """A valid frame from a node's agent."""

    kind: ClassVar[str] = "agent_frame"
    node: str
    frame: dict[str, Any]
    raw: str
    typed: Frame | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.typed is None:  # the link hands on the gate's Struct; others are checked here
            object.__setattr__(self, "typed", check(self.frame))

    def to_json(self) -> dict[str, Any]:
        """The frame as sent, not its Struct (which drops what a newer agent added)."""
        return {"event": self.kind, "time": self.time, "node": self.node, "frame": self.frame,
                "raw": self.raw}


@dataclasses.dataclass(frozen=True, kw_only=True)
class HelloReceived(AgentFrameEvent):
    """The agent started: versions, host, OS, Python, collectors and why some are missing."""

    kind: ClassVar[str] = "agent_hello"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleReceived(AgentFrameEvent):
    """One sample of a node (see agents/protocol.py for its sections)."""

    kind: ClassVar[str] = "agent_sample"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentErrorReported(AgentFrameEvent):
    """The agent reported a problem (a collector failed) and goes on."""

    kind: ClassVar[str] = "agent_error"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplyReceived(AgentFrameEvent):
    """The agent's answer to a command saf sent it."""

    kind: ClassVar[str] = "agent_reply"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FrameRejected(Event):
    """A line from the agent that is not a valid frame. Counted by `reason` (bad_json,
    truncated, version, unknown_type, not_object, too_long); never fatal."""

    kind: ClassVar[str] = "agent_bad_frame"
    node: str
    reason: str
    message: str
    raw: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentStatus(Event):
    """The link of a node changed state. `reason` is a short word (deploy, start, exited,
    silent, refused, timeout, auth, lost, ...), `message` says more, `retry_in` is the
    backoff delay before the next attempt when lost."""

    kind: ClassVar[str] = "agent_status"
    node: str
    status: NodeStatus
    reason: str = ""
    message: str = ""
    retry_in: float | None = None

    def __post_init__(self) -> None:
        # Read back from a recording, the status is a word: made the enum here.
        object.__setattr__(self, "status", NodeStatus(self.status))


EVENT_TYPES = EventTypes("an agent event", HelloReceived, SampleReceived, AgentErrorReported,
                         ReplyReceived, FrameRejected, AgentStatus)
FRAME_EVENTS: dict[str, type[AgentFrameEvent]] = {
    "hello": HelloReceived, "sample": SampleReceived, "error": AgentErrorReported,
    "reply": ReplyReceived,
}


def event_from_json(data: dict[str, Any]) -> Event:
    """Rebuild an event from its `to_json()` form (for replaying a recording); a kind not
    known raises UnknownEvent."""
    return EVENT_TYPES.decode(data)

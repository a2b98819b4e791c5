"""What the node says about its model servers, declared and read as untrusted input.

The node script (saf.inference.node_script) answers in JSON lines, each an event tagged by its
`event` field. Each is decoded here, whole, into one of the Structs below before anything
reads it (`read_answers`, the one gate): a line that is an object but not one of them fails the
call with the node's name and what was wrong; other output (a login script's echo) is counted
by reason (`BadLines`) and otherwise ignored. Never a crash.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from saf.errors import SafError
from saf.inference.engines import Engine

State = Literal["ready", "loading", "starting", "running", "exited", "bad", "unreachable"]
STATES: tuple[State, ...] = get_args(State)
UP_STATES: tuple[State, ...] = ("ready", "loading", "starting", "running")


@dataclass(frozen=True)
class Endpoint:
    """One model server saf started on a node, as its record and a live look describe it."""

    node: str
    port: int
    engine: str
    model: str
    state: State
    pid: int | None = None
    uptime: float | None = None  # seconds; None when it is not running
    host: str = "127.0.0.1"
    log: str = ""
    started: float | None = None  # epoch seconds
    argv: tuple[str, ...] = ()
    why: str = ""  # for bad and unreachable
    kept: str = ""  # the service that keeps it (model-NAME), "" when detached
    keeper: str = ""  # what runs that service: systemd, systemd-user, launchd-*, detached
    restarts: int | None = None  # how often its keeper restarted it
    mark: UpMark | None = None  # saf up's mark on a detached server (saf.up.orphans)

    @property
    def key(self) -> str:
        return f"{self.node}:{self.port}"

    @property
    def up(self) -> bool:
        return self.state in UP_STATES

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "port": self.port, "engine": self.engine,
                "model": self.model, "state": self.state, "pid": self.pid,
                "uptime": self.uptime, "host": self.host, "log": self.log,
                "started": self.started, "argv": list(self.argv), "why": self.why,
                "kept": self.kept or None, "keeper": self.keeper or None,
                "restarts": self.restarts}

    @property
    def state_text(self) -> str:
        """The state as a table's cell shows it, short (it sits beside PID and CHECKED in 120
        columns): a kept server's restarts; a dead detached one is down for good (nothing
        restarts it: `state_why` says so in words)."""
        if self.state == "exited" and not self.kept:
            return "down (not kept)"
        if self.kept and self.restarts:
            return f"{self.state}, {self.restarts} restart{'s' if self.restarts != 1 else ''}"
        return self.state

    @property
    def state_why(self) -> str:
        """What a state's cell leaves out, said under the table or beside the endpoint
        ("" when nothing)."""
        if self.state == "exited" and not self.kept:
            return ("the server died and nothing restarts it: it was started detached, not "
                    "kept by the node's init system (`saf models restart " + self.key + "`)")
        return self.why


@dataclass
class BadLines:
    """Lines from a node that were not what the protocol says, by reason."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class ModelServerError(SafError):
    """A node's model server could not be started, stopped or read."""

    title = "Model serving"


Text = Annotated[str, Meta(max_length=4096)]
Port = Annotated[int, Meta(ge=1, le=65535)]
Lines = Annotated[tuple[str, ...], Meta(max_length=10_000)]


class KeptBy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a kept server (persist = true) is kept: its service and the manager running it."""

    service: Text
    manager: Text
    log: Text = ""


class UpMark(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """saf up's mark on a server it started detached (persist = false): the cluster whose
    saf.toml declared it and the model's name there (saf.up.orphans: not declared once
    saf.toml drops it). A server a plain `saf run models` started has none."""

    cluster: Text
    model: Text


class ModelServerRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True,
                        kw_only=True):
    """A server's record on the node (~/.saf/serve/PORT.json), as the node script relays it."""

    saf_serve: int
    port: Port
    host: Annotated[str, Meta(max_length=255)]
    engine: Engine
    model: Text
    pid: Annotated[int, Meta(ge=2, le=2**31)]
    pid_start: Text | None = None
    started: Annotated[float, Meta(ge=0, le=1e12)]
    log: Text
    argv: Annotated[tuple[str, ...], Meta(max_length=1000)]
    kept: KeptBy | None = None  # None: started detached, not kept
    restarts: Annotated[int, Meta(ge=0, le=2**31)] | None = None
    up: UpMark | None = None


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="event"):
    """One line of the node script's answer."""


class ServerSeen(Event, tag="server", frozen=True):
    record: ModelServerRecord
    state: State
    uptime: Annotated[float, Meta(ge=-60, le=1e12)] | None


class RecordBad(Event, tag="bad", frozen=True):
    port: Port
    why: Text


class ServerStarted(Event, tag="started", frozen=True):
    record: ModelServerRecord


class ServerSkipped(Event, tag="skipped", frozen=True):
    record: ModelServerRecord
    state: State


class ServerReady(Event, tag="ready", frozen=True):
    record: ModelServerRecord
    seconds: Annotated[float, Meta(ge=0, le=1e12)]


class StartFailed(Event, tag="failed", frozen=True):
    why: Text
    tail: Lines


class ServerStopped(Event, tag="stopped", frozen=True):
    port: Port
    was: ModelServerRecord | None
    why: Text = ""
    killed: bool = False


class ServerLog(Event, tag="logs", frozen=True):
    port: Port
    path: Text
    lines: Lines | None


NodeEvent = (ServerSeen | RecordBad | ServerStarted | ServerSkipped | ServerReady | StartFailed
             | ServerStopped | ServerLog)
_DECODER = msgspec.json.Decoder(NodeEvent)


def read_answers(node: str, text: str, bad: BadLines) -> list[NodeEvent]:
    """The node script's events among the node's output lines. A line that is not a JSON
    object is other output, counted in `bad`; an object that is not one of the events (a
    field missing, of the wrong type or out of range) fails with ModelServerError naming the node,
    the line and the field."""
    found: list[NodeEvent] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            bad.add("not_json")
            continue
        try:
            found.append(_DECODER.decode(line))
        except msgspec.DecodeError as exc:
            raise ModelServerError(f"{node}: line {number} of the serve helper's answer is not "
                                   f"what saf expects: {str(exc)[:300]}") from None
    return found


def endpoint_of(node: str, record: ModelServerRecord, state: State,
                uptime: float | None) -> Endpoint:
    """The Endpoint a checked record describes, in `state`."""
    kept = record.kept
    return Endpoint(node, record.port, record.engine, record.model, state, record.pid,
                    None if uptime is None else max(uptime, 0.0), record.host, record.log,
                    record.started, record.argv, kept=kept.service if kept else "",
                    keeper=kept.manager if kept else "", restarts=record.restarts,
                    mark=record.up)

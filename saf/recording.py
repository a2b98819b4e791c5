"""Recordings of a cluster's agent streams, and replaying them with no cluster.

A recording is a JSON-lines file. The first line is a header:

    {"saf_recording": 1, "started": 1763900000.0, "cluster": "lab",
     "nodes": [{"name": "alpha", "host": "10.0.0.1", "roles": ["head"], "tags": [], "os": null}]}

and every other line one agent event exactly as `Event.to_json()` writes it (`event` kind,
`time` = when saf received it, `node`, ...), except that a frame event keeps only its `raw`
line: the frame is decoded again on reading, so the file holds each frame once. Replaying
feeds the same events, at their recorded pace (scaled by `speed`), to a `MetricsStore` and a
callback, just as the live `NodeLinks` does, so every consumer works on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import msgspec

from saf.errors import ConfigError, SafError
from saf.events import Emit, Event, ignore
from saf.inventory.model import Node
from saf.metrics.events import (
    AgentFrameEvent,
    AgentStatus,
    NodeStatus,
    SampleReceived,
    event_from_json,
)
from saf.metrics.frames import read_frame
from saf.metrics.store import MetricsStore
from saf.paths import open_private

FORMAT_VERSION = 1
# A playing replay delivers what has come due this often (wall-clock seconds), not at each
# event's own moment: 64 unsynchronised nodes at 1 Hz would wake the event loop 64 times a
# second, and the cockpit hands samples to its screens once a second anyway.
PACE = 0.25


class NodeHeader(msgspec.Struct):
    """A node as a recording's header and `saf serve`'s hello name it (the hello carries
    these too: saf.serve.messages.HubHello)."""

    name: str
    host: str | None = None  # None or "": the name
    roles: list[str] | None = None
    tags: list[str] | None = None
    os: str | None = None


class RecordingHeader(msgspec.Struct):
    """A recording's first line (see the module's doc); fields a newer saf adds are let
    through."""

    saf_recording: int
    started: float | None = None
    cluster: str | None = None
    nodes: list[NodeHeader] | None = None


def node_header(node: Node) -> NodeHeader:
    return NodeHeader(name=node.name, host=node.host, roles=list(node.roles),
                      tags=list(node.tags), os=node.os)


def header_node(data: NodeHeader) -> Node:
    return Node(name=data.name, host=data.host or data.name, roles=tuple(data.roles or ()),
                tags=tuple(data.tags or ()), os=data.os)


def event_line(event: Event) -> str:
    data = event.to_json()
    if isinstance(event, AgentFrameEvent):
        data.pop("frame", None)
    return json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n"


def saf_stopping(event: Event) -> bool:
    """Whether the event is saf stopping its own link to a node (`stopped`: the cockpit or
    `saf record` quitting), not news of the node. A recording ends where the cluster was last
    watched: with these kept, every replay ended on its nodes stopped, a header of `0/3 up`
    above rows of figures."""
    return isinstance(event, AgentStatus) and event.status == NodeStatus.STOPPED


class RecordingWriter:
    """Appends events to a recording file; `write` is an `Emit`."""

    def __init__(self, path: Path, nodes: Sequence[Node], *, cluster: str = "saf",
                 started: float | None = None) -> None:
        self.path = Path(path)
        self.count = 0
        try:
            self._file: IO[str] | None = open_private(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise SafError(f"cannot write the recording {self.path}: {exc.strerror}") from None
        header = {"saf_recording": FORMAT_VERSION,
                  "started": time.time() if started is None else started,
                  "cluster": cluster, "nodes": [node_header(n) for n in nodes]}
        self._file.write(json.dumps(msgspec.to_builtins(header)) + "\n")

    def write(self, event: Event) -> None:
        if self._file is None or not hasattr(event, "node") or saf_stopping(event):
            return
        self._file.write(event_line(event))
        self.count += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Recording:
    path: Path | None
    started: float
    cluster: str
    nodes: tuple[Node, ...]
    events: tuple[Event, ...]

    @property
    def start(self) -> float:
        """Recording time of the first event (or the header's start when there is none)."""
        return self.events[0].time if self.events else self.started

    @property
    def end(self) -> float:
        return self.events[-1].time if self.events else self.started

    @property
    def duration(self) -> float:
        return self.end - self.start


def parse_event(data: dict[str, Any]) -> Event:
    """A recorded event; a frame goes through the same gate as a live one (a recording is a
    file anyone can edit), and a bad one raises FrameError (a ValueError) saying why."""
    if "raw" in data and "frame" not in data and data.get("event", "").startswith("agent_") \
            and data.get("event") != "agent_bad_frame":
        frame, typed = read_frame(str(data["raw"]) + "\n")
        data = dict(data, frame=frame, typed=typed)
    return event_from_json(data)


def load_recording(path: Path) -> Recording:
    """Read a recording; a damaged file is a ConfigError naming the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read the recording: {exc.strerror}") from None
    return parse_recording(text.splitlines(), path)


def parse_recording(lines: Iterable[str], path: Path | None = None) -> Recording:
    header: RecordingHeader | None = None
    events: list[Event] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ConfigError(path, f"not JSON: {exc}", line=number) from None
        if header is None:
            if not isinstance(data, dict) or data.get("saf_recording") != FORMAT_VERSION:
                raise ConfigError(path, "not a saf recording (the first line must be its "
                                  f"header with saf_recording = {FORMAT_VERSION})", line=number)
            try:
                header = msgspec.convert(data, RecordingHeader)
            except msgspec.ValidationError as exc:
                raise ConfigError(path, f"the recording's header is not valid: {exc}",
                                  line=number) from None
            continue
        try:
            event = parse_event(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(path, f"not a recorded event: {exc}", line=number) from None
        if not saf_stopping(event):  # older recordings end with them: see saf_stopping
            events.append(event)
    if header is None:
        raise ConfigError(path, "empty recording")
    events.sort(key=lambda e: e.time)  # appended by one writer, but be sure: replay needs order
    events = _up_from_the_start(events)
    return Recording(path=path, started=header.started or 0.0,
                     cluster=header.cluster or "saf",
                     nodes=tuple(header_node(n) for n in header.nodes or ()),
                     events=tuple(events))


def _up_from_the_start(events: list[Event]) -> list[Event]:
    """A recording started while the cockpit ran (R) begins with samples, its nodes' hellos
    long past: samples were coming, so each such node's link was up. Said so before its first
    sample, else the replay shows every node stale to the end."""
    seen: set[str] = set()
    out: list[Event] = []
    for event in events:
        node = getattr(event, "node", None)
        if isinstance(node, str) and node not in seen:
            seen.add(node)
            if isinstance(event, SampleReceived):
                out.append(AgentStatus(node=node, status=NodeStatus.UP, time=event.time))
        out.append(event)
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReplayPosition(Event):
    """The replay was steered (started, paused, resumed, sought, sped up or slowed down) or
    reached the end. `time` is the recording's clock at `position` seconds from its start.
    While it plays on, the position is read from `Replayer.position` when it is shown."""

    kind: ClassVar[str] = "replay_position"
    position: float
    duration: float
    paused: bool
    speed: float
    finished: bool


class Replayer:
    """Plays a recording into `store` and `emit`, like a `NodeLinks` does with live agents.

    `start()` begins playing in the background at `speed`; `pause()`, `resume()`, `seek()`
    and `set_speed()` steer it; `clock()` is the recording's time now, for "how old is this
    sample". `instant=True` (tests, snapshots) applies every event up to `until` seconds
    (default: all) during `start()` and stays paused there, with no background task.
    """

    def __init__(self, recording: Recording, emit: Emit = ignore, *, speed: float = 1.0,
                 store: MetricsStore | None = None, instant: bool = False,
                 until: float | None = None, start_at: float = 0.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.recording = recording
        self.nodes = recording.nodes
        self.store = store if store is not None else MetricsStore()
        self.speed = speed
        self.instant = instant
        self._until = until
        self._start_at = start_at
        self._emit = emit
        self._index = 0
        self._position = 0.0            # seconds from the start, as of _anchor
        self._anchor = time.monotonic()
        self.paused = instant
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the clock --------------------------------------------------------------------------
    @property
    def position(self) -> float:
        if self.paused:
            return self._position
        moved = (time.monotonic() - self._anchor) * self.speed
        return min(self._position + moved, self.recording.duration)

    def clock(self) -> float:
        return self.recording.start + self.position

    @property
    def finished(self) -> bool:
        return self._index >= len(self.recording.events)

    # -- steering ---------------------------------------------------------------------------
    def _set_position(self, position: float) -> None:
        self._position = max(0.0, min(position, self.recording.duration))
        self._anchor = time.monotonic()

    def _announce(self) -> None:
        self._deliver(ReplayPosition(time=self.clock(), position=self.position,
                                     duration=self.recording.duration, paused=self.paused,
                                     speed=self.speed, finished=self.finished), apply=False)

    def pause(self) -> None:
        if not self.paused:
            self._set_position(self.position)
            self.paused = True
            self._wake.set()
            self._announce()

    def resume(self) -> None:
        if self.paused:
            self._anchor = time.monotonic()
            self.paused = False
            self._wake.set()
            self._announce()

    def toggle(self) -> None:
        self.resume() if self.paused else self.pause()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._set_position(self.position)
        self.speed = speed
        self._wake.set()
        self._announce()

    def seek(self, position: float) -> None:
        """Jump to `position` seconds from the start. Going back rebuilds the store from the
        beginning (histories included), so what is shown is what was known at that moment."""
        target = max(0.0, min(position, self.recording.duration))
        if target < self.position:
            self._reset_store()
        self._set_position(target)
        self._apply_until(self.recording.start + target)
        self._wake.set()
        self._announce()

    def _reset_store(self) -> None:
        fresh = MetricsStore(self.store.capacity, self.store.max_metrics)
        # Reset in place, so everyone holding the store keeps the same object.
        self.store.__dict__.update(fresh.__dict__)
        for node in self.nodes:
            self.store.add_node(node.name)
        self._index = 0

    # -- playing ----------------------------------------------------------------------------
    def _deliver(self, event: Event, apply: bool = True) -> None:
        if apply:
            self.store.apply(event)
        self._emit(event)

    def _apply_until(self, when: float) -> None:
        events = self.recording.events
        while self._index < len(events) and events[self._index].time <= when:
            self._deliver(events[self._index])
            self._index += 1

    async def start(self) -> None:
        for node in self.nodes:
            self.store.add_node(node.name)
        if self.instant:
            until = self.recording.duration if self._until is None else self._until
            self._set_position(until)
            self._apply_until(self.recording.start + until)
            self._announce()
            return
        if self._start_at:
            self.seek(self._start_at)
        if self._task is None:
            self._anchor = time.monotonic()
            self._task = asyncio.create_task(self._run(), name="saf-replay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self.paused:
                self._apply_until(self.clock())  # what is due: never ahead of the clock
                if self.finished:
                    self.pause()
                    continue
            if self.paused:
                await self._wake.wait()
                continue
            # Steering takes effect at once (pause, seek and a new speed move the clock
            # themselves); this loop only delivers what falls due, at a steady pace.
            await asyncio.sleep(PACE)

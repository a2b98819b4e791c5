"""The events of a recipe run. The runner emits them; the JSONL log, the Rich view, `--json`
and the cockpit's recipe screen consume them, and `saf runs show` replays them."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import Any, ClassVar

import msgspec

from saf.events import Event, EventTypes


class StepStatus(StrEnum):
    """A step on a node. A StrEnum: run logs, `--json` and the hub's wire carry these very
    words, so logs written before it was one still load."""

    PENDING = "pending"      # not started
    RUNNING = "running"
    OK = "ok"                # ran (or a probe passed) and changed nothing
    CHANGED = "changed"      # changed the node (under --check: would change)
    SKIPPED = "skipped"      # nothing to do, or not for this node
    FAILED = "failed"
    CANCELLED = "cancelled"  # stopped, or never started because the run stopped


class RunStatus(StrEnum):
    """A whole run: IDLE before its first event, RUNNING until its last; INTERRUPTED when
    saf itself died during it (its log has no end)."""

    IDLE = "idle"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


DONE = frozenset({StepStatus.OK, StepStatus.CHANGED, StepStatus.SKIPPED})  # without trouble
WOULD_CHANGE = "would change"


def status_label(status: str, check: bool) -> str:
    """A status (a StepStatus, RunStatus, or a count's key read from a log) as a person reads
    it: under --check nothing changed, a step only would."""
    return WOULD_CHANGE if check and status == StepStatus.CHANGED else str(status)


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """One step as a run's first line lists it (and the run's screens read it)."""

    index: int
    name: str
    nodes: list[str]  # the nodes it runs on
    describe: str = ""
    kind: str = ""
    on: str = ""
    on_failure: str = ""  # "continue": a failure the step allows


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    """First line of every log: enough to list the run, show it and resume it."""

    kind: ClassVar[str] = "run_started"
    run: str
    recipe: str
    path: str | None
    cluster: str = ""  # the inventory's [cluster] name: history is kept per cluster
    description: str = ""
    vars: dict[str, str] = dataclasses.field(default_factory=dict)
    selector: str | None = None
    check: bool = False
    steps: list[StepInfo] = dataclasses.field(default_factory=list)  # in order
    nodes: list[str] = dataclasses.field(default_factory=list)
    pid: int = 0
    pid_started: float = 0.0
    resumed_from: str | None = None
    start_step: int = 0


    def __post_init__(self) -> None:
        # Read back from a log, the steps are objects: made StepInfo here, checked whole (a
        # ValueError naming the field, so a damaged line is skipped as a torn one is).
        if any(not isinstance(step, StepInfo) for step in self.steps):
            try:
                steps = msgspec.convert(self.steps, list[StepInfo])
            except msgspec.ValidationError as exc:
                raise ValueError(f"run_started: {exc}") from None
            object.__setattr__(self, "steps", steps)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"
    step: int
    name: str
    nodes: list[str]
    # Why the step has no nodes, when it has none ("no node matches os:macos").
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeStepStarted(Event):
    kind: ClassVar[str] = "node_step_started"
    step: int
    node: str
    attempt: int = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepOutput(Event):
    kind: ClassVar[str] = "step_output"
    step: int
    node: str
    stream: str
    line: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepOutputDropped(Event):
    """A run log keeps a step's first and last lines on a node; this says how many lines (and
    bytes) between them it left out. Written before the kept tail."""

    kind: ClassVar[str] = "step_output_dropped"
    step: int
    node: str
    lines: int
    bytes: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeStepFinished(Event):
    """A step ended on a node. In a --check run, `would` lists what would have run."""

    kind: ClassVar[str] = "node_step_finished"
    step: int
    node: str
    status: StepStatus
    duration: float = 0.0
    message: str = ""
    exit_status: int | None = None
    tail: list[str] = dataclasses.field(default_factory=list)
    attempts: int = 1
    would: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        # Read back from JSON, the status is a word: made the enum here (ValueError if unknown).
        object.__setattr__(self, "status", StepStatus(self.status))


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepFinished(Event):
    kind: ClassVar[str] = "step_finished"
    step: int
    name: str
    counts: dict[str, int]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    """Last line of a log. status: ok, failed, cancelled or interrupted (saf itself died)."""

    kind: ClassVar[str] = "run_finished"
    run: str
    status: RunStatus
    duration: float = 0.0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    message: str = ""
    # node -> reason -> how many lines its command session (saf.connect.session) sent that
    # were not frames: counted and dropped, never shown (what a node sends is untrusted).
    bad_frames: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RunStatus(self.status))


EVENT_TYPES = EventTypes("a recipe run's event", RunStarted, StepStarted, NodeStepStarted,
                         StepOutput, StepOutputDropped, NodeStepFinished, StepFinished,
                         RunFinished)


def from_json(data: dict[str, Any]) -> Event:
    """The event a log line holds; a kind this saf does not know raises UnknownEvent."""
    return EVENT_TYPES.decode(data)

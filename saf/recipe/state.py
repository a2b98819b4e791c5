"""The picture of one run, built from its events: each (step, node) cell's status, duration,
message and output. The cockpit's recipe screen draws it; it is fed live by the runner or by
replaying a JSONL log, so the screen never talks to a node itself."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from saf.events import Event
from saf.recipe.events import (
    NodeStepFinished,
    NodeStepStarted,
    RunFinished,
    RunStarted,
    RunStatus,
    StepInfo,
    StepOutput,
    StepStatus,
)

CELL_LINES = 500  # output lines kept per cell


@dataclass
class Cell:
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    started: float | None = None
    duration: float | None = None
    message: str = ""
    exit_status: int | None = None
    would: list[str] = field(default_factory=list)
    output: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=CELL_LINES))


@dataclass
class RunState:
    started: RunStarted | None = None
    finished: RunFinished | None = None
    cells: dict[tuple[int, str], Cell] = field(default_factory=dict)
    last_time: float = 0.0

    @property
    def status(self) -> RunStatus:
        if self.finished is not None:
            return self.finished.status
        return RunStatus.RUNNING if self.started is not None else RunStatus.IDLE

    @property
    def steps(self) -> list[StepInfo]:
        return list(self.started.steps) if self.started else []

    @property
    def nodes(self) -> list[str]:
        return list(self.started.nodes) if self.started else []

    def cell(self, step: int, node: str) -> Cell | None:
        """The cell, or None when the step does not run on that node."""
        for item in self.steps:
            if item.index == step:
                if node not in item.nodes:
                    return None
                return self.cells.setdefault((step, node), Cell())
        return None

    def apply(self, event: Event) -> None:
        self.last_time = max(self.last_time, event.time)
        if isinstance(event, RunStarted):
            self.started, self.finished, self.cells = event, None, {}
        elif isinstance(event, NodeStepStarted):
            cell = self.cells.setdefault((event.step, event.node), Cell())
            cell.status, cell.attempt, cell.started = StepStatus.RUNNING, event.attempt, event.time
        elif isinstance(event, StepOutput):
            cell = self.cells.setdefault((event.step, event.node), Cell())
            cell.output.append((event.stream, event.line))
        elif isinstance(event, NodeStepFinished):
            cell = self.cells.setdefault((event.step, event.node), Cell())
            cell.status, cell.duration, cell.message = event.status, event.duration, event.message
            cell.exit_status, cell.would, cell.attempt = event.exit_status, event.would, \
                event.attempts
            if event.status == StepStatus.FAILED and not cell.output:
                cell.output.extend(("stderr", line) for line in event.tail)
        elif isinstance(event, RunFinished):
            self.finished = event

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for step in self.steps:
            for node in step.nodes:
                cell = self.cells.get((step.index, node))
                status = cell.status if cell else StepStatus.PENDING
                out[status] = out.get(status, 0) + 1
        return out


def replay(events: list[Event]) -> RunState:
    state = RunState()
    for event in events:
        state.apply(event)
    return state

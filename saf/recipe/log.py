"""Run logs: one JSONL file per run in saf's state folder, written a whole line at a time.

Each event is one `os.write` of one line to a file opened O_APPEND, so a reader (or a saf
killed mid-run) never sees half a line. The first line is `run_started` (with the pid and the
pid's start time), the last `run_finished`. A step's output on a node is kept as its first
`HEAD_LINES` and last `TAIL_LINES` lines (each line at most `LINE_CHARS`), with one
`step_output_dropped` record counting what was left between them: a step printing 20 MB
wrote an 80 MB log, and every later `saf runs` read it whole (a summary now skips output
lines unparsed). A log without `run_finished` whose process is gone (or is a different
process with the same pid) is marked `interrupted` the next time saf looks.
"""

from __future__ import annotations

import json
import os
import secrets as tokens
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from saf import paths, secrets
from saf.errors import SafError
from saf.events import Event
from saf.recipe.events import (
    DONE,
    NodeStepFinished,
    RunFinished,
    RunStarted,
    RunStatus,
    StepOutput,
    StepOutputDropped,
    from_json,
)

HEAD_LINES = 1000  # of a step's output on a node, written as it comes
TAIL_LINES = 1000  # held back, written when the step ends there
LINE_CHARS = 16 * 1024  # a longer line is cut (its dropped characters counted)


def runs_dir() -> Path:
    return paths.state_dir() / "runs"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + tokens.token_hex(2)


def process_started(pid: int | None = None) -> float:
    """When a process started (seconds since the epoch), to tell a reused pid apart."""
    import psutil  # here: saf up and saf down read this module before they connect

    try:
        return psutil.Process(pid or os.getpid()).create_time()
    except psutil.Error:
        return 0.0


class RunLog:
    """Appends a run's events to its JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        paths.private_dir(path.parent)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._outputs: dict[tuple[int, str], _Kept] = {}

    @classmethod
    def create(cls, run_id: str, folder: Path | None = None) -> RunLog:
        return cls((folder or runs_dir()) / f"{run_id}.jsonl")

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepOutput):
            self._output(event)
            return
        if isinstance(event, NodeStepFinished):
            self._flush_output((event.step, event.node))
        elif isinstance(event, RunFinished):
            for key in list(self._outputs):
                self._flush_output(key)
        self.write(event.to_json())

    def _output(self, event: StepOutput) -> None:
        kept = self._outputs.setdefault((event.step, event.node), _Kept())
        line = event.line
        if len(line) > LINE_CHARS:
            kept.dropped_bytes += len(line.encode()) - LINE_CHARS
            line = line[:LINE_CHARS]
            event = StepOutput(step=event.step, node=event.node, stream=event.stream,
                               line=line, time=event.time)
        if kept.written < HEAD_LINES:
            kept.written += 1
            self.write(event.to_json())
            return
        if len(kept.tail) == TAIL_LINES:
            gone = kept.tail.popleft()
            kept.dropped_lines += 1
            kept.dropped_bytes += len(gone.line.encode()) + 1
        kept.tail.append(event)

    def _flush_output(self, key: tuple[int, str]) -> None:
        kept = self._outputs.pop(key, None)
        if kept is None:
            return
        if kept.dropped_lines or kept.dropped_bytes:
            self.write(StepOutputDropped(step=key[0], node=key[1], lines=kept.dropped_lines,
                                         bytes=kept.dropped_bytes).to_json())
        for event in kept.tail:
            self.write(event.to_json())

    def write(self, data: dict[str, Any]) -> None:
        if self._fd is None:
            return
        # Every event already passed the runner's gate; a log written by anything else is
        # hidden the same way (a secret never reaches a file saf keeps).
        line = (json.dumps(secrets.scrub(data), default=str, ensure_ascii=False) + "\n"
                ).encode()
        os.write(self._fd, line)

    def touch(self) -> None:
        """Say 'still running' without a line: the file's time becomes now. A run whose saf
        is killed outright then reads as interrupted after its last touch, not its last
        event (a silent 4 s step would otherwise log 0.1 s)."""
        if self._fd is not None:
            os.utime(self._fd)

    def close(self) -> None:
        for key in list(self._outputs):
            self._flush_output(key)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class _Kept:
    """What a log holds back of one step's output on one node."""

    written: int = 0
    tail: deque[StepOutput] = field(default_factory=deque)
    dropped_lines: int = 0
    dropped_bytes: int = 0


_OUTPUT = '{"event": "step_output"'


def read_events(path: Path, *, output: bool = True) -> list[Event]:
    """Every event of a log; a torn or unknown line is skipped. `output=False` skips the
    steps' output lines without parsing them (what a summary needs)."""
    events: list[Event] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a line still being written
            if not output and line.startswith(_OUTPUT) and not line.startswith(
                    '{"event": "step_output_dropped"'):
                continue
            try:
                events.append(from_json(json.loads(line)))
            except (ValueError, TypeError):  # UnknownEvent is a ValueError
                continue
    return events


def _alive(started: RunStarted) -> bool:
    import psutil

    try:
        proc = psutil.Process(started.pid)
        return abs(proc.create_time() - started.pid_started) < 1.0
    except psutil.Error:
        return False


@dataclass
class RunSummary:
    """What `saf runs` shows, and what --resume needs."""

    run: str
    path: Path
    started: RunStarted
    finished: RunFinished | None
    results: dict[tuple[int, str], NodeStepFinished] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        return self.finished.status if self.finished else RunStatus.RUNNING

    def first_unfinished_step(self) -> int | None:
        """The index of the first step that did not end well on all its nodes (a failure
        the step allowed with on_failure=continue counts as finished)."""
        for step in self.started.steps:
            index = step.index
            if index < self.started.start_step:
                continue
            for node in step.nodes:
                result = self.results.get((index, node))
                if result is None or (result.status not in DONE
                                      and step.on_failure != "continue"):
                    return index
        return None


def summarize(path: Path, *, mark_interrupted: bool = True) -> RunSummary | None:
    events = read_events(path, output=False)
    if not events or not isinstance(events[0], RunStarted):
        return None
    started = events[0]
    summary = RunSummary(started.run, path, started, None)
    for event in events:
        if isinstance(event, NodeStepFinished):
            summary.results[(event.step, event.node)] = event
        elif isinstance(event, RunFinished):
            summary.finished = event
    if summary.finished is None and not _alive(started) and mark_interrupted:
        # The last sign of life: its last event, or the last touch of a quiet run.
        last = max(events[-1].time, path.stat().st_mtime)
        finished = RunFinished(run=started.run, status=RunStatus.INTERRUPTED,
                               duration=max(0.0, last - started.time),
                               message="saf stopped before the run finished")
        log = RunLog(path)
        try:
            log(finished)
        finally:
            log.close()
        summary.finished = finished
    return summary


def list_runs(folder: Path | None = None, *, cluster: str | None = None) -> list[RunSummary]:
    """Past runs, oldest first: of one cluster (by its [cluster] name) or, with None, all."""
    folder = folder or runs_dir()
    if not folder.is_dir():
        return []
    out = [s for p in sorted(folder.glob("*.jsonl")) if (s := summarize(p)) is not None
           and (cluster is None or s.started.cluster == cluster)]
    return sorted(out, key=lambda s: s.started.time)


def find_run(run: str, folder: Path | None = None, *, cluster: str | None = None) -> RunSummary:
    """A run by id, unique id prefix, or "last" (of `cluster`'s runs when given)."""
    runs = list_runs(folder, cluster=cluster)
    if run == "last":
        if not runs:
            raise SafError("no runs yet")
        return runs[-1]
    matches = [s for s in runs if s.run == run] or [s for s in runs if s.run.startswith(run)]
    if len(matches) != 1:
        hint = "no run" if not matches else f"{len(matches)} runs"
        raise SafError(f"{hint} matching {run!r} (see `saf runs`)")
    return matches[0]


def _ends_finished(path: Path) -> bool:
    """Whether the log's last line is run_finished (read from the end, cheaply)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 8192))
        tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return b'"event": "run_finished"' in tail


def sweep(folder: Path | None = None) -> list[str]:
    """Mark the runs whose saf died as interrupted; their ids."""
    folder = folder or runs_dir()
    marked = []
    if folder.is_dir():
        for path in folder.glob("*.jsonl"):
            if not _ends_finished(path):
                summary = summarize(path)
                if summary is not None and summary.status == RunStatus.INTERRUPTED:
                    marked.append(summary.run)
    return marked

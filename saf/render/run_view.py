"""`saf run` on a terminal: a live line per node of the running step (spinner, duration, last
output), a permanent line per node as each step ends (with the output of failures), and a
summary table of steps x nodes at the end. The same view replays a log for `saf runs show`."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from saf.events import Event
from saf.format import fmt_some
from saf.recipe.events import (
    DONE,
    NodeStepFinished,
    NodeStepStarted,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepInfo,
    StepOutput,
    StepOutputDropped,
    StepStarted,
    StepStatus,
    status_label,
)
from saf.render.columns import Column, fit
from saf.render.console import console, node_style, seconds

STATUS_STYLE: dict[str, str] = {
    StepStatus.OK: "green", StepStatus.CHANGED: "yellow", StepStatus.SKIPPED: "dim",
    StepStatus.FAILED: "bold red", StepStatus.CANCELLED: "magenta", StepStatus.RUNNING: "cyan",
    RunStatus.INTERRUPTED: "magenta"}
STATUS_MARK: dict[str, str] = {
    StepStatus.OK: "✓", StepStatus.CHANGED: "●", StepStatus.SKIPPED: "–", StepStatus.FAILED: "✗",
    StepStatus.CANCELLED: "⊘", StepStatus.RUNNING: "◌", StepStatus.PENDING: "·"}
TAIL_LINES = 12


class RunView:
    """Consumes run events. With `live`, keeps a spinner area for running nodes."""

    def __init__(self, *, live: bool = True, verbose: bool = False) -> None:
        self.out = console()
        self.live_enabled = live and self.out.is_terminal
        self.verbose = verbose
        self.started: RunStarted | None = None
        self.finished: RunFinished | None = None
        self.nodes: list[str] = []
        self.width = 4
        self.running: dict[tuple[int, str], tuple[float, int]] = {}
        self.last_line: dict[tuple[int, str], str] = {}
        self.output: dict[tuple[int, str], deque[str]] = {}
        self.results: dict[tuple[int, str], NodeStepFinished] = {}
        self._live: Live | None = None

    # -- live area ------------------------------------------------------------------------
    def __rich__(self) -> RenderableType:
        rows = []
        now = time.monotonic()
        for (step, node), (began, attempt) in sorted(self.running.items()):
            line = Text(f"  {node:<{self.width}}  ", style=node_style(self.nodes, node))
            line += Text(f"{now - began:5.1f} s", style="cyan")
            if attempt > 1:
                line += Text(f"  try {attempt}", style="yellow")
            last = self.last_line.get((step, node))
            if last:
                line += Text("  " + last[:100], style="dim")
            rows.append(Spinner("dots", text=line, style="cyan"))
        return Group(*rows)

    def pause(self) -> None:
        """Stop redrawing (e.g. while a password is asked for)."""
        if self._live is not None:
            self._live.stop()

    def resume(self) -> None:
        if self._live is not None:
            self._live.start()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- events ---------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run_started(event)
        elif isinstance(event, StepStarted):
            step = self._step(event.step)
            count = len(event.nodes)
            where = (f"{count} node{'s' if count != 1 else ''}" if count else
                     f"no nodes: {event.reason}, skipped" if event.reason else "no nodes")
            self.out.print(Text.assemble(
                ("\n▶ ", "bold"),
                (f"{event.step + 1}/{len(self.started.steps) if self.started else '?'} ", "dim"),
                (event.name, "bold"), (f"  {step.describe}  " if step else "  ", "dim"),
                (f"({where})", "dim")))
        elif isinstance(event, NodeStepStarted):
            self.running[(event.step, event.node)] = (time.monotonic(), event.attempt)
            if event.attempt > 1:
                self.out.print(Text(f"  {event.node:<{self.width}}  retrying (try "
                                    f"{event.attempt})", style="yellow"))
        elif isinstance(event, StepOutput):
            key = (event.step, event.node)
            self.last_line[key] = event.line
            self.output.setdefault(key, deque(maxlen=TAIL_LINES)).append(event.line)
            if self.verbose:
                self.out.print(Text(f"  {event.node:<{self.width}} │ ",
                                    style=node_style(self.nodes, event.node))
                               + Text(event.line, style="red" if event.stream == "stderr" else ""))
        elif isinstance(event, StepOutputDropped):
            self.out.print(Text(f"  {event.node:<{self.width}} │ ", style=node_style(
                self.nodes, event.node)) + Text(
                    f"… {event.lines:,} lines ({event.bytes:,} bytes) of output not kept in "
                    "the log", style="yellow"))
        elif isinstance(event, NodeStepFinished):
            self._node_finished(event)
        elif isinstance(event, StepFinished):
            pass
        elif isinstance(event, RunFinished):
            self.finished = event
            self.close()
            self.summary()
        if self._live is not None:
            self._live.refresh()

    def _step(self, index: int) -> StepInfo | None:
        if self.started is None:
            return None
        return next((s for s in self.started.steps if s.index == index), None)

    def _run_started(self, event: RunStarted) -> None:
        self.started = event
        self.nodes = list(event.nodes)
        self.width = max((len(n) for n in self.nodes), default=4)
        title = Text.assemble(("recipe ", "dim"), (event.recipe, "bold"),
                              (f"  run {event.run}", "dim"))
        if event.check:
            title += Text("  --check: nothing will be changed", style="yellow")
        if event.resumed_from:
            title += Text(f"  resuming {event.resumed_from} from step {event.start_step + 1}",
                          style="yellow")
        self.out.print(title)
        if self.live_enabled and self._live is None:
            self._live = Live(self, console=self.out, refresh_per_second=8, transient=True)
            self._live.start()

    def _node_finished(self, event: NodeStepFinished) -> None:
        key = (event.step, event.node)
        self.running.pop(key, None)
        self.results[key] = event
        status = event.status
        label = status_label(status, self._check)
        line = Text(f"  {STATUS_MARK.get(status, '?')} ", style=STATUS_STYLE.get(status, ""))
        line += Text(f"{event.node:<{self.width}}  ", style=node_style(self.nodes, event.node))
        line += Text(f"{label:<12}" if self._check else f"{label:<9}",
                     style=STATUS_STYLE.get(status, ""))
        if event.attempts or event.duration:
            line += Text(f"  {seconds(event.duration):>8}", style="dim")
        if event.attempts > 1:
            line += Text(f"  after {event.attempts} tries", style="yellow")
        if event.message:
            line += Text(f"  {event.message}",
                         style="red" if status == StepStatus.FAILED else "dim")
        elif status in (StepStatus.OK, StepStatus.CHANGED) and self.output.get(key):
            line += Text(f"  → {self.output[key][-1][:100]}", style="dim")
        self.out.print(line)
        for command in event.would[:10]:
            # The whole first line: --check is read to know exactly what would run.
            lines = command.strip().splitlines() or [""]
            more = f"  (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
            self.out.print(Text(f"      would run: {lines[0][:2000]}{more}", style="yellow"))
        if status == StepStatus.FAILED:
            tail = event.tail or list(self.output.get(key, ()))
            for text in tail[-TAIL_LINES:]:
                self.out.print(Text(f"      │ {text}", style="red"))

    @property
    def _check(self) -> bool:
        return self.started is not None and self.started.check

    def _cell(self, step: StepInfo, node: str) -> Text:
        result = self.results.get((step.index, node))
        if node not in step.nodes:
            return Text("")
        if result is None:
            return Text("·", style="dim")
        return Text(status_label(result.status, self._check),
                    style=STATUS_STYLE.get(result.status, ""))

    def _matrix(self) -> Table | None:
        """Steps x nodes, each node's status in its own column; None when the nodes do not
        all fit the console as whole columns (saf.render.columns measures them)."""
        assert self.started is not None
        columns = [Column("STEP", "left")] + [Column(n, "center", 1) for n in self.nodes]
        rows = [[Text(f"{step.index + 1}. {step.name}")]
                + [self._cell(step, node) for node in self.nodes]
                for step in self.started.steps]
        if len(fit(columns, rows, self.out.width)) < len(columns):
            return None
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("STEP", no_wrap=True)
        for node in self.nodes:
            table.add_column(node, style=node_style(self.nodes, node), justify="center",
                             no_wrap=True)
        for row in rows:
            table.add_row(*row)
        return table

    def _per_step(self) -> Table:
        """One row per step: how many nodes ended each way, and which did not end well."""
        assert self.started is not None
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("STEP", no_wrap=True)
        table.add_column("NODES")
        for step in self.started.steps:
            by_status: dict[str, list[str]] = {}
            for node in step.nodes:
                result = self.results.get((step.index, node))
                by_status.setdefault(result.status if result else "not run", []).append(node)
            parts = Text()
            for status, nodes in sorted(by_status.items(), key=lambda kv: -len(kv[1])):
                if parts:
                    parts.append(", ")
                parts.append(f"{len(nodes)} {status_label(status, self._check)}",
                             style=STATUS_STYLE.get(status, "dim"))
                if status not in DONE:
                    parts.append(f" ({fmt_some(nodes, 8)})", style="dim")
            table.add_row(f"{step.index + 1}. {step.name}", parts)
        return table

    def summary(self) -> None:
        if self.started is None:
            return
        # 50 nodes as columns would be a grid of "…": a line per step instead.
        table = self._matrix() or self._per_step()
        self.out.print()
        self.out.print(table)
        finished = self.finished
        if finished is not None:
            counts = ", ".join(f"{n} {status_label(s, self._check)}"
                               for s, n in sorted(finished.counts.items()))
            self.out.print(Text.assemble(
                ("run ", "dim"), (finished.status, STATUS_STYLE.get(finished.status, "bold")),
                (f" in {seconds(finished.duration)}", "dim"),
                (f"  ({counts})" if counts else "", "dim"),
                (f"  {finished.message}" if finished.message else "", "dim")))
            for line in bad_frame_lines(finished):
                self.out.print(Text(line, style="yellow"))


def bad_frame_lines(finished: RunFinished) -> list[str]:
    """A line per node whose command session sent lines that were not frames: their count by
    reason, as `saf top` shows an agent's (never what they held)."""
    return [f"{node}: bad frames from its command session: "
            + ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
            for node, reasons in sorted(finished.bad_frames.items())]

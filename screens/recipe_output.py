"""The Recipes screen's output pane: the status, message, would-run commands and the last
lines of output of the selected (step, node) cell of a run."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from saf.screens.recipe_status import status_style
from saf.screens.widgets import palette
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from saf.recipe.events import StepStatus
from saf.recipe.state import RunState

LOG_LINES = 200


class RunOutput(VerticalScroll):
    def __init__(self) -> None:
        super().__init__(id="recipes-log-box", classes="panel")
        self.border_title = "Output"

    def compose(self) -> ComposeResult:
        yield Static(id="recipes-log")

    def show(self, state: RunState | None, selected: tuple[int, str] | None) -> None:
        pane = self.query_one("#recipes-log", Static)
        if state is None or selected is None:
            pane.update("")
            return
        v = palette(self.app)
        step_index, node = selected
        cell = state.cell(step_index, node)
        step = next((s for s in state.steps if s.index == step_index), None)
        name = step.name if step else str(step_index)
        self.border_title = f"Output · {name} on {node}"
        if cell is None:
            pane.update(Text("this step does not run on this node", style="dim"))
            return
        lines = [Text.assemble((cell.status, status_style(cell.status, v)),
                               (f"  {cell.message}" if cell.message else "", "dim"))]
        for command in cell.would:
            lines.append(Text(f"would run: {command}", style=v.get("warning", "yellow")))
        for stream, line in list(cell.output)[-LOG_LINES:]:
            lines.append(Text(line, style=v.get("error", "red") if stream == "stderr" else ""))
        if len(lines) == 1 and cell.status in (StepStatus.PENDING, StepStatus.RUNNING):
            lines.append(Text("no output yet", style="dim"))
        pane.update(Group(*lines))

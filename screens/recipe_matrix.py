"""The Recipes screen's steps x nodes matrix of one run (live or replayed): a cell per step
and node with its status, duration and attempt. Moving the cursor onto a cell selects it.

When the cells with their words ('● changed 0.2s') do not fit the pane's width (a tablet or a
phone), each cell is its mark and duration only ('● 0.2s'), coloured by status, rather than a
column cut inside a word; the output pane under it names the selected cell's status."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from saf.screens.recipe_status import status_style
from saf.screens.widgets import palette
from textual import events
from textual.message import Message
from textual.widgets import DataTable

from saf.recipe.events import StepStatus, status_label
from saf.recipe.state import Cell, RunState
from saf.render.run_view import STATUS_MARK


class RunMatrix(DataTable[str | Text]):
    @dataclass
    class CellSelected(Message):
        """The user moved onto a cell: its output belongs in the log pane."""

        step: int
        node: str

    def __init__(self) -> None:
        super().__init__(id="recipes-matrix", classes="panel flush", cursor_type="cell",
                         zebra_stripes=False)
        self.border_title = "Run"
        self.state: RunState | None = None
        self.selected: tuple[int, str] | None = None
        self._columns: list[str] = []
        self._compact = False

    def show(self, state: RunState) -> None:
        """Draw `state` from scratch (a new run, or a past one)."""
        self.state = state
        self.selected = None
        self.clear(columns=True)
        self._columns = []
        self.draw()

    def draw(self) -> None:
        """Bring the cells and the title up to date with the state."""
        state = self.state
        if state is None:
            return
        v = palette(self.app)
        check = state.started is not None and state.started.check
        compact = self._too_narrow(state, v, check)
        if compact != self._compact:
            self._compact = compact
            self._columns = []  # columns keep their widths: build them again
        if state.started is not None and self._columns != state.nodes:
            cursor = self.cursor_coordinate
            self.clear(columns=True)
            self.add_column("step", key="step")
            for node in state.nodes:
                self.add_column(node, key=node)
            self._columns = state.nodes
            for step in state.steps:
                self.add_row(f"{step.index + 1}. {step.name}",
                             *[_cell_text(state.cell(step.index, node), v, check, compact)
                               for node in state.nodes],
                             key=str(step.index))
            if self.is_valid_coordinate(cursor):
                self.move_cursor(row=cursor.row, column=cursor.column)
        for step in state.steps:
            for node in state.nodes:
                cell = state.cell(step.index, node)
                self.update_cell(str(step.index), node, _cell_text(cell, v, check, compact))
        title = "Run"
        if state.started is not None:
            title = f"{state.started.recipe} · run {state.started.run}"
            if state.started.check:
                title += " · check"
        counts = ", ".join(f"{n} {status_label(s, check)}"
                           for s, n in sorted(state.counts().items()))
        self.border_title = f"{title} · {state.status}" + (f" · {counts}" if counts else "")
        if self.selected is None and state.steps and state.nodes:
            self.selected = _default_cell(state)

    def _too_narrow(self, state: RunState, v: dict[str, str], check: bool) -> bool:
        """Whether the cells with their words are wider than the pane (unknown before layout:
        then they are not)."""
        width = self.scrollable_content_region.width
        if width <= 0 or not state.steps:
            return False
        pad = 2 * self.cell_padding
        need = pad + max(len(f"{s.index + 1}. {s.name}") for s in state.steps)
        for node in state.nodes:
            cells = [_cell_text(state.cell(s.index, node), v, check, False).cell_len
                     for s in state.steps]
            need += pad + max([len(node), *cells])
        return need > width

    def on_resize(self, _: events.Resize) -> None:
        if self.state is not None:
            self.draw()

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        event.stop()
        state = self.state
        if state is None or not state.steps:
            return
        row, column = event.coordinate.row, event.coordinate.column
        if column == 0 or row >= len(state.steps) or column - 1 >= len(state.nodes):
            return
        self.selected = (state.steps[row].index, state.nodes[column - 1])
        self.post_message(self.CellSelected(*self.selected))


def _default_cell(state: RunState) -> tuple[int, str]:
    """The first failed cell, else the first running one, else the first."""
    for wanted in (StepStatus.FAILED, StepStatus.RUNNING):
        for step in state.steps:
            for node in step.nodes:
                cell = state.cells.get((step.index, node))
                if cell and cell.status == wanted:
                    return step.index, node
    return state.steps[0].index, state.nodes[0]


def _cell_text(cell: Cell | None, v: dict[str, str], check: bool, compact: bool) -> Text:
    if cell is None:
        return Text("")
    mark = STATUS_MARK.get(cell.status, "?")
    words = mark if compact else f"{mark} {status_label(cell.status, check)}"
    text = Text(words, style=status_style(cell.status, v))
    if cell.duration is not None and cell.status not in (StepStatus.PENDING, StepStatus.RUNNING):
        text.append(f" {cell.duration:.1f}s", style="dim")
    if cell.attempt > 1:
        text.append(f" ×{cell.attempt}", style="dim")
    return text

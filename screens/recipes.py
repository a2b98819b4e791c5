"""The Recipes screen: pick a recipe, see its steps and the nodes each targets, run it (asking
for missing variables first), watch a live steps x nodes matrix with the output of the selected
cell, cancel it, and open any past run again.

The run itself is the core's `Runner` in an app worker; its events go to the JSONL log (so the
CLI's `saf runs` sees TUI runs too) and into a `RunState` that this screen draws. A past run is
the same `RunState` replayed from its log, so both look alike.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from saf import select as selectors
from saf.errors import SafError
from saf.recipe import library
from saf.recipe.log import RunLog, find_run, list_runs, new_run_id, read_events
from saf.recipe.model import Recipe
from saf.recipe.parse import load_recipe
from saf.recipe.state import RunState, replay
from saf.screens.confirm import ConfirmScreen
from saf.screens.widgets import StatusLine, palette

MARK = {"ok": "✓", "changed": "●", "skipped": "–", "failed": "✗", "cancelled": "⊘",
        "running": "◌", "pending": "·"}
LOG_LINES = 200


def _style(status: str, v: dict[str, str]) -> str:
    return {"ok": v.get("success", "green"), "changed": v.get("warning", "yellow"),
            "skipped": "dim", "failed": f"bold {v.get('error', 'red')}",
            "cancelled": v.get("secondary", "magenta"), "running": v.get("accent", "cyan"),
            "pending": "dim", "interrupted": v.get("secondary", "magenta")}.get(status, "")


class VarsModal(ModalScreen[dict[str, str] | None]):
    """Asks for the variables a recipe needs and has no default for."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="recipes.vars.cancel",
                        tooltip="Do not run the recipe")]

    def __init__(self, recipe: Recipe, names: list[str]) -> None:
        super().__init__()
        self.recipe = recipe
        self.names = names

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = f"Run {self.recipe.name}: variables"
            for name in self.names:
                var = self.recipe.vars[name]
                yield Label(f"{name}" + (f" — {var.description}" if var.description else ""))
                yield Input(id=f"var-{name}", placeholder=name)
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Run", id="run", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def _submit(self) -> None:
        self.dismiss({n: self.query_one(f"#var-{n}", Input).value for n in self.names})

    def action_cancel(self) -> None:
        self.dismiss(None)


class PasswordModal(ModalScreen[str | None]):
    """Asks for the sudo password once; it goes to sudo's stdin and nowhere else."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="recipes.password.cancel",
                        tooltip="Do not give a password (the become steps fail)")]

    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = "sudo"
            yield Label(self.prompt)
            yield Input(password=True, id="password")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RecipesScreen(Screen[None]):
    BINDING_GROUP_TITLE = "Recipes"
    BINDINGS = [
        Binding("escape", "back", "Back", id="recipes.back",
                tooltip="Back to the recipe's steps, or to the previous screen"),
        Binding("enter", "run", "Run", id="recipes.run",
                tooltip="Run the selected recipe on its nodes (asks for missing variables)"),
        Binding("c", "check", "Check", id="recipes.check",
                tooltip="Run only the checks: show what would change, change nothing"),
        Binding("x", "cancel", "Cancel run", id="recipes.cancel",
                tooltip="Stop the run: every remote command is stopped"),
        Binding("h", "history", "History", id="recipes.history",
                tooltip="Switch the list between recipes and past runs"),
    ]

    DEFAULT_CSS = """
    RecipesScreen #recipes-side { width: 32; border: round $primary 50%;
        border-title-color: $primary; }
    RecipesScreen #recipes-side OptionList { border: none; height: 1fr; }
    RecipesScreen #recipes-main { width: 1fr; }
    RecipesScreen #recipes-detail-box { height: 1fr; border: round $primary 50%;
        border-title-color: $primary; padding: 0 1; }
    RecipesScreen #recipes-matrix { height: 1fr; border: round $primary 50%;
        border-title-color: $primary; display: none; }
    RecipesScreen #recipes-log-box { height: 12; border: round $primary 50%;
        border-title-color: $primary; padding: 0 1; display: none; }
    RecipesScreen.running-view #recipes-detail-box { display: none; }
    RecipesScreen.running-view #recipes-matrix { display: block; }
    RecipesScreen.running-view #recipes-log-box { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.found: list[library.Found] = []
        self.recipes: dict[str, Recipe | SafError] = {}
        self.history_mode = False
        self.state: RunState | None = None
        self.selected: tuple[int, str] | None = None
        self._drawn_at = -1.0
        self._needs_redraw = False
        self.run_id: str | None = None
        self._own_highlight = False

    # -- building -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal():
            side = Vertical(OptionList(id="recipes-list"), id="recipes-side")
            side.border_title = "Recipes"
            yield side
            with Vertical(id="recipes-main"):
                box = VerticalScroll(Static(id="recipes-detail"), id="recipes-detail-box")
                box.border_title = "Steps"
                yield box
                table: DataTable[Any] = DataTable(id="recipes-matrix", cursor_type="cell",
                                                  zebra_stripes=False)
                table.border_title = "Run"
                yield table
                log = VerticalScroll(Static(id="recipes-log"), id="recipes-log-box")
                log.border_title = "Output"
                yield log
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        app: Any = self.app
        self.found = list(getattr(app, "recipe_library", None) or library.available())
        self._fill_list()
        replayed = getattr(app, "recipe_replay", None)
        if replayed is not None:
            self.show_state(replayed)
        self.set_interval(0.25, self._tick, name="recipes-redraw")

    def _fill_list(self) -> None:
        options = self.query_one("#recipes-list", OptionList)
        options.clear_options()
        side = self.query_one("#recipes-side")
        if self.history_mode:
            side.border_title = "Past runs"
            runs = list(reversed(list_runs()))
            for s in runs:
                options.add_option(Option(Text.assemble(
                    (f"{s.started.recipe}\n", "bold"),
                    (f"{s.run}  ", "dim"), (s.status, _style(s.status, palette(self.app)))),
                    id=s.run))
            if not runs:
                options.add_option(Option("no runs yet", disabled=True))
        else:
            side.border_title = "Recipes"
            for found in self.found:
                recipe = self._recipe(found)
                description = recipe.description if isinstance(recipe, Recipe) else str(recipe)
                options.add_option(Option(Text.assemble((f"{found.name}\n", "bold"),
                                                        (description[:60], "dim")),
                                          id=found.name))
        if options.option_count:
            # The first highlight is ours, not the user's: it must not hide a run on show.
            self._own_highlight = True
            options.highlighted = 0

    def _recipe(self, found: library.Found) -> Recipe | SafError:
        if found.name not in self.recipes:
            try:
                self.recipes[found.name] = load_recipe(found.path)
            except SafError as exc:
                self.recipes[found.name] = exc
        return self.recipes[found.name]

    def _current(self) -> library.Found | None:
        options = self.query_one("#recipes-list", OptionList)
        if self.history_mode or options.highlighted is None:
            return None
        ident = options.get_option_at_index(options.highlighted).id
        return next((f for f in self.found if f.name == ident), None)

    # -- browsing -----------------------------------------------------------------------------
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        own, self._own_highlight = self._own_highlight, False
        if own and self.state is not None:
            self._show_recipe_quietly()
            return
        if not self.history_mode and not self._run_going():
            self.remove_class("running-view")
            self._show_recipe()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if self.history_mode and event.option.id:
            try:
                summary = find_run(event.option.id)
            except SafError as exc:
                self.notify(str(exc), severity="error")
                return
            self.show_state(replay(read_events(summary.path)))
        else:
            self.action_run()

    def _nodes_for(self, selector: str) -> str:
        app: Any = self.app
        names = list(getattr(app, "inventory_nodes", {}) or {})
        inventory = self._inventory()
        if inventory is None:
            return selector
        try:
            return ", ".join(n.name for n in selectors.select(inventory, selector))
        except SafError as exc:
            return f"{selector}: {exc}" if names else selector

    def _inventory(self) -> Any:
        fleet = getattr(getattr(self.app, "source", None), "fleet", None)
        return fleet.inventory if fleet is not None else None

    def _show_recipe_quietly(self) -> None:
        """Fill the steps pane without leaving the run on view."""
        if not self.history_mode:
            self._show_recipe()

    def _show_recipe(self) -> None:
        found = self._current()
        detail = self.query_one("#recipes-detail", Static)
        if found is None:
            detail.update("")
            return
        recipe = self._recipe(found)
        v = palette(self.app)
        if isinstance(recipe, SafError):
            detail.update(Text(str(recipe), style=v.get("error", "red")))
            return
        where = "shipped with saf" if found.origin == "shipped" else str(found.path)
        parts: list[Any] = [Text.assemble((recipe.name, "bold"), (f"  {where}", "dim")),
                            Text(recipe.description)]
        if recipe.vars:
            table = Table(box=None, show_header=False, pad_edge=False)
            for var in recipe.vars.values():
                value = Text("required", style=v.get("warning", "yellow")) if var.required \
                    else Text(repr(var.default))
                table.add_row(Text(var.name, style="bold"), value, Text(var.description,
                                                                        style="dim"))
            parts += [Text("\nvariables", style="bold"), table]
        steps = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("#", "STEP", "DOES", "ON"):
            steps.add_column(column)
        for step in recipe.steps:
            flags = [f for f, on in (("serial", step.serial), ("become", step.become)) if on]
            steps.add_row(str(step.index + 1), step.name,
                          Text(step.kind.describe()[:50], style="dim"),
                          self._nodes_for(step.on) + (f" ({', '.join(flags)})" if flags else ""))
        parts += [Text("\nsteps", style="bold"), steps,
                  Text("\nEnter runs it · c checks what would change", style="dim")]
        detail.update(Group(*parts))
        self.query_one("#recipes-detail-box").border_title = f"Steps · {recipe.name}"

    # -- running ------------------------------------------------------------------------------
    def _run_going(self) -> bool:
        return self.state is not None and self.state.status == "running" and \
            self.run_id is not None

    def action_run(self, check: bool = False) -> None:
        if self.history_mode:
            return
        if self._run_going():
            self.notify("A run is going on; x cancels it.", severity="warning")
            return
        found = self._current()
        recipe = self._recipe(found) if found else None
        if not isinstance(recipe, Recipe):
            self.notify(str(recipe) if recipe else "No recipe selected", severity="error")
            return
        app: Any = self.app
        refuse = getattr(app, "refuse_if_readonly", None)
        if not check and refuse is not None and refuse(f"run {recipe.name}"):
            return
        missing = [n for n, var in recipe.vars.items() if var.required]

        def start(values: dict[str, str] | None) -> None:
            if values is None:
                return
            if check:  # a check changes nothing: no need to ask
                self._start(recipe, values, check)
                return

            def answered(choice: str | None) -> None:
                if choice == "run":
                    self._start(recipe, values, check)

            # An action that changes nodes shows what it will do and asks first.
            steps = "\n".join(f"{i}. {step.name}  (on {step.on})"
                              for i, step in enumerate(recipe.steps, start=1))
            self.app.push_screen(ConfirmScreen(
                f"Run {recipe.name}?",
                f"{len(recipe.steps)} step(s) will run on the nodes below and may change them. "
                "c checks what would change without changing anything.",
                steps, [("run", "Run", "primary")]), answered)

        if missing:
            self.app.push_screen(VarsModal(recipe, missing), start)
        else:
            start({})

    def action_check(self) -> None:
        self.action_run(check=True)

    def _start(self, recipe: Recipe, overrides: dict[str, str], check: bool) -> None:
        self.run_id = new_run_id()
        self.show_state(RunState())
        self._run(recipe, overrides, check, self.run_id)

    @work(exclusive=True, group="recipe-run", exit_on_error=False)
    async def _run(self, recipe: Recipe, overrides: dict[str, str], check: bool,
                   run_id: str) -> None:
        from saf.fleet import Fleet
        from saf.inventory import load_inventory
        from saf.recipe.prepare import prepare
        from saf.recipe.runner import Runner

        fleet = getattr(getattr(self.app, "source", None), "fleet", None)
        own = fleet is None
        state = self.state
        assert state is not None
        try:
            if own:
                fleet = Fleet(load_inventory())
            prepared = await prepare(recipe, fleet, overrides)
            log = RunLog.create(run_id)

            def emit(event: Any) -> None:
                log(event)
                state.apply(event)
                self._needs_redraw = True

            try:
                await Runner(prepared, fleet, emit, run_id=run_id, check=check,
                             ask_password=self._ask_password).run()
            finally:
                log.close()
        except SafError as exc:
            self.notify(str(exc), title="Recipe not run", severity="error", timeout=15)
            self.remove_class("running-view")
        finally:
            if own and fleet is not None:
                await fleet.close()
            self._needs_redraw = True

    async def _ask_password(self, prompt: str) -> str | None:
        return await self.app.push_screen_wait(PasswordModal(prompt))

    def action_cancel(self) -> None:
        if not self._run_going():
            self.notify("No run to cancel.", severity="information")
            return
        self.workers.cancel_group(self, "recipe-run")
        self.notify("Cancelling: stopping every remote command…")

    def action_history(self) -> None:
        self.history_mode = not self.history_mode
        self._fill_list()
        if not self.history_mode and not self._run_going():
            self.remove_class("running-view")
            self._show_recipe()

    def action_back(self) -> None:
        if self.has_class("running-view") and not self._run_going():
            self.remove_class("running-view")
            self._show_recipe()
            return
        self.app.pop_screen()

    # -- the run's picture --------------------------------------------------------------------
    def show_state(self, state: RunState) -> None:
        self.state = state
        self.selected = None
        self.add_class("running-view")
        table = self.query_one("#recipes-matrix", DataTable)
        table.clear(columns=True)
        self._columns: list[str] = []
        self._needs_redraw = True
        self._redraw()

    def _tick(self) -> None:
        if self._needs_redraw:
            self._redraw()

    def _redraw(self) -> None:
        self._needs_redraw = False
        state = self.state
        if state is None:
            return
        v = palette(self.app)
        table = self.query_one("#recipes-matrix", DataTable)
        if state.started is not None and self._columns != state.nodes:
            table.clear(columns=True)
            table.add_column("step", key="step")
            for node in state.nodes:
                table.add_column(node, key=node)
            self._columns = state.nodes
            for step in state.steps:
                table.add_row(f"{step['index'] + 1}. {step['name']}", *["" for _ in state.nodes],
                              key=str(step["index"]))
        for step in state.steps:
            for node in state.nodes:
                cell = state.cell(step["index"], node)
                table.update_cell(str(step["index"]), node, self._cell_text(cell, v))
        title = "Run"
        if state.started is not None:
            title = f"{state.started.recipe} · run {state.started.run}"
            if state.started.check:
                title += " · check"
        status = state.status
        counts = ", ".join(f"{n} {s}" for s, n in sorted(state.counts().items()))
        table.border_title = f"{title} · {status}" + (f" · {counts}" if counts else "")
        if self.selected is None and state.steps and state.nodes:
            self.selected = self._default_cell(state)
        self._draw_log(v)

    def _default_cell(self, state: RunState) -> tuple[int, str]:
        """The first failed cell, else the first running one, else the first."""
        for wanted in ("failed", "running"):
            for step in state.steps:
                for node in step["nodes"]:
                    cell = state.cells.get((step["index"], node))
                    if cell and cell.status == wanted:
                        return step["index"], node
        return state.steps[0]["index"], state.nodes[0]

    @staticmethod
    def _cell_text(cell: Any, v: dict[str, str]) -> Text:
        if cell is None:
            return Text("")
        text = Text(f"{MARK.get(cell.status, '?')} {cell.status}", style=_style(cell.status, v))
        if cell.duration is not None and cell.status not in ("pending", "running"):
            text.append(f" {cell.duration:.1f}s", style="dim")
        if cell.attempt > 1:
            text.append(f" ×{cell.attempt}", style="dim")
        return text

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        state = self.state
        if state is None or not state.steps:
            return
        row, column = event.coordinate.row, event.coordinate.column
        if column == 0 or row >= len(state.steps) or column - 1 >= len(state.nodes):
            return
        self.selected = (state.steps[row]["index"], state.nodes[column - 1])
        self._draw_log(palette(self.app))

    def _draw_log(self, v: dict[str, str]) -> None:
        state, pane = self.state, self.query_one("#recipes-log", Static)
        box = self.query_one("#recipes-log-box")
        if state is None or self.selected is None:
            pane.update("")
            return
        step_index, node = self.selected
        cell = state.cell(step_index, node)
        step = next((s for s in state.steps if s["index"] == step_index), None)
        name = step["name"] if step else str(step_index)
        box.border_title = f"Output · {name} on {node}"
        if cell is None:
            pane.update(Text("this step does not run on this node", style="dim"))
            return
        lines = [Text.assemble((cell.status, _style(cell.status, v)),
                               (f"  {cell.message}" if cell.message else "", "dim"))]
        for command in cell.would:
            lines.append(Text(f"would run: {command}", style=v.get("warning", "yellow")))
        for stream, line in list(cell.output)[-LOG_LINES:]:
            lines.append(Text(line, style=v.get("error", "red") if stream == "stderr" else ""))
        if len(lines) == 1 and cell.status in ("pending", "running"):
            lines.append(Text("no output yet", style="dim"))
        pane.update(Group(*lines))

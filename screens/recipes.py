"""The Recipes screen: pick a recipe, see its steps and the nodes each targets, run it (asking
for missing variables first), watch a live steps x nodes matrix with the output of the selected
cell, cancel it, open any past run again, and resume one that did not finish.

The screen puts together widgets that talk by messages: the list (recipe_list), the steps pane
(recipe_steps), the matrix (recipe_matrix), the output pane (recipe_output) and the run
controller (recipe_run), which runs down the same core path as `saf run`. A live run and a
past run are both a `RunState`, so both look alike.
"""

from __future__ import annotations

from saf.screens.base import SafScreen
from saf.screens.confirm import ConfirmScreen
from saf.screens.footer import FittingFooter
from saf.screens.recipe_list import RecipeList
from saf.screens.recipe_matrix import RunMatrix
from saf.screens.recipe_modals import VarsModal
from saf.screens.recipe_output import RunOutput
from saf.screens.recipe_run import RunController
from saf.screens.recipe_steps import RecipeSteps, nodes_for, targets
from saf.screens.widgets import StatusLine
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical

from saf.errors import SafError
from saf.inventory.model import Inventory
from saf.recipe.compose import expand, has_includes
from saf.recipe.log import find_run, read_events
from saf.recipe.model import Recipe, Step
from saf.recipe.prepare import load_included, resolve_vars
from saf.recipe.run import RunPlan, resume_plan
from saf.recipe.state import RunState, replay
from saf.up import bring


class RecipesScreen(SafScreen[None]):
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
        Binding("r", "resume", "Resume", id="recipes.resume",
                tooltip="Resume the highlighted past run from its first step that did not "
                        "finish"),
    ]

    # Under 80 columns (a tablet held upright) the list goes above the steps, full width:
    # beside them, both would be too narrow to read.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]

    DEFAULT_CSS = """
    RecipesScreen #recipes-side { width: 33%; min-width: 24; max-width: 40; }
    RecipesScreen.-narrow #recipes-body { layout: vertical; }
    RecipesScreen.-narrow #recipes-side { width: 100%; max-width: 100%; height: 35%; }
    RecipesScreen #recipes-side OptionList { border: none; height: 1fr; }
    RecipesScreen #recipes-main { width: 1fr; }
    RecipesScreen #recipes-detail-box { height: 1fr; }
    RecipesScreen #recipes-matrix { height: 1fr; display: none; }
    RecipesScreen #recipes-log-box { height: 12; display: none; }
    RecipesScreen.running-view #recipes-detail-box { display: none; }
    RecipesScreen.running-view #recipes-matrix { display: block; }
    RecipesScreen.running-view #recipes-log-box { display: block; }
    """

    def __init__(self, run: RunState | None = None) -> None:
        """`run`: a run to show on opening (a past one, replayed from its log)."""
        super().__init__()
        self._opening_run = run
        self.state: RunState | None = None  # the run on view: live or replayed
        self._needs_redraw = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="recipes-body"):
            yield RecipeList(list(self.setup.recipe_library()))
            with Vertical(id="recipes-main"):
                yield RecipeSteps()
                yield RunMatrix()
                yield RunOutput()
        yield StatusLine()
        yield FittingFooter()
        yield RunController()

    def on_mount(self) -> None:
        self.query_one(RecipeList).fill()
        if self._opening_run is not None:
            self.show_state(self._opening_run)
        self.set_interval(0.25, self._tick, name="recipes-redraw")

    def _run_going(self) -> bool:
        return self.query_one(RunController).going

    # -- browsing -----------------------------------------------------------------------------
    def on_recipe_list_highlighted(self, message: RecipeList.Highlighted) -> None:
        keep_run_on_view = message.own and self.state is not None
        if keep_run_on_view or not self._run_going():
            if not keep_run_on_view:
                self.remove_class("running-view")
            self._show_recipe()

    def on_recipe_list_recipe_chosen(self, message: RecipeList.RecipeChosen) -> None:
        self.action_run()

    def on_recipe_list_run_chosen(self, message: RecipeList.RunChosen) -> None:
        try:
            summary = find_run(message.run)
        except SafError as exc:
            self.notify(str(exc), severity="error")
            return
        self.show_state(replay(read_events(summary.path)))

    def _show_recipe(self) -> None:
        """The steps pane for what the list highlights: a recipe's steps, or in history mode
        the past run's summary (never an empty pane)."""
        listing = self.query_one(RecipeList)
        if listing.history_mode:
            self.query_one(RecipeSteps).show_run(listing.current_summary())
            return
        found = listing.current()
        self.query_one(RecipeSteps).show(
            found, listing.recipe(found) if found else None, self.setup.inventory,
            bool(self.setup.nodes))

    # -- running ------------------------------------------------------------------------------
    def action_run(self, check: bool = False) -> None:
        listing = self.query_one(RecipeList)
        if listing.history_mode:
            return
        if self._run_going():
            self.notify("A run is going on; x cancels it.", severity="warning")
            return
        found = listing.current()
        recipe = listing.recipe(found) if found else None
        if not isinstance(recipe, Recipe):
            self.notify(str(recipe) if recipe else "No recipe selected", severity="error")
            return
        if self._refused(recipe, check):
            return
        missing = [n for n, var in recipe.vars.items() if var.required]

        def with_values(values: dict[str, str] | None) -> None:
            if values is not None:
                self._confirm_and_start(RunPlan(recipe, values, check=check))

        if missing:
            self.app.push_screen(VarsModal(recipe, missing), with_values)
        else:
            with_values({})

    def action_check(self) -> None:
        self.action_run(check=True)

    def action_resume(self) -> None:
        """Resume the highlighted past run, as `saf run --resume RUN` does."""
        run = self.query_one(RecipeList).current_run()
        if run is None:
            self.notify("Highlight a past run to resume (h lists them).", severity="information")
            return
        if self._run_going():
            self.notify("A run is going on; x cancels it.", severity="warning")
            return
        try:
            # A `saf up` / `saf down` run is resumed from saf.toml, compiled again.
            up = bring.resume(run, self.setup.inventory, check=False, selector=None) \
                if self.setup.inventory is not None else None
            plan = up() if up is not None else resume_plan(run)
        except SafError as exc:
            self.notify(str(exc), title=exc.title, severity="error" if exc.exit_code else
                        "information")
            return
        if not self._refused(plan.recipe, plan.check):
            self._confirm_and_start(plan)

    def _refused(self, recipe: Recipe, check: bool) -> bool:
        """Whether the cockpit refuses to run it: it has no inventory to run it on, or it is
        read-only (a check changes nothing, so it may)."""
        if self.setup.inventory is None:
            self.notify("This cockpit was opened without an inventory (a replay): there are no "
                        "nodes to run it on. Give one with --inventory.",
                        title="Recipe not run", severity="error", timeout=15)
            return True
        return not check and self.cockpit.refuse_if_readonly(f"run {recipe.name}")

    def _confirm_and_start(self, plan: RunPlan) -> None:
        if plan.check:  # a check changes nothing: no need to ask
            self._start(plan)
            return
        recipe = plan.recipe
        verb = "Resume" if plan.resumed_from else "Run"

        def answered(choice: str | None) -> None:
            # Either way the answer shows: Enter must never seem to do nothing.
            if choice == "run":
                done = "resumed" if plan.resumed_from else "started"
                self.notify("Each step's cells fill in as it runs; x cancels it.",
                            title=f"{recipe.name} {done}")
                self._start(plan)
            else:
                self.notify(f"{recipe.name} was not run; nothing changed.",
                            severity="information")

        # An action that changes nodes shows what it will do, on which nodes, and asks first.
        inventory, known = self.setup.inventory, bool(self.setup.nodes)
        steps = [step for step in _steps_that_run(plan, inventory)
                 if step.index >= plan.start_step]
        longest = max((len(step.name) for step in steps), default=0)
        listing = "\n".join(f"{step.index + 1}. {step.name:<{longest}}  on "
                            f"{nodes_for(step.on, inventory, known)}" for step in steps)
        named = [targets(step.on, inventory, known) for step in steps]
        where = list(dict.fromkeys(n for names in named if isinstance(names, list) for n in names))
        self.app.push_screen(ConfirmScreen(
            f"{verb} {recipe.name}?",
            f"{len(steps)} step(s) will run, in order, on {', '.join(where) or 'no node'}, and "
            "may change those nodes. To see what would change first, cancel and press c.",
            listing, [("run", verb, "primary")], default="run"), answered)

    def _start(self, plan: RunPlan) -> None:
        inventory = self.setup.inventory
        assert inventory is not None  # _refused said no without one
        self.show_state(self.query_one(RunController).start(plan, inventory, self.setup.fleet,
                                                            self.setup.recipe_runner))

    def on_run_controller_changed(self, message: RunController.Changed) -> None:
        self._needs_redraw = True

    def on_run_controller_not_run(self, message: RunController.NotRun) -> None:
        self.notify(str(message.error), title="Recipe not run", severity="error", timeout=15)
        self.remove_class("running-view")

    def action_cancel(self) -> None:
        if not self._run_going():
            self.notify("No run to cancel.", severity="information")
            return
        self.query_one(RunController).cancel()
        self.notify("Cancelling: stopping every remote command…")

    def action_history(self) -> None:
        listing = self.query_one(RecipeList)
        listing.toggle_history()
        self.refresh_bindings()  # Resume is offered in history mode only
        if not self._run_going():
            self.remove_class("running-view")
            self._show_recipe()

    def action_back(self) -> None:
        if self.has_class("running-view") and not self._run_going():
            self.remove_class("running-view")
            self._show_recipe()
            return
        self.cockpit.go_back()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Resume is about a past run: offered (and in the footer) only while they are listed.
        if action == "resume":
            return any(listing.history_mode for listing in self.query(RecipeList))
        return True

    # -- the run's picture --------------------------------------------------------------------
    def show_state(self, state: RunState) -> None:
        self.state = state
        self.add_class("running-view")
        self.query_one(RunMatrix).show(state)
        self._needs_redraw = True
        self._redraw()

    def _tick(self) -> None:
        if self._needs_redraw:
            self._redraw()

    def _redraw(self) -> None:
        self._needs_redraw = False
        matrix = self.query_one(RunMatrix)
        matrix.draw()
        self.query_one(RunOutput).show(self.state, matrix.selected)

    def on_run_matrix_cell_selected(self, message: RunMatrix.CellSelected) -> None:
        self.query_one(RunOutput).show(self.state, (message.step, message.node))


def _steps_that_run(plan: RunPlan, inventory: Inventory | None) -> tuple[Step, ...]:
    """The steps as the run numbers them: a `recipe` step's own steps one by one (a resume
    starts at one of them). A problem shows when the run is prepared; here the steps as
    written do."""
    if inventory is None or not has_includes(plan.recipe):
        return plan.recipe.steps
    try:
        variables = resolve_vars(plan.recipe, plan.overrides)
        return expand(plan.recipe, variables, inventory, load_included).steps
    except SafError:
        return plan.recipe.steps
